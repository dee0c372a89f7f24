"""The worker's registration + heartbeat thread (``varpulis/server/registration.py``).

Three rungs: pure decisions (backoff, what a heartbeat answer means, the
advertised address); the thread against a scripted HTTP session (exact request
sequence, no network); and in-process workers against a real
``python -m varpulis coordinator`` process (absent → backoff → registers,
coordinator restart → re-register, deregistration → stays out, heartbeats carry
pipeline ids, prompt stop). No fixed sleeps: everything polls with a deadline.
"""

from __future__ import annotations

import itertools
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.server.conftest import TUTORIAL_A, Api
from tests.utils import Child, poll_for, varpulis_cmd
from varpulis.server import WorkerServer
from varpulis.server.pipelines import PipelineManager
from varpulis.server.registration import (
    Action,
    Registration,
    RegistrationConfig,
    WorkerStatus,
    advertise_address,
    backoff_delays,
    manager_status,
    next_action,
    stable_worker_id,
)

Start = Callable[..., WorkerServer]

# --------------------------------------------------------------------------- pure


def test_backoff_doubles_up_to_the_cap() -> None:
    assert list(itertools.islice(backoff_delays(), 8)) == [1, 2, 4, 8, 16, 30, 30, 30]
    assert list(itertools.islice(backoff_delays(0.1, 0.3), 4)) == [0.1, 0.2, 0.3, 0.3]


@pytest.mark.parametrize(
    ("status", "code", "action"),
    [
        (200, None, Action.CONTINUE),
        (None, None, Action.RETRY),
        (500, "internal_error", Action.RETRY),
        (502, None, Action.RETRY),
        (401, "unauthorized", Action.RETRY),
        (404, "worker_not_found", Action.REREGISTER),
        (404, "404", Action.REREGISTER),
        (404, None, Action.REREGISTER),
        (404, "worker_deregistered", Action.STOP),
    ],
)
def test_next_action(status: int | None, code: str | None, action: Action) -> None:
    assert next_action(status, code) is action


def test_advertise_address() -> None:
    assert advertise_address("127.0.0.1", 9000) == "http://127.0.0.1:9000"
    assert advertise_address("localhost", 9000, tls=True) == "https://localhost:9000"
    assert advertise_address("::1", 9000) == "http://[::1]:9000"
    wildcard = advertise_address("0.0.0.0", 9001)
    assert wildcard.startswith("http://") and wildcard.endswith(":9001")
    assert "0.0.0.0" not in wildcard


def test_stable_worker_id(tmp_path: Path) -> None:
    assert stable_worker_id(None) != stable_worker_id(None)
    first = stable_worker_id(str(tmp_path / "state"))
    assert stable_worker_id(str(tmp_path / "state")) == first


def test_manager_status_counts_and_does_not_block_on_a_busy_pipeline() -> None:
    manager = PipelineManager()
    try:
        a = manager.deploy("a", TUTORIAL_A).id
        b = manager.deploy("b", TUTORIAL_A).id
        from varpulis.events import Event

        for _ in range(3):
            manager.inject(a, Event("EventA", {}))
        status = manager_status(manager, lock_timeout=0.01)
        assert status() == WorkerStatus((a, b), 3)
        with manager.get(a).lock:  # a long inject in progress: last known count
            manager.get(a).runtime.process(Event("EventA", {}))
            assert status() == WorkerStatus((a, b), 3)
        assert status() == WorkerStatus((a, b), 4)
        manager.delete(b)
        assert status() == WorkerStatus((a,), 4)
    finally:
        manager.close()


# --------------------------------------------------------------------------- scripted session


class _Reply:
    def __init__(self, status: int, body: dict[str, Any] | None = None) -> None:
        self.status_code, self._body = status, body

    def json(self) -> Any:
        if self._body is None:
            raise ValueError("no JSON")
        return self._body


#: (url, 1-based call number) → the reply, or an exception to raise.
Script = Callable[[str, int], "_Reply | Exception"]


class ScriptedSession:
    """Stands in for requests.Session: answers POSTs from a script, records them."""

    def __init__(self, answers: Script) -> None:
        self.answers = answers
        self.headers: dict[str, str] = {}
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.closed = False
        self.lock = threading.Lock()

    def post(self, url: str, json: dict[str, Any], timeout: float) -> _Reply:
        with self.lock:
            self.calls.append((url.rsplit("/", 1)[1], json))
            answer = self.answers(url, len(self.calls))
        if isinstance(answer, Exception):
            raise answer
        return answer

    def close(self) -> None:
        self.closed = True

    def kinds(self) -> list[str]:
        with self.lock:
            return [kind for kind, _ in self.calls]


def _config(**kw: Any) -> RegistrationConfig:
    base = {"coordinator": "http://coord", "worker_id": "w0", "address": "http://127.0.0.1:1",
            "api_key": "test", "coordinator_key": "admin", "heartbeat_interval": 0.01,
            "backoff": (0.001, 0.004)}  # fmt: skip
    return RegistrationConfig(**{**base, **kw})


