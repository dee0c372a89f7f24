"""The cluster tutorial (``shared/spec/cluster-tutorial.txt``), Parts 2–9, as real processes.

Every test starts ``python -m varpulis coordinator`` and ``python -m varpulis
server`` children on port 0 (the real port is read from each banner), with the
tutorial's keys (coordinator ``admin``, workers ``test``) and the tutorial's
``--coordinator http://localhost:PORT``. Timings are short by flag (heartbeat
0.3 s, unhealthy after 1 s) except in the one test named ``..._default_timings``,
which checks Part 6 with the tutorial's 5 s / 15 s.

JSON is compared with :func:`tutorial_view`: every key the tutorial shows must
be there with the tutorial's value (ids and ports aside: the real ones are
used); keys the tutorial does not show (``cpu_cores``, ``pagination`` …) are
additive and ignored, as ``jq`` users would not notice them either. The children's
output is printed at teardown, so a failing test shows it.
"""

from __future__ import annotations

import re
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.utils import Child, poll_for, varpulis_cmd

pytestmark = pytest.mark.e2e

ADMIN = {"x-api-key": "admin"}
FAST_COORDINATOR = ("--heartbeat-interval", "0.3", "--heartbeat-timeout", "1")
FAST_WORKER = ("--heartbeat-interval", "0.3")

SOURCE_A = 'stream A = EventA .emit(result: "from-a")'
SOURCE_B = 'stream B = EventB .emit(result: "from-b")'
TEMP = ('stream TempAlerts = TemperatureReading .where(temperature > 100) .emit(alert_type: '
        '"HIGH_TEMP", sensor_id: sensor_id, temperature: temperature)')  # fmt: skip
PRESSURE = ('stream PressureAlerts = PressureReading .where(pressure > 200) .emit(alert_type: '
            '"HIGH_PRESSURE", sensor_id: sensor_id, pressure: pressure)')  # fmt: skip
ROUTES = [
    {"from_pipeline": "_external", "to_pipeline": "pipeline-a", "event_types": ["EventA*"]},
    {"from_pipeline": "_external", "to_pipeline": "pipeline-b", "event_types": ["EventB*"]},
]


def first_group_spec(a: str = "worker-0", b: str = "worker-1") -> dict[str, Any]:
    """Part 4's request body."""
    return {
        "name": "my-first-group",
        "pipelines": [
            {"name": "pipeline-a", "source": SOURCE_A, "worker_affinity": a},
            {"name": "pipeline-b", "source": SOURCE_B, "worker_affinity": b},
        ],
        "routes": ROUTES,
    }


