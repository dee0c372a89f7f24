"""``varpulis coordinator``: the cluster's control plane.

:func:`start_coordinator` builds the :class:`~varpulis.cluster.coordinator.Coordinator`
(restoring ``--state-dir``), its HTTP client, router, health sweeper and bottle
app on waitress, and returns a running :class:`CoordinatorServer` (used
in-process by tests and by the CLI alike). :func:`run_coordinator` is the CLI
body: it starts one, prints the banner (stdout, flushed; the ``API:`` line
carries the real URL, also for ``--port 0``), then waits for SIGINT/SIGTERM and
shuts down: stop sweeping, stop accepting, finish in-flight requests. Workers
keep running; a restarted coordinator gets them back as they heartbeat
(404 ``worker_not_found`` makes them register again) and, with
``--state-dir``, keeps its groups.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from varpulis.cluster.app import make_coordinator_app
from varpulis.cluster.client import WorkerClient
from varpulis.cluster.coordinator import Coordinator
from varpulis.cluster.health import HealthSweeper
from varpulis.cluster.inject import Router
from varpulis.web import ServerHandle, TlsConfig, serve, wait_for_shutdown

__all__ = ["CoordinatorConfig", "CoordinatorServer", "run_coordinator", "start_coordinator"]

logger = logging.getLogger("varpulis_cluster")


@dataclass(frozen=True, slots=True)
class CoordinatorConfig:
    """Everything ``varpulis coordinator`` is configured with (the CLI flags); seconds."""

    host: str = "127.0.0.1"
    port: int = 9100
    api_key: str | None = None
    worker_key: str | None = None
    heartbeat_interval: float = 5.0
    heartbeat_timeout: float = 15.0
    http_timeout: float = 10.0
    state_dir: str | None = None
    placement: str = "round-robin"
    tls_cert: str | None = None
    tls_key: str | None = None
    threads: int = 16
    max_hops: int = 8


class CoordinatorServer:
    """A running coordinator: ``handle`` (url, port), ``coordinator``; ``close()`` is graceful."""

    def __init__(
        self,
        config: CoordinatorConfig,
        handle: ServerHandle,
        coordinator: Coordinator,
        sweeper: HealthSweeper,
    ) -> None:
        self.config, self.handle, self.coordinator = config, handle, coordinator
        self.sweeper = sweeper

    @property
    def url(self) -> str:
        return self.handle.url

    def close(self, timeout: float = 10.0) -> None:
        """Stop sweeping and background work, then stop accepting (≤ *timeout* s)."""
        self.sweeper.stop()
        self.coordinator.close()
        self.handle.close(timeout)


def start_coordinator(
    config: CoordinatorConfig, *, clock: Callable[[], float] = time.monotonic
) -> CoordinatorServer:
    """Start a coordinator as *config* says; raises OSError (port, TLS files) or ValueError."""
    if bool(config.tls_cert) != bool(config.tls_key):
        message = "--tls-cert and --tls-key must be given together"
        raise ValueError(message)
    for name in ("heartbeat_interval", "heartbeat_timeout", "http_timeout"):
        if getattr(config, name) <= 0:
            flag = "--" + name.replace("_", "-")
            message = f"{flag} must be > 0 seconds, got {getattr(config, name)!r}"
            raise ValueError(message)
    store = None
    if config.state_dir:
        from varpulis.cluster.store import CoordinatorStore

        store = CoordinatorStore(config.state_dir)
    client = WorkerClient(timeout=config.http_timeout, pool_size=config.threads)
    coordinator = Coordinator(
        client,
        placement=config.placement,
        clock=clock,
        store=store,
        heartbeat_timeout=config.heartbeat_timeout,
    )
    from varpulis.cluster import metrics

    registry = metrics.make_registry(coordinator)

    def render() -> tuple[bytes, str]:
        return metrics.render(registry), metrics.CONTENT_TYPE

    app = make_coordinator_app(
        coordinator,
        Router(coordinator, config.max_hops),
        api_key=config.api_key,
        worker_key=config.worker_key,
        metrics=render,
        clock=clock,
    )
    tls = TlsConfig(config.tls_cert, config.tls_key) if config.tls_cert else None  # type: ignore[arg-type]
    try:
        handle = serve(app, config.host, config.port, tls=tls, threads=config.threads)
    except BaseException:
        coordinator.close()
        raise
    sweeper = HealthSweeper(coordinator, config.heartbeat_interval).start()
    return CoordinatorServer(config, handle, coordinator, sweeper)


def banner(server: CoordinatorServer) -> str:
    """The tutorial's four lines, then what else was configured."""
    c = server.config
    auth = "enabled (API key required)" if c.api_key else "disabled (no --api-key: API is open)"
    if c.worker_key:
        workers = "--api-key or --worker-key required"
    elif c.api_key:
        workers = "--api-key required, except from loopback (no --worker-key)"
    else:
        workers = "open"
    lines = [
        "Varpulis Coordinator",
        "=" * 23,
        f"API:       {server.url}/api/v1/cluster/",
        f"Auth:      {auth}",
        f"Register:  {workers}",
        f"Health:    {server.url}/health (sweep every {c.heartbeat_interval:g}s, unhealthy "
        f"after {c.heartbeat_timeout:g}s without heartbeat)",
        f"Placement: {c.placement}",
        f"State:     {c.state_dir or 'in-memory (no --state-dir)'}",
        f"Metrics:   {server.url}/metrics",
    ]
    return "\n".join(lines)


def run_coordinator(config: CoordinatorConfig, *, stop: threading.Event | None = None) -> int:
    """Run a coordinator until SIGINT/SIGTERM (or *stop* is set); return the exit code."""
    server = start_coordinator(config)

    def ready() -> None:
        print(banner(server), flush=True)
        logger.info("Coordinator listening on %s:%d", server.handle.host, server.handle.port)

    try:
        status = wait_for_shutdown(server.handle, stop, logger, ready=ready)
    finally:
        server.close()
    logger.info("coordinator stopped")
    return status