@pytest.fixture
def registrations() -> Iterator[list[Registration]]:
    made: list[Registration] = []
    yield made
    for reg in made:
        reg.stop(timeout=5)


def _scripted(
    made: list[Registration], script: Script, status: Callable[[], WorkerStatus] = WorkerStatus
) -> tuple[Registration, ScriptedSession]:
    session = ScriptedSession(script)
    reg = Registration(_config(), status, session=session)  # type: ignore[arg-type]
    made.append(reg)
    return reg.start(), session


def test_register_retries_with_backoff_then_heartbeats(registrations: list[Registration]) -> None:
    delays: list[float] = []

    def recording() -> Iterator[float]:
        for d in backoff_delays(0.001, 0.004):
            delays.append(d)
            yield d

    def script(url: str, n: int) -> _Reply | Exception:
        if n <= 4:
            return requests.ConnectionError("refused") if n % 2 else _Reply(503)
        return _Reply(201) if url.endswith("register") else _Reply(200, {"acknowledged": True})

    session = ScriptedSession(script)
    status = lambda: WorkerStatus(("p1", "p2"), 7)  # noqa: E731
    reg = Registration(_config(), status, session=session, delays=recording)  # type: ignore[arg-type]
    registrations.append(reg.start())
    poll_for(lambda: reg.heartbeats >= 2, what="two heartbeats")
    assert delays == [0.001, 0.002, 0.004, 0.004]
    assert session.kinds()[:6] == ["register"] * 5 + ["heartbeat"]
    assert session.headers == {"x-api-key": "admin"}
    register, heartbeat = session.calls[4][1], session.calls[5][1]
    assert register == {"worker_id": "w0", "address": "http://127.0.0.1:1", "api_key": "test",
                        "capacity": {"cpu_cores": register["capacity"]["cpu_cores"],
                                     "pipelines_running": 2, "max_pipelines": 100},
                        "pipelines": ["p1", "p2"]}  # fmt: skip
    assert heartbeat == {"events_processed": 7, "pipelines_running": 2, "pipelines": ["p1", "p2"]}
    assert reg.registered.is_set() and reg.registrations == 1


def test_worker_not_found_reregisters_at_once(registrations: list[Registration]) -> None:
    def script(url: str, n: int) -> _Reply:
        if url.endswith("register"):
            return _Reply(201)
        return _Reply(404, {"code": "worker_not_found"}) if n == 3 else _Reply(200)

    reg, session = _scripted(registrations, script)
    poll_for(lambda: reg.registrations == 2 and reg.heartbeats >= 1, what="re-registration")
    assert session.kinds()[:4] == ["register", "heartbeat", "heartbeat", "register"]


def test_deregistered_stops_for_good(
    registrations: list[Registration], caplog: pytest.LogCaptureFixture
) -> None:
    def script(url: str, n: int) -> _Reply:
        if url.endswith("register"):
            return _Reply(201)
        return _Reply(404, {"code": "worker_deregistered", "error": "deregistered"})

    with caplog.at_level(logging.INFO):
        reg, session = _scripted(registrations, script)
        poll_for(lambda: not reg.running, what="thread exit")
    assert reg.deregistered.is_set() and not reg.registered.is_set()
    assert session.kinds() == ["register", "heartbeat"]
    assert "was deregistered by the coordinator" in caplog.text


def test_heartbeat_failures_warn_once_then_recover(
    registrations: list[Registration], caplog: pytest.LogCaptureFixture
) -> None:
    def script(url: str, n: int) -> _Reply | Exception:
        if url.endswith("register"):
            return _Reply(201)
        return requests.ConnectionError("refused") if n < 30 else _Reply(200)

    with caplog.at_level(logging.INFO, logger="varpulis_cluster"):
        reg, _ = _scripted(registrations, script)
        poll_for(lambda: reg.heartbeats >= 1, what="recovery")
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, caplog.text
    assert warnings[0].getMessage() == "Heartbeat to coordinator failed: cannot connect"
    assert "Heartbeats acknowledged again after 28 failure(s)" in caplog.text


def test_stop_is_prompt_even_with_long_intervals(registrations: list[Registration]) -> None:
    session = ScriptedSession(lambda url, n: _Reply(201))
    reg = Registration(_config(heartbeat_interval=3600), session=session)  # type: ignore[arg-type]
    reg.start()
    poll_for(lambda: reg.registered.is_set(), what="registered")
    started = time.monotonic()
    reg.stop()
    assert time.monotonic() - started < 0.5 and not reg.running and session.closed
    # Backing off for an hour is just as prompt to stop.
    refused = ScriptedSession(lambda url, n: requests.ConnectionError("refused"))
    reg = Registration(_config(backoff=(3600, 3600)), session=refused)  # type: ignore[arg-type]
    reg.start()
    poll_for(lambda: refused.calls, what="first attempt")
    started = time.monotonic()
    reg.stop()
    assert time.monotonic() - started < 0.5 and not reg.running and len(refused.calls) == 1


