"""Worker records of the coordinator's registry and the request bodies that fill them.

A :class:`Worker` is what the coordinator knows about one ``varpulis server``: the
address and API key it registered (the key is what the coordinator sends *to* the
worker), its capacity, what its last heartbeat reported, and its health. The
stored ``status`` is one of ``registering`` (restored from ``--state-dir``, not yet
heard from), ``ready``, ``unhealthy`` or ``draining``; ``busy`` is derived when it
is read (a ready worker whose load reached ``max_pipelines``), so it can never be
stale. Records are mutated only under the coordinator's lock; the functions here
are pure.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from varpulis.errors import BadRequest

__all__ = [
    "Worker",
    "WorkerStatus",
    "parse_heartbeat",
    "parse_registration",
]

MAX_ID_LENGTH = 256


class WorkerStatus(str, enum.Enum):
    """Worker states; the value is the lowercase JSON spelling."""

    REGISTERING = "registering"
    READY = "ready"
    BUSY = "busy"
    UNHEALTHY = "unhealthy"
    DRAINING = "draining"


@dataclass(eq=False)
class Worker:
    """One registered worker. ``seq`` orders workers by first registration.

    ``reported`` is the set of pipeline ids of the last register/heartbeat
    (None when the worker did not send ids, then ``reported_count`` counts);
    ``placed`` the pipeline ids the coordinator's placements put here;
    ``pending`` deploys planned but not committed; ``retired`` ids the
    coordinator moved away while the worker was unreachable (deleted from
    it when it reports them again). ``last_heartbeat`` is in the
    coordinator's monotonic clock.
    """

    id: str
    address: str
    api_key: str | None
    seq: int
    cpu_cores: int = 1
    max_pipelines: int = 100
    status: WorkerStatus = WorkerStatus.READY
    last_heartbeat: float = 0.0
    events_processed: int = 0
    reported: set[str] | None = None
    reported_count: int = 0
    placed: set[str] = field(default_factory=set)
    pending: int = 0
    retired: set[str] = field(default_factory=set)

    @property
    def load(self) -> int:
        """Pipelines running or being deployed here, as far as the coordinator knows."""
        if self.reported is None:
            running = max(self.reported_count, len(self.placed))
        else:
            running = len(self.reported | self.placed)
        return running + self.pending

    @property
    def effective_status(self) -> WorkerStatus:
        """The status as shown: ``busy`` when a ready worker is at capacity."""
        if self.status is WorkerStatus.READY and self.load >= self.max_pipelines:
            return WorkerStatus.BUSY
        return self.status

    @property
    def available(self) -> bool:
        """Ready with room for one more pipeline: a placement candidate."""
        return self.status is WorkerStatus.READY and self.load < self.max_pipelines

    def to_json(self, assigned: list[str], now: float) -> dict[str, Any]:
        """The tutorial's worker object; ``last_heartbeat_secs`` and counters are additive."""
        return {
            "id": self.id,
            "address": self.address,
            "status": self.effective_status.value,
            "pipelines_running": self.load - self.pending,
            "max_pipelines": self.max_pipelines,
            "assigned_pipelines": assigned,
            "cpu_cores": self.cpu_cores,
            "events_processed": self.events_processed,
            "last_heartbeat_secs": round(max(0.0, now - self.last_heartbeat), 3),
        }

    def record(self) -> dict[str, Any]:
        """What ``--state-dir`` keeps of this worker (its key included: it is needed to
        call the worker after a restart; the state file is created mode 0600)."""
        return {
            "id": self.id,
            "address": self.address,
            "api_key": self.api_key,
            "seq": self.seq,
            "cpu_cores": self.cpu_cores,
            "max_pipelines": self.max_pipelines,
            "draining": self.status is WorkerStatus.DRAINING,
        }


def _int(body: dict[str, Any], key: str, default: int, where: str) -> int:
    value = body.get(key, default)
    if value is None:
        return default
    if type(value) is not int or value < 0:
        message = f"{where}{key!r} must be a non-negative integer, got {value!r:.80}"
        raise BadRequest(message)
    return value


def _ids(body: dict[str, Any]) -> set[str] | None:
    ids = body.get("pipelines")
    if ids is None:
        return None
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        message = f'"pipelines" must be a list of pipeline ids (strings), got {ids!r:.80}'
        raise BadRequest(message)
    return set(ids)


@dataclass(frozen=True, slots=True)
class Registration:
    """A validated register body."""

    worker_id: str
    address: str
    api_key: str | None
    cpu_cores: int
    max_pipelines: int
    pipelines_running: int
    pipelines: set[str] | None


def parse_registration(body: dict[str, Any]) -> Registration:
    """Validate ``{worker_id, address, api_key, capacity:{...}, pipelines:[ids]}``.

    ``capacity`` and ``pipelines`` are optional (defaults: 1 core, 100 pipelines);
    the address must be an ``http(s)://host:port`` URL the coordinator can call.
    """
    worker_id = body.get("worker_id")
    if not isinstance(worker_id, str) or not worker_id.strip() or len(worker_id) > MAX_ID_LENGTH:
        message = f'"worker_id" must be a non-empty string of at most {MAX_ID_LENGTH} characters'
        msg = f"{message}, got {worker_id!r:.80}"
        raise BadRequest(msg)
    address = body.get("address")
    parts = urlsplit(address) if isinstance(address, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        message = f'"address" must be an http:// or https:// URL, got {address!r:.80}'
        raise BadRequest(message)
    api_key = body.get("api_key")
    if api_key is not None and not isinstance(api_key, str):
        message = f'"api_key" must be a string or null, got {type(api_key).__name__}'
        raise BadRequest(message)
    capacity = body.get("capacity") or {}
    if not isinstance(capacity, dict):
        message = f'"capacity" must be an object, got {capacity!r:.80}'
        raise BadRequest(message)
    max_pipelines = _int(capacity, "max_pipelines", 100, "capacity.")
    return Registration(
        worker_id=worker_id,
        address=address.rstrip("/"),  # type: ignore[union-attr]
        api_key=api_key or None,
        cpu_cores=max(1, _int(capacity, "cpu_cores", 1, "capacity.")),
        max_pipelines=max_pipelines,
        pipelines_running=_int(capacity, "pipelines_running", 0, "capacity."),
        pipelines=_ids(body),
    )


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """A validated heartbeat body."""

    events_processed: int
    pipelines_running: int
    pipelines: set[str] | None


def parse_heartbeat(body: dict[str, Any]) -> Heartbeat:
    """Validate ``{events_processed, pipelines_running, pipelines:[ids]}`` (all optional)."""
    return Heartbeat(
        events_processed=_int(body, "events_processed", 0, ""),
        pipelines_running=_int(body, "pipelines_running", 0, ""),
        pipelines=_ids(body),
    )
