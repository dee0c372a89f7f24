"""A worker's membership in a cluster: register with the coordinator, then heartbeat.

``varpulis server --coordinator URL`` runs one :class:`Registration` thread
(DESIGN §3, the tutorial's Part 3 and Part 6):

1. ``POST {coordinator}/api/v1/cluster/workers/register`` with the worker's id,
   advertised address, own API key (what the coordinator sends back to it),
   capacity and running pipeline ids. Until a 2xx answer it retries with
   exponential backoff (:func:`backoff_delays`: 1, 2, 4 … 30 s).
2. Every ``heartbeat_interval`` seconds, ``POST …/workers/{id}/heartbeat`` with
   ``{events_processed, pipelines_running, pipelines}``. What to do with the
   answer is :func:`next_action`: 404 ``worker_not_found`` (a coordinator that
   restarted without state) → register again at once; 404
   ``worker_deregistered`` → stop for good (the operator removed this worker;
   it stays out until the process is restarted); network errors and other
   statuses → log a warning and keep going.

The thread never deregisters: a worker that shuts down (even gracefully) just
stops heartbeating, and the coordinator marks it unhealthy and fails its
pipelines over, which is what the tutorial's Part 6 shows for Ctrl+C. Failure
warnings are throttled (:class:`_Throttle`) so a coordinator that stays away
does not flood the log at short heartbeat intervals.

Threading: :meth:`Registration.start` spawns one daemon thread; all waiting is
``threading.Event.wait`` on the stop event, so :meth:`Registration.stop` returns
within one in-flight HTTP request (bounded by ``http_timeout``) and never
sends another request. The status callable is invoked on that thread.
"""

from __future__ import annotations

import enum
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

__all__ = [
    "Action",
    "Registration",
    "RegistrationConfig",
    "WorkerStatus",
    "advertise_address",
    "backoff_delays",
    "manager_status",
    "next_action",
    "stable_worker_id",
]

#: The tutorial shows the intent under ``varpulis`` and the outcome under ``varpulis_cluster``.
logger = logging.getLogger("varpulis")
cluster_logger = logging.getLogger("varpulis_cluster")

DEFAULT_HEARTBEAT_INTERVAL = 5.0
DEFAULT_HTTP_TIMEOUT = 10.0
DEFAULT_BACKOFF = (1.0, 30.0)
#: A repeated failure is logged at WARNING at most once per this many seconds.
DEFAULT_WARN_EVERY = 60.0


# --------------------------------------------------------------------------- pure helpers


def backoff_delays(initial: float = 1.0, maximum: float = 30.0) -> Iterator[float]:
    """Yield ``initial, 2·initial, 4·initial …`` capped at *maximum*, forever (seconds)."""
    delay = initial
    while True:
        yield min(delay, maximum)
        delay = min(delay * 2, maximum)


class Action(enum.Enum):
    """What the heartbeat loop does after one answer from the coordinator."""

    CONTINUE = "continue"  # acknowledged: next heartbeat after the interval
    RETRY = "retry"  # failed (network, 5xx, 401 …): warn, next heartbeat after the interval
    REREGISTER = "reregister"  # the coordinator does not know us: register again at once
    STOP = "stop"  # we were deregistered: no more heartbeats, no re-registration


def next_action(status: int | None, code: str | None) -> Action:
    """Decide from a heartbeat answer's HTTP *status* (None: no answer) and error *code*.

    A 404 whose code is not ``worker_deregistered`` means "unknown worker"
    (``worker_not_found``, or an older coordinator's generic ``"404"``).
    """
    if status is None:
        return Action.RETRY
    if 200 <= status < 300:
        return Action.CONTINUE
    if status == 404:
        return Action.STOP if code == "worker_deregistered" else Action.REREGISTER
    return Action.RETRY


def advertise_address(host: str, port: int, *, tls: bool = False) -> str:
    """The URL a coordinator can reach this worker at: ``http(s)://host:port``.

    A wildcard *host* (``0.0.0.0``, ``::``, empty) is replaced by this
    machine's address (:func:`_machine_address`); IPv6 literals get brackets.
    """
    if host in ("", "0.0.0.0", "::", "[::]"):
        host = _machine_address()
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"{'https' if tls else 'http'}://{host}:{port}"


def _machine_address() -> str:
    """This machine's IP as others see it; the hostname if that cannot be told."""
    hostname = socket.gethostname()
    try:
        ip = socket.gethostbyname(hostname)
    except OSError:
        ip = ""
    if ip and not ip.startswith("127."):
        return ip
    # Debian maps the hostname to 127.0.1.1: ask the routing table instead
    # (a UDP "connect" sends nothing).
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(("10.255.255.255", 1))
            ip = probe.getsockname()[0]
    except OSError:
        ip = ""
    return ip if ip and not ip.startswith("0.") else hostname


