"""Worker health: a pure sweep and the thin thread that runs it every interval.

:func:`health_sweep` decides; :class:`HealthSweeper` only calls
``coordinator.sweep()`` every ``interval`` seconds (``--heartbeat-interval``)
on its own daemon thread, and the coordinator does the rest (logging, failover
of the workers it marks, retrying placements left on dead workers). Tests call
:func:`health_sweep` with an explicit ``now`` and never sleep.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from typing import Protocol

from varpulis.cluster.workers import Worker, WorkerStatus

__all__ = ["HealthSweeper", "health_sweep"]

logger = logging.getLogger("varpulis_cluster")

_WATCHED = (WorkerStatus.REGISTERING, WorkerStatus.READY, WorkerStatus.BUSY)


def health_sweep(workers: Iterable[Worker], now: float, timeout: float) -> list[str]:
    """Mark workers unhealthy that were silent for more than *timeout* s; return their ids.

    Only registering/ready/busy workers are watched (unhealthy ones already
    are, draining ones are leaving); silence is ``now - last_heartbeat``,
    strictly greater than *timeout*. Mutates the workers' ``status``.
    """
    marked = []
    for worker in workers:
        if worker.status in _WATCHED and now - worker.last_heartbeat > timeout:
            worker.status = WorkerStatus.UNHEALTHY
            marked.append(worker.id)
    return marked


class _Sweepable(Protocol):
    def sweep(self) -> list[str]: ...


class HealthSweeper:
    """Calls ``coordinator.sweep()`` every *interval* s until :meth:`stop`."""

    def __init__(self, coordinator: _Sweepable, interval: float) -> None:
        if interval <= 0:
            message = f"--heartbeat-interval must be > 0 seconds, got {interval!r}"
            raise ValueError(message)
        self._coordinator, self.interval = coordinator, interval
        self._halt = threading.Event()  # not `_stop`: Thread internals use that name
        self._thread = threading.Thread(target=self._run, name="health-sweeper", daemon=True)

    def start(self) -> HealthSweeper:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._halt.wait(self.interval):
            try:
                self._coordinator.sweep()
            except Exception:  # a bug in one sweep must not end health checking
                logger.exception("health sweep failed")

    def stop(self, timeout: float = 5.0) -> None:
        self._halt.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
