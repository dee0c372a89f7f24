"""``varpulis cluster up``: real coordinator and worker processes under one supervisor."""

from __future__ import annotations

import io
import re
import signal

import pytest
import requests

from tests.utils import Child, poll_for, varpulis_cmd
from varpulis.supervisor import Cluster, ClusterConfig, backoff_delay

FAST = {"heartbeat_interval": 0.3, "heartbeat_timeout": 1.5, "ready_timeout": 30.0}


def test_backoff_doubles_up_to_the_cap() -> None:
    assert [backoff_delay(n) for n in range(7)] == [1, 2, 4, 8, 16, 30, 30]
    assert backoff_delay(100, first=0.5, cap=3) == 3


@pytest.mark.e2e
def test_a_crashed_worker_is_restarted_at_its_address_and_is_ready_again() -> None:
    out = io.StringIO()
    cluster = Cluster(ClusterConfig(workers=2, port=0, base_port=0, **FAST), out=out)
    try:
        cluster.start()
        assert cluster.worker_states() == {"worker-0": "ready", "worker-1": "ready"}
        victim = cluster.workers[1]
        url = victim.url
        assert victim.proc is not None
        victim.proc.kill()
        victim.proc.wait(10)
        now = 1000.0
        assert cluster.supervise(now) == []  # noticed; restart scheduled after the backoff
        assert "worker-1 exited" in out.getvalue()
        assert cluster.supervise(now + backoff_delay(0)) == ["worker-1"]
        assert victim.wait_url(30) == url  # same port: the coordinator's record stays valid
        cluster.wait_ready(30)
        assert victim.restarts == 1
    finally:
        cluster.close()
    assert all(not m.alive for m in [cluster.coordinator, *cluster.workers] if m is not None)


@pytest.mark.e2e
def test_cluster_up_prints_the_endpoints_and_stops_everything_on_sigterm() -> None:
    cmd = varpulis_cmd("cluster", "up", "--workers", "2", "--port", "0", "--base-port", "0",
                       "--heartbeat-interval", "0.3", "--heartbeat-timeout", "1.5")  # fmt: skip
    with Child(cmd) as child:
        api = child.read_until(r"Cluster API: (http://\S+)/api/v1/cluster/\n", timeout=60).group(1)
        table = child.output()
        workers = dict(re.findall(r"^(worker-\d)\s+(http://\S+)\s+ready", table, re.M))
        assert sorted(workers) == ["worker-0", "worker-1"], table
        listed = requests.get(f"{api}/api/v1/cluster/workers", headers={"x-api-key": "admin"},
                              timeout=10).json()  # fmt: skip
        assert {w["id"]: w["address"] for w in listed["workers"]} == workers
        assert child.stop(signal.SIGTERM, timeout=30) == 0, child.output()
    for url in [api, *workers.values()]:
        with pytest.raises(requests.ConnectionError):
            requests.get(f"{url}/health", timeout=2)


def test_status_prints_workers_and_groups() -> None:
    from varpulis.cluster import CoordinatorConfig, start_coordinator
    from varpulis.supervisor import main_status

    coordinator = start_coordinator(CoordinatorConfig(port=0, api_key="k"))
    try:
        out = io.StringIO()
        assert main_status(coordinator.url, "k", out=out) == 0
        assert out.getvalue().startswith("WORKER")
        assert main_status(coordinator.url, "wrong", out=io.StringIO()) == 1
    finally:
        coordinator.close()
    poll_for(lambda: main_status(coordinator.url, "k", out=io.StringIO()) == 1, timeout=10)


@pytest.mark.e2e
def test_children_stop_when_the_supervisor_is_killed() -> None:
    cmd = varpulis_cmd("cluster", "up", "--workers", "1", "--port", "0", "--base-port", "0",
                       "--heartbeat-interval", "0.3", "--heartbeat-timeout", "1.5")  # fmt: skip
    with Child(cmd) as child:
        api = child.read_until(r"Cluster API: (http://\S+)/api/v1/cluster/\n", timeout=60).group(1)
        worker = re.search(r"^worker-0\s+(http://\S+)", child.output(), re.M)
        assert worker is not None, child.output()
        child.kill()  # SIGKILL: no chance to stop its children

        def gone(url: str) -> bool:
            try:
                requests.get(f"{url}/health", timeout=1)
            except requests.ConnectionError:
                return True
            return False

        for url in (api, worker.group(1)):
            poll_for(lambda url=url: gone(url), timeout=15, what=f"{url} stopped")