def stable_worker_id(state_dir: str | None) -> str:
    """A new UUID; with *state_dir*, the one stored there (created on first use).

    Keeping the id across restarts lets the coordinator recognise a restarted
    worker that was started without ``--worker-id`` and reconcile its pipelines.
    """
    if not state_dir:
        return str(uuid.uuid4())
    path = Path(state_dir) / "worker-id"
    try:
        stored = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        stored = ""
    if stored:
        return stored
    new = str(uuid.uuid4())
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(new + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return new


# --------------------------------------------------------------------------- worker status


@dataclass(frozen=True, slots=True)
class WorkerStatus:
    """What a heartbeat reports: running pipeline ids and events processed in total."""

    pipelines: tuple[str, ...] = ()
    events_processed: int = 0


def manager_status(manager: Any, lock_timeout: float = 0.05) -> Callable[[], WorkerStatus]:
    """A status callable over a :class:`~varpulis.server.pipelines.PipelineManager`.

    ``events_processed`` is the sum of every pipeline's ``events_in``. A
    pipeline busy with a long inject holds its lock; rather than delay the
    heartbeat (and be declared dead), its last known count is reused after
    waiting *lock_timeout* s.
    """
    last: dict[str, int] = {}

    def status() -> WorkerStatus:
        ids = manager.ids()
        total = 0
        for pipeline_id in ids:
            count = last.get(pipeline_id, 0)
            try:
                pipeline = manager.get(pipeline_id)
            except Exception:  # noqa: BLE001 - deleted since ids(): not running
                continue
            if pipeline.lock.acquire(timeout=lock_timeout):
                try:
                    count = int(pipeline.runtime.metrics().get("events_in", count))
                except Exception:  # noqa: BLE001 - a closing runtime: keep the last count
                    pass
                finally:
                    pipeline.lock.release()
            last[pipeline_id] = count
            total += count
        for gone in set(last) - set(ids):
            del last[gone]
        return WorkerStatus(tuple(ids), total)

    return status


# --------------------------------------------------------------------------- the thread


@dataclass(frozen=True, slots=True)
class RegistrationConfig:
    """Where and how to register; times in seconds.

    ``api_key`` is the worker's own key (sent in the body: the coordinator uses
    it to call the worker); ``coordinator_key`` goes in the ``x-api-key``
    header of register/heartbeat requests.
    """

    coordinator: str
    worker_id: str
    address: str
    api_key: str | None = None
    coordinator_key: str | None = None
    max_pipelines: int = 100
    heartbeat_interval: float = DEFAULT_HEARTBEAT_INTERVAL
    http_timeout: float = DEFAULT_HTTP_TIMEOUT
    backoff: tuple[float, float] = DEFAULT_BACKOFF
    warn_every: float = DEFAULT_WARN_EVERY

    @property
    def base(self) -> str:
        """The coordinator's cluster API prefix."""
        return f"{self.coordinator.rstrip('/')}/api/v1/cluster/workers"


class _Throttle:
    """Log a failure at WARNING when it is new or *every* s have passed; else at DEBUG."""

    def __init__(self, every: float, clock: Callable[[], float]) -> None:
        self.every, self.clock = every, clock
        self.failures = 0
        self._last_reason: str | None = None
        self._last_warned = float("-inf")

    def failed(self, message: str, reason: str) -> None:
        self.failures += 1
        now = self.clock()
        if reason != self._last_reason or now - self._last_warned >= self.every:
            self._last_reason, self._last_warned = reason, now
            more = f" (failure {self.failures} in a row)" if self.failures > 1 else ""
            cluster_logger.warning("%s: %s%s", message, reason, more)
        else:
            cluster_logger.debug("%s: %s", message, reason)

    def succeeded(self, what: str) -> None:
        if self.failures:
            cluster_logger.info("%s again after %d failure(s)", what, self.failures)
        self.failures, self._last_reason, self._last_warned = 0, None, float("-inf")


class Registration:
    """The register + heartbeat thread of one worker (see the module docstring).

    *status* is called on the thread before each request. *session*,
    *clock* (monotonic seconds, for log throttling) and *delays* (a backoff
    iterator factory) are injectable for tests. Attributes read by tests and
    the banner: ``registered`` (an Event set while the coordinator has
    acknowledged us), ``registrations`` (successful registrations so far),
    ``heartbeats`` (acknowledged heartbeats) and ``deregistered``.
    """

    def __init__(
        self,
        config: RegistrationConfig,
        status: Callable[[], WorkerStatus] = WorkerStatus,
        *,
        session: requests.Session | None = None,
        clock: Callable[[], float] = time.monotonic,
        delays: Callable[[], Iterator[float]] | None = None,
    ) -> None:
        self.config = config
        self._status = status
        self._session = session or requests.Session()
        if config.coordinator_key:
            self._session.headers["x-api-key"] = config.coordinator_key
        self._delays = delays or (lambda: backoff_delays(*config.backoff))
        self._register_log = _Throttle(config.warn_every, clock)
        self._heartbeat_log = _Throttle(config.warn_every, clock)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._announced = False
        self.registered = threading.Event()
        self.deregistered = threading.Event()
        self.registrations = 0
        self.heartbeats = 0

    # ------------------------------------------------------------------ lifecycle

    def announce(self) -> None:
        """Log the tutorial's "Registering with coordinator …" line (once)."""
        if not self._announced:
            self._announced = True
            logger.info(
                "Registering with coordinator at %s as worker '%s'",
                self.config.coordinator,
                self.config.worker_id,
            )

    def start(self) -> Registration:
        """Announce and start the thread; returns self. Call once."""
        if self._thread is not None:
            message = "registration already started"
            raise RuntimeError(message)
        self.announce()
        self._thread = threading.Thread(
            target=self._run, name=f"registration-{self.config.worker_id}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self, timeout: float | None = None) -> None:
        """Stop heartbeating; wait up to *timeout* s (default: ``http_timeout`` + 1) for the
        thread. Idempotent. Never deregisters (see the module docstring)."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(self.config.http_timeout + 1 if timeout is None else timeout)
        self._session.close()

    @property
    def running(self) -> bool:
        """True while the thread is alive (False after stop() or deregistration)."""
        return self._thread is not None and self._thread.is_alive()

    # ------------------------------------------------------------------ the loop

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                if not self._register_until_acknowledged():
                    return
                if self._heartbeat_until_lost() is Action.STOP:
                    return
        except Exception:  # a bug here must not pass silently, nor kill the worker
            cluster_logger.exception("the registration thread failed")
        finally:
            self.registered.clear()

    def _register_until_acknowledged(self) -> bool:
        """Register, retrying with backoff; False when stopped or deregistered."""
        delays = self._delays()
        while not self._stop.is_set():
            status, code, reason = self._post(f"{self.config.base}/register", self._register_body())
            if status is not None and 200 <= status < 300:
                self.registrations += 1
                self.registered.set()
                self._register_log.succeeded("Registration accepted")
                cluster_logger.info("Registered with coordinator as '%s'", self.config.worker_id)
                return True
            if status == 404 and code == "worker_deregistered":
                self._deregistered()
                return False
            delay = next(delays)
            self._register_log.failed(
                f"Registration with coordinator at {self.config.coordinator} failed"
                f" (retrying in {delay:g} s)",
                reason,
            )
            if self._stop.wait(delay):
                return False
        return False

    def _heartbeat_until_lost(self) -> Action:
        """Heartbeat every interval; return REREGISTER or STOP (or STOP when stopped)."""
        url = f"{self.config.base}/{self.config.worker_id}/heartbeat"
        while not self._stop.wait(self.config.heartbeat_interval):
            status, code, reason = self._post(url, self._heartbeat_body())
            action = next_action(status, code)
            if action is Action.CONTINUE:
                self.heartbeats += 1
                self._heartbeat_log.succeeded("Heartbeats acknowledged")
                cluster_logger.debug("Heartbeat %d acknowledged", self.heartbeats)
            elif action is Action.RETRY:
                self._heartbeat_log.failed("Heartbeat to coordinator failed", reason)
            elif action is Action.REREGISTER:
                self.registered.clear()
                cluster_logger.info(
                    "The coordinator does not know worker '%s' (%s): registering again",
                    self.config.worker_id,
                    code,
                )
                return action
            else:
                self._deregistered()
                return action
        return Action.STOP

    def _deregistered(self) -> None:
        self.registered.clear()
        self.deregistered.set()
        cluster_logger.warning(
            "Worker '%s' was deregistered by the coordinator: no more heartbeats "
            "(restart the worker to register it again)",
            self.config.worker_id,
        )

    # ------------------------------------------------------------------ HTTP

    def _register_body(self) -> dict[str, Any]:
        snapshot = self._status()
        return {
            "worker_id": self.config.worker_id,
            "address": self.config.address,
            "api_key": self.config.api_key,
            "capacity": {
                "cpu_cores": os.cpu_count() or 1,
                "pipelines_running": len(snapshot.pipelines),
                "max_pipelines": self.config.max_pipelines,
            },
            "pipelines": list(snapshot.pipelines),
        }

    def _heartbeat_body(self) -> dict[str, Any]:
        snapshot = self._status()
        return {
            "events_processed": snapshot.events_processed,
            "pipelines_running": len(snapshot.pipelines),
            "pipelines": list(snapshot.pipelines),
        }

    def _post(self, url: str, body: dict[str, Any]) -> tuple[int | None, str | None, str]:
        """POST *body*; return (status or None, error code or None, a reason for logs)."""
        try:
            r = self._session.post(url, json=body, timeout=self.config.http_timeout)
        except requests.RequestException as exc:
            return None, None, _short(exc)
        if 200 <= r.status_code < 300:
            return r.status_code, None, "ok"
        code = message = None
        try:
            payload = r.json()
            if isinstance(payload, dict):
                code, message = payload.get("code"), payload.get("error")
        except ValueError:
            pass
        detail = f": {message}" if message else ""
        return r.status_code, code, f"HTTP {r.status_code} {code or ''}{detail}".replace("  ", " ")


def _short(exc: requests.RequestException) -> str:
    """A one-line reason for a network error (requests' messages nest several reprs)."""
    if isinstance(exc, requests.ConnectionError):
        return "cannot connect"
    if isinstance(exc, requests.Timeout):
        return "timed out"
    return f"{type(exc).__name__}: {exc}"