# --------------------------------------------------------------------------- a real coordinator


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Coordinator:
    """A ``python -m varpulis coordinator`` child on *port* (0: any) with key ``admin``."""

    def __init__(self, port: int = 0, *extra: str) -> None:
        self.child = Child(varpulis_cmd("coordinator", "--port", str(port), "--api-key", "admin",
                                        "--heartbeat-interval", "0.2", "--heartbeat-timeout",
                                        "1", *extra))  # fmt: skip
        match = self.child.read_until(r"API:\s+(http://[\d.]+:\d+)/api/v1/cluster/", timeout=30)
        self.url = match.group(1)
        self.api = Api(self.url, key="admin")

    def workers(self) -> dict[str, dict[str, Any]]:
        r = self.api.get("/api/v1/cluster/workers")
        assert r.status_code == 200, r.text
        return {w["id"]: w for w in r.json()["workers"]}

    def stop(self) -> None:
        self.child.stop()


Coordinators = Callable[..., Coordinator]


@pytest.fixture
def coordinators() -> Iterator[Callable[..., Coordinator]]:
    """Start coordinator children; at teardown their output is printed (pytest shows
    it for failing tests only) and they are killed."""
    started: list[Coordinator] = []

    def _start(port: int = 0, *extra: str) -> Coordinator:
        started.append(Coordinator(port, *extra))
        return started[-1]

    yield _start
    for c in started:
        c.child.kill()
        print(c.child.output())


def _member(start: Start, coordinator_url: str, worker_id: str,
            **kw: Any) -> WorkerServer:  # fmt: skip
    return start(coordinator=coordinator_url, worker_id=worker_id, heartbeat_interval=0.1,
                 registration_backoff=(0.05, 0.2), **kw)  # fmt: skip


def test_backoff_while_absent_then_registers(start: Start, coordinators: Coordinators) -> None:
    port = _free_port()
    worker = _member(start, f"http://127.0.0.1:{port}", "w-late")
    assert worker.registration is not None
    poll_for(lambda: worker.registration._register_log.failures >= 3, what="failed attempts")
    assert not worker.registration.registered.is_set()
    coordinator = coordinators(port)
    poll_for(lambda: "w-late" in coordinator.workers(), timeout=10, what="registration")
    w = coordinator.workers()["w-late"]
    assert (w["address"], w["status"]) == (worker.url, "ready")


def test_heartbeat_carries_pipeline_ids(start: Start, coordinators: Coordinators) -> None:
    coordinator = coordinators()
    worker = _member(start, coordinator.url, "w-hb")
    api = Api(worker.url)
    assert worker.registration is not None
    poll_for(lambda: worker.registration.registered.is_set(), what="registered")
    api.deploy(name="one")
    api.deploy(name="two")
    poll_for(lambda: coordinator.workers()["w-hb"]["pipelines_running"] == 2,
             what="pipelines_running from heartbeats")  # fmt: skip
    sent = worker.registration._heartbeat_body()
    assert sent["pipelines"] == worker.manager.ids() and sent["pipelines_running"] == 2


def test_coordinator_restart_reregisters(start: Start, coordinators: Coordinators) -> None:
    first = coordinators()
    port = int(first.url.rsplit(":", 1)[1])
    worker = _member(start, first.url, "w-back")
    assert worker.registration is not None
    poll_for(lambda: "w-back" in first.workers(), what="registered")
    first.stop()
    # Heartbeats fail while it is away; the worker keeps going.
    seen = worker.registration.heartbeats
    poll_for(lambda: worker.registration._heartbeat_log.failures >= 2, what="failed heartbeats")
    assert worker.registration.heartbeats == seen
    second = coordinators(port)  # no --state-dir: it has forgotten everyone
    poll_for(lambda: "w-back" in second.workers(), timeout=10, what="re-registration")
    assert second.workers()["w-back"]["status"] == "ready"
    assert worker.registration.registrations == 2


def test_deregistered_worker_stays_out(start: Start, coordinators: Coordinators) -> None:
    coordinator = coordinators()
    worker = _member(start, coordinator.url, "w-gone")
    reg = worker.registration
    assert reg is not None
    poll_for(lambda: "w-gone" in coordinator.workers(), what="registered")
    r = coordinator.api.delete("/api/v1/cluster/workers/w-gone")
    assert r.json() == {"deleted": True}
    poll_for(lambda: reg.deregistered.is_set() and not reg.running, what="thread ended")
    assert reg.registrations == 1
    # The process keeps serving its own API; the coordinator never sees it again.
    assert Api(worker.url).get("/health").status_code == 200
    assert "w-gone" not in coordinator.workers()


def test_worker_close_stops_promptly(start: Start, coordinators: Coordinators) -> None:
    coordinator = coordinators()
    worker = start(coordinator=coordinator.url, worker_id="w-stop", heartbeat_interval=3600)
    reg = worker.registration
    assert reg is not None
    poll_for(lambda: reg.registered.is_set(), what="registered")
    started = time.monotonic()
    worker.close(timeout=5)
    assert time.monotonic() - started < 1.0 and not reg.running
    # Not deregistered on shutdown: the coordinator still lists it (until it turns unhealthy).
    assert "w-stop" in coordinator.workers()