def tutorial_view(actual: Any, expected: Any) -> Any:
    """*actual* cut down to the keys *expected* shows (recursively, lists element-wise)."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        return {k: tutorial_view(actual[k], v) if k in actual else "<missing>"
                for k, v in expected.items()}  # fmt: skip
    if isinstance(expected, list) and isinstance(actual, list) and len(actual) == len(expected):
        return [tutorial_view(a, e) for a, e in zip(actual, expected, strict=True)]
    return actual


def assert_tutorial(actual: Any, expected: Any) -> None:
    """Assert *actual* shows everything *expected* shows, with the same values."""
    assert tutorial_view(actual, expected) == expected, actual


def is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except (ValueError, TypeError):
        return False
    return True


# --------------------------------------------------------------------------- processes


class Proc:
    """A varpulis child and its base URL (read from the banner's ``API:`` line)."""

    def __init__(self, child: Child, url: str) -> None:
        self.child, self.url = child, url

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def log(self) -> str:
        return "".join(self.child.stderr)

    def wait_log(self, text: str, timeout: float = 15.0) -> None:
        poll_for(lambda: text in self.log(), timeout=timeout, what=f"log line {text!r}")


class Cluster:
    """Starts coordinators and workers; everything is killed (and its output printed) at the
    end of the test."""

    def __init__(self) -> None:
        self.procs: list[Proc] = []
        self.coordinator: Proc | None = None

    def start_coordinator(self, *extra: str, port: int = 0) -> Proc:
        args = ("coordinator", "--port", str(port), "--api-key", "admin", *extra)
        child = Child(varpulis_cmd(*args))
        url = child.read_until(r"API:\s+(http://127\.0\.0\.1:\d+)/api/v1/cluster/", 30).group(1)
        self.coordinator = proc = Proc(child, url)
        self.procs.append(proc)
        poll_for(lambda: requests.get(url + "/health", timeout=2).ok, what="coordinator /health")
        return proc

    @property
    def localhost(self) -> str:
        """The coordinator URL as the tutorial writes it (``http://localhost:PORT``)."""
        assert self.coordinator is not None
        return f"http://localhost:{self.coordinator.port}"

    def start_worker(self, worker_id: str, *extra: str, port: int = 0, wait: bool = True) -> Proc:
        """``varpulis server --api-key test --coordinator … --worker-id ID``; with *wait*,
        returns once the coordinator lists it ``ready``."""
        args = ("server", "--port", str(port), "--api-key", "test",
                "--coordinator", self.localhost, "--worker-id", worker_id, *extra)  # fmt: skip
        child = Child(varpulis_cmd(*args))
        url = child.read_until(r"API:\s+(http://127\.0\.0\.1:\d+)/api/v1/", 30).group(1)
        proc = Proc(child, url)
        self.procs.append(proc)
        if wait:
            poll_for(lambda: self.worker(worker_id).get("status") == "ready", timeout=15,
                     what=f"{worker_id} ready")  # fmt: skip
        return proc

    # ------------------------------------------------------------------ coordinator API

    def call(self, method: str, path: str, status: int = 200, **kw: Any) -> Any:
        assert self.coordinator is not None
        kw.setdefault("timeout", 15)
        r = requests.request(method, f"{self.coordinator.url}{path}", headers=ADMIN, **kw)
        assert r.status_code == status, f"{method} {path}: {r.status_code} {r.text}"
        return r.json()

    def workers(self) -> list[dict[str, Any]]:
        return self.call("GET", "/api/v1/cluster/workers")["workers"]

    def worker(self, worker_id: str) -> dict[str, Any]:
        return next((w for w in self.workers() if w["id"] == worker_id), {})

    def deploy(self, spec: dict[str, Any]) -> dict[str, Any]:
        return self.call("POST", "/api/v1/cluster/pipeline-groups", 201, json=spec)

    def inject(self, group_id: str, event_type: str, fields: dict[str, Any]) -> dict[str, Any]:
        return self.call("POST", f"/api/v1/cluster/pipeline-groups/{group_id}/inject",
                         json={"event_type": event_type, "fields": fields})  # fmt: skip

    def placement(self, group_id: str, name: str) -> tuple[str, str]:
        """(worker_id, pipeline_id) of pipeline *name* in the group's record."""
        group = self.call("GET", f"/api/v1/cluster/pipeline-groups/{group_id}")
        p = next(p for p in group["placements"] if p["pipeline_name"] == name)
        return p["worker_id"], p["pipeline_id"]

    def close(self) -> None:
        for proc in self.procs:
            proc.child.kill()
        for proc in self.procs:
            print(proc.child.output())


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    c = Cluster()
    yield c
    c.close()


def two_workers(cluster: Cluster, *extra: str) -> tuple[Proc, Proc]:
    """Parts 2–3: a coordinator and worker-0, worker-1 registered in that order."""
    cluster.start_coordinator(*FAST_COORDINATOR, *extra)
    return cluster.start_worker("worker-0", *FAST_WORKER), cluster.start_worker(
        "worker-1", *FAST_WORKER
    )


def worker_pipelines(proc: Proc) -> list[str]:
    r = requests.get(proc.url + "/api/v1/pipelines", headers={"x-api-key": "test"}, timeout=10)
    return [p["name"] for p in r.json()["pipelines"]]


# --------------------------------------------------------------------------- Parts 2-9


def test_part2_coordinator_banner_and_health(cluster: Cluster) -> None:
    coordinator = cluster.start_coordinator()
    banner = coordinator.child.stdout[:4]
    assert [line.rstrip("\n") for line in banner] == [
        "Varpulis Coordinator",
        "=======================",
        f"API:       http://127.0.0.1:{coordinator.port}/api/v1/cluster/",
        "Auth:      enabled (API key required)",
    ]
    health = requests.get(f"http://localhost:{coordinator.port}/health", timeout=5).json()
    assert_tutorial(health, {"role": "coordinator", "status": "healthy", "version": "0.6.0"})
    # "All endpoints require the x-api-key header when --api-key is set."
    r = requests.get(coordinator.url + "/api/v1/cluster/workers", timeout=5)
    assert r.status_code == 401
    assert cluster.call("GET", "/api/v1/cluster/workers")["total"] == 0


def test_part3_workers_register(cluster: Cluster) -> None:
    w0, w1 = two_workers(cluster)
    for proc, name in ((w0, "worker-0"), (w1, "worker-1")):
        proc.wait_log(f"INFO varpulis_cluster: Registered with coordinator as '{name}'")
        lines = [line.rstrip("\n") for line in proc.child.stderr]
        at = cluster.localhost
        expected = [
            f"INFO varpulis: Registering with coordinator at {at} as worker '{name}'",
            f"INFO varpulis: Server listening on 127.0.0.1:{proc.port}",
            f"INFO varpulis_cluster: Registered with coordinator as '{name}'",
        ]
        assert [line for line in lines if line in expected] == expected
    listed = cluster.call("GET", "/api/v1/cluster/workers")
    assert_tutorial(listed, {
        "workers": [
            {"id": "worker-0", "address": w0.url, "status": "ready", "pipelines_running": 0,
             "max_pipelines": 100, "assigned_pipelines": []},
            {"id": "worker-1", "address": w1.url, "status": "ready", "pipelines_running": 0,
             "max_pipelines": 100, "assigned_pipelines": []},
        ],
        "total": 2,
    })  # fmt: skip


def test_part4_deploy_group(cluster: Cluster) -> None:
    w0, w1 = two_workers(cluster)
    deployed = cluster.deploy(first_group_spec())
    assert is_uuid(deployed["id"])
    pids = [p.get("pipeline_id") for p in deployed["placements"]]
    assert all(isinstance(pid, str) and pid for pid in pids)
    assert_tutorial(deployed, {
        "id": deployed["id"], "name": "my-first-group", "status": "running", "pipeline_count": 2,
        "placements": [
            {"pipeline_name": "pipeline-a", "worker_id": "worker-0", "worker_address": w0.url,
             "pipeline_id": pids[0], "status": "Running"},
            {"pipeline_name": "pipeline-b", "worker_id": "worker-1", "worker_address": w1.url,
             "pipeline_id": pids[1], "status": "Running"},
        ],
    })  # fmt: skip
    # "Workers receive normal pipeline deploy requests."
    assert worker_pipelines(w0) == ["pipeline-a"]
    assert worker_pipelines(w1) == ["pipeline-b"]


def test_part5_routing_and_topology(cluster: Cluster) -> None:
    w0, w1 = two_workers(cluster)
    group_id = cluster.deploy(first_group_spec())["id"]
    a = cluster.inject(group_id, "EventA", {"x": 42})
    assert a == {"routed_to": "pipeline-a", "worker_id": "worker-0", "worker_response": {
        "accepted": True, "output_events": [{"event_type": "A", "result": "from-a"}]}}  # fmt: skip
    # "EventB_foo matched the pattern EventB*": the EventB family goes to pipeline-b,
    # whose stream reads EventB, exactly as the tutorial shows.
    b = cluster.inject(group_id, "EventB_foo", {"y": 99})
    assert b == {"routed_to": "pipeline-b", "worker_id": "worker-1", "worker_response": {
        "accepted": True, "output_events": [{"event_type": "B", "result": "from-b"}]}}  # fmt: skip
    b = cluster.inject(group_id, "EventB", {"y": 99})
    assert b == {"routed_to": "pipeline-b", "worker_id": "worker-1", "worker_response": {
        "accepted": True, "output_events": [{"event_type": "B", "result": "from-b"}]}}  # fmt: skip
    # No route matches: the first pipeline of the group.
    assert cluster.inject(group_id, "Other", {})["routed_to"] == "pipeline-a"
    topology = cluster.call("GET", "/api/v1/cluster/topology")
    assert_tutorial(topology, {"groups": [{
        "group_id": group_id, "group_name": "my-first-group",
        "pipelines": [
            {"name": "pipeline-a", "worker_id": "worker-0", "worker_address": w0.url},
            {"name": "pipeline-b", "worker_id": "worker-1", "worker_address": w1.url},
        ],
        "routes": ROUTES,
    }]})  # fmt: skip


def test_part6_health_failure_and_recovery(cluster: Cluster) -> None:
    w0, w1 = two_workers(cluster)
    cluster.deploy(first_group_spec())
    expected = {"id": "worker-0", "address": w0.url, "status": "ready", "pipelines_running": 1,
                "max_pipelines": 100, "assigned_pipelines": ["pipeline-a"]}  # fmt: skip
    poll_for(lambda: tutorial_view(cluster.call("GET", "/api/v1/cluster/workers/worker-0"),
                                   expected) == expected, what="worker-0 details")  # fmt: skip
    # Ctrl+C in terminal 3: a graceful stop, and no deregistration.
    assert w1.child.stop(signal.SIGINT) == 0, w1.child.output()
    states = [{"id": "worker-0", "status": "ready"}, {"id": "worker-1", "status": "unhealthy"}]
    poll_for(lambda: [{"id": w["id"], "status": w["status"]} for w in cluster.workers()] == states,
             timeout=10, what="worker-1 unhealthy")  # fmt: skip
    restarted = cluster.start_worker("worker-1", *FAST_WORKER, port=w1.port)
    restarted.wait_log("INFO varpulis_cluster: Registered with coordinator as 'worker-1'")
    assert cluster.worker("worker-1")["status"] == "ready"


def test_part7_teardown_and_deregister(cluster: Cluster) -> None:
    w0, w1 = two_workers(cluster)
    group_id = cluster.deploy(first_group_spec())["id"]
    path = f"/api/v1/cluster/pipeline-groups/{group_id}"
    assert cluster.call("DELETE", path) == {"torn_down": True}
    assert worker_pipelines(w0) == [] and worker_pipelines(w1) == []
    assert [w["assigned_pipelines"] for w in cluster.workers()] == [[], []]
    cluster.call("GET", path, 404)
    assert cluster.call("DELETE", "/api/v1/cluster/workers/worker-1") == {"deleted": True}
    # The process keeps running; its next heartbeat is rejected and it stays out.
    w1.wait_log("Worker 'worker-1' was deregistered by the coordinator")
    assert [w["id"] for w in cluster.workers()] == ["worker-0"]
    assert w1.child.proc.poll() is None
    assert requests.get(w1.url + "/health", timeout=5).ok
    assert w1.log().count("Registered with coordinator as 'worker-1'") == 1
    cluster.call("GET", "/api/v1/cluster/workers/worker-1", 404)


def test_part8_placement(cluster: Cluster) -> None:
    two_workers(cluster)
    spec = {"name": "rr", "pipelines": [{"name": f"p{i}", "source": SOURCE_A} for i in range(1, 5)]}
    deployed = cluster.deploy(spec)
    placed = [(p["pipeline_name"], p["worker_id"]) for p in deployed["placements"]]
    assert placed == [("p1", "worker-0"), ("p2", "worker-1"), ("p3", "worker-0"),
                      ("p4", "worker-1")]  # fmt: skip
    # Affinity to a worker that is not available falls back instead of failing.
    pinned = {"name": "critical-pipeline", "source": SOURCE_A, "worker_affinity": "worker-9"}
    spec = {"name": "fallback", "pipelines": [pinned]}
    deployed = cluster.deploy(spec)
    assert deployed["status"] == "running"
    assert deployed["placements"][0]["worker_id"] in ("worker-0", "worker-1")
    assert deployed["placements"][0]["status"] == "Running"


def test_part9_iot_monitoring(cluster: Cluster) -> None:
    cluster.start_coordinator(*FAST_COORDINATOR)
    cluster.start_worker("temp-worker", *FAST_WORKER)
    cluster.start_worker("pressure-worker", *FAST_WORKER)
    group_id = cluster.deploy({
        "name": "iot-monitoring",
        "pipelines": [
            {"name": "temp-alerts", "source": TEMP, "worker_affinity": "temp-worker"},
            {"name": "pressure-alerts", "source": PRESSURE, "worker_affinity": "pressure-worker"},
        ],
        "routes": [
            {"from_pipeline": "_external", "to_pipeline": "temp-alerts",
             "event_types": ["Temperature*"]},
            {"from_pipeline": "_external", "to_pipeline": "pressure-alerts",
             "event_types": ["Pressure*"]},
        ],
    })["id"]  # fmt: skip
    temp = cluster.inject(group_id, "TemperatureReading", {"sensor_id": "T1", "temperature": 105.5})
    alert = {"event_type": "TempAlerts", "alert_type": "HIGH_TEMP", "sensor_id": "T1",
             "temperature": 105.5}  # fmt: skip
    assert temp == {"routed_to": "temp-alerts", "worker_id": "temp-worker",
                    "worker_response": {"accepted": True, "output_events": [alert]}}  # fmt: skip
    out = temp["worker_response"]["output_events"][0]
    assert list(out) == ["event_type", "alert_type", "sensor_id", "temperature"]
    pressure = cluster.inject(group_id, "PressureReading", {"sensor_id": "P1", "pressure": 250.0})
    assert pressure == {"routed_to": "pressure-alerts", "worker_id": "pressure-worker",
                        "worker_response": {"accepted": True, "output_events": [
                            {"event_type": "PressureAlerts", "alert_type": "HIGH_PRESSURE",
                             "sensor_id": "P1", "pressure": 250.0}]}}  # fmt: skip
    cool = cluster.inject(group_id, "TemperatureReading", {"sensor_id": "T2", "temperature": 20})
    assert cool["worker_response"] == {"accepted": True, "output_events": []}
    topology = cluster.call("GET", "/api/v1/cluster/topology")
    assert [{"name": p["name"], "worker_id": p["worker_id"]}
            for p in topology["groups"][0]["pipelines"]] == [
        {"name": "temp-alerts", "worker_id": "temp-worker"},
        {"name": "pressure-alerts", "worker_id": "pressure-worker"},
    ]  # fmt: skip


# --------------------------------------------------------------------------- beyond the tutorial


def test_coordinator_restart_workers_reregister(cluster: Cluster) -> None:
    """Part 2's "restart it and workers will re-register automatically" (no --state-dir)."""
    two_workers(cluster)
    first = cluster.coordinator
    assert first is not None
    assert first.child.stop() == 0, first.child.output()
    cluster.start_coordinator(*FAST_COORDINATOR, port=first.port)
    poll_for(lambda: sorted((w["id"], w["status"]) for w in cluster.workers())
             == [("worker-0", "ready"), ("worker-1", "ready")], timeout=15,
             what="both workers re-registered")  # fmt: skip


def test_coordinator_restart_with_state_dir_keeps_groups(cluster: Cluster, tmp_path: Path) -> None:
    state = ("--state-dir", str(tmp_path / "coordinator"))
    two_workers(cluster, *state)
    group_id = cluster.deploy(first_group_spec())["id"]
    first = cluster.coordinator
    assert first is not None
    assert first.child.stop() == 0, first.child.output()
    cluster.start_coordinator(*FAST_COORDINATOR, *state, port=first.port)
    poll_for(lambda: [w["status"] for w in cluster.workers()] == ["ready", "ready"], timeout=15,
             what="workers ready again")  # fmt: skip
    group = cluster.call("GET", f"/api/v1/cluster/pipeline-groups/{group_id}")
    assert group["name"] == "my-first-group"
    a = cluster.inject(group_id, "EventA", {"x": 42})
    assert (a["routed_to"], a["worker_id"]) == ("pipeline-a", "worker-0")
    assert a["worker_response"]["output_events"] == [{"event_type": "A", "result": "from-a"}]


def test_worker_kill_fails_over(cluster: Cluster) -> None:
    w0, w1 = two_workers(cluster)
    group_id = cluster.deploy(first_group_spec())["id"]
    _, old_pid = cluster.placement(group_id, "pipeline-b")
    w1.child.kill()
    poll_for(lambda: cluster.placement(group_id, "pipeline-b")[0] == "worker-0", timeout=15,
             what="pipeline-b moved to worker-0")  # fmt: skip
    new_worker, new_pid = cluster.placement(group_id, "pipeline-b")
    assert new_pid != old_pid
    b = cluster.inject(group_id, "EventB", {})
    assert b == {"routed_to": "pipeline-b", "worker_id": "worker-0", "worker_response": {
        "accepted": True, "output_events": [{"event_type": "B", "result": "from-b"}]}}  # fmt: skip
    assert sorted(worker_pipelines(w0)) == ["pipeline-a", "pipeline-b"]
    topology = cluster.call("GET", "/api/v1/cluster/topology")["groups"][0]["pipelines"]
    assert [p["worker_id"] for p in topology] == ["worker-0", "worker-0"]


def test_worker_restart_same_id_is_reconciled(cluster: Cluster) -> None:
    # A long timeout: the restart happens before any failover could start.
    cluster.start_coordinator("--heartbeat-interval", "0.3", "--heartbeat-timeout", "60")
    cluster.start_worker("worker-0", *FAST_WORKER)
    w1 = cluster.start_worker("worker-1", *FAST_WORKER)
    group_id = cluster.deploy(first_group_spec())["id"]
    _, old_pid = cluster.placement(group_id, "pipeline-b")
    w1.child.kill()  # no --state-dir: the new process starts empty
    fresh = cluster.start_worker("worker-1", *FAST_WORKER, port=w1.port)
    poll_for(lambda: worker_pipelines(fresh) == ["pipeline-b"], timeout=15,
             what="pipeline-b redeployed on the restarted worker-1")  # fmt: skip
    poll_for(lambda: cluster.placement(group_id, "pipeline-b")[1] != old_pid, timeout=15,
             what="placement updated with the new pipeline id")  # fmt: skip
    b = cluster.inject(group_id, "EventB", {})
    assert (b["routed_to"], b["worker_id"]) == ("pipeline-b", "worker-1")
    assert b["worker_response"]["output_events"] == [{"event_type": "B", "result": "from-b"}]


def test_part6_unhealthy_with_default_timings(cluster: Cluster) -> None:
    """The tutorial's numbers: heartbeat 5 s, unhealthy after 15 s (sweep every 5 s), so a
    worker killed right after a heartbeat turns unhealthy 15–20 s later, and its pipeline
    runs on the other worker within 5 s after that. ~25 s."""
    cluster.start_coordinator()
    cluster.start_worker("worker-0")
    w1 = cluster.start_worker("worker-1", "--log-level", "debug")
    group_id = cluster.deploy(first_group_spec())["id"]
    acks = re.compile(r"Heartbeat \d+ acknowledged")
    seen = len(acks.findall(w1.log()))
    poll_for(lambda: len(acks.findall(w1.log())) > seen, timeout=10, interval=0.005,
             what="a heartbeat")  # fmt: skip
    w1.child.kill()
    died = time.monotonic()
    poll_for(lambda: cluster.worker("worker-1")["status"] == "unhealthy", timeout=25,
             interval=0.1, what="worker-1 unhealthy")  # fmt: skip
    after = time.monotonic() - died
    assert 14.8 <= after <= 21.0, after
    unhealthy = time.monotonic()
    assert cluster.worker("worker-0")["status"] == "ready"
    poll_for(lambda: cluster.inject(group_id, "EventB", {"y": 1})["worker_id"] == "worker-0",
             timeout=5, interval=0.1, what="pipeline-b failed over to worker-0")  # fmt: skip
    assert time.monotonic() - unhealthy <= 5.0
    restarted = cluster.start_worker("worker-1", port=w1.port)
    restarted.wait_log("INFO varpulis_cluster: Registered with coordinator as 'worker-1'")
    assert cluster.worker("worker-1")["status"] == "ready"


def test_worker_banner_and_uuid_default(cluster: Cluster) -> None:
    """Without --worker-id a UUID is used; the banner's Cluster: line names it."""
    cluster.start_coordinator(*FAST_COORDINATOR)
    child = Child(varpulis_cmd("server", "--port", "0", "--api-key", "test",
                               "--coordinator", cluster.localhost))  # fmt: skip
    proc = Proc(child, child.read_until(r"API:\s+(http://127\.0\.0\.1:\d+)/api/v1/").group(1))
    cluster.procs.append(proc)
    line = child.read_until(r"Cluster:\s+worker '([0-9a-f-]{36})' at (\S+) -> (\S+)")
    worker_id, address, coordinator = line.groups()
    assert (address, coordinator) == (proc.url, cluster.localhost)
    poll_for(lambda: cluster.worker(worker_id).get("status") == "ready", what="uuid worker ready")
    assert re.fullmatch(r"[0-9a-f-]{36}", worker_id)
