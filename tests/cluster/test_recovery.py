"""Failover, reconcile, teardown during failover, drain, rebalance and --state-dir restarts."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from tests.cluster.conftest import A_SOURCE, Cluster, tutorial_spec
from tests.utils import poll_for
from varpulis.server.pipelines import default_runtime

GROUPS = "/api/v1/cluster/pipeline-groups"
WORKERS = "/api/v1/cluster/workers"


def _placement(cluster: Cluster, gid: str, name: str) -> dict:
    group = cluster.api.get(f"{GROUPS}/{gid}").json()
    return next(p for p in group["placements"] if p["pipeline_name"] == name)


def test_worker_death_fails_over_and_injects_follow(cluster: Cluster) -> None:
    cluster.add_worker("worker-0")
    w1 = cluster.add_worker("worker-1")
    gid = cluster.api.deploy(tutorial_spec())["id"]
    old = _placement(cluster, gid, "pipeline-b")["pipeline_id"]
    cluster.kill("worker-1")
    poll_for(lambda: cluster.api.workers()["worker-1"]["status"] == "unhealthy", 5)
    moved = poll_for(
        lambda: (p := _placement(cluster, gid, "pipeline-b"))["worker_id"] == "worker-0" and p,
        5,
        what="failover",
    )
    assert moved["pipeline_id"] != old and moved["status"] == "Running"
    assert moved["worker_address"] == cluster.workers["worker-0"].url
    r = cluster.api.inject(gid, "EventB", y=1)
    assert r.status_code == 200, r.text
    assert (r.json()["routed_to"], r.json()["worker_id"]) == ("pipeline-b", "worker-0")
    assert r.json()["worker_response"]["output_events"] == [{"event_type": "B", "result": "from-b"}]
    assert sorted(cluster.api.workers()["worker-0"]["assigned_pipelines"]) == [
        "pipeline-a",
        "pipeline-b",
    ]
    topo = cluster.api.get("/api/v1/cluster/topology").json()["groups"][0]["pipelines"]
    assert {p["name"]: p["worker_id"] for p in topo} == {
        "pipeline-a": "worker-0",
        "pipeline-b": "worker-0",
    }
    assert w1.manager.closed


def test_failover_waits_for_a_worker_then_happens(cluster: Cluster) -> None:
    cluster.add_worker("worker-0")
    gid = cluster.api.deploy({"name": "g", "pipelines": [{"name": "a", "source": A_SOURCE}]})["id"]
    cluster.kill("worker-0")
    poll_for(lambda: cluster.api.workers()["worker-0"]["status"] == "unhealthy", 5)
    r = cluster.api.inject(gid, "EventA")
    assert (r.status_code, r.json()["code"]) == (502, "routing_failed")
    cluster.add_worker("worker-1")
    poll_for(lambda: _placement(cluster, gid, "a")["worker_id"] == "worker-1", 5)
    assert cluster.api.inject(gid, "EventA").status_code == 200


def test_unhealthy_worker_that_comes_back_gets_its_stale_copy_deleted(cluster: Cluster) -> None:
    w0 = cluster.add_worker("worker-0")
    cluster.add_worker("worker-1")
    gid = cluster.api.deploy(
        {
            "name": "g",
            "pipelines": [{"name": "a", "source": A_SOURCE, "worker_affinity": "worker-0"}],
        }
    )["id"]
    old = _placement(cluster, gid, "a")["pipeline_id"]
    cluster.beats.remove("worker-0")  # silent, but the process lives (a network partition)
    poll_for(lambda: _placement(cluster, gid, "a")["worker_id"] == "worker-1", 5)
    assert old in w0.manager.ids()
    cluster.beats.add("worker-0", w0)  # back: it reports the retired copy, which is deleted
    poll_for(lambda: old not in w0.manager.ids(), 5, what="stale copy deleted")
    assert cluster.api.workers()["worker-0"]["status"] == "ready"


def test_deregistered_worker_keeps_running_without_its_pipelines(cluster: Cluster) -> None:
    cluster.add_worker("worker-0")
    w1 = cluster.add_worker("worker-1")
    gid = cluster.api.deploy(tutorial_spec())["id"]
    assert len(w1.manager.ids()) == 1
    cluster.beats.remove("worker-1")
    assert cluster.api.delete(f"{WORKERS}/worker-1").json() == {"deleted": True}
    poll_for(lambda: _placement(cluster, gid, "pipeline-b")["worker_id"] == "worker-0", 5)
    poll_for(lambda: w1.manager.ids() == [], 5, what="old copy deleted from worker-1")
    r = cluster.api.inject(gid, "EventB", y=1)
    assert r.json()["worker_id"] == "worker-0"


def test_a_deploy_that_times_out_but_lands_later_is_deleted(make_cluster) -> None:
    cluster = make_cluster(http_timeout=0.3)
    release, landed = threading.Event(), threading.Event()

    def slow_runtime(source: str) -> Any:
        release.wait(10)  # the worker is still compiling when the coordinator gives up
        runtime = default_runtime(source)
        landed.set()
        return runtime

    w0 = cluster.add_worker("worker-0", factory=slow_runtime)
    spec = {"name": "g", "pipelines": [{"name": "a", "source": A_SOURCE}]}
    r = cluster.api.post(GROUPS, json=spec)
    assert r.status_code == 201 and r.json()["status"] == "failed", r.text
    release.set()
    assert landed.wait(10)
    # the worker's next heartbeat reports a pipeline nobody placed: the coordinator deletes it
    poll_for(lambda: w0.manager.ids() == [], 5, what="stray pipeline deleted")


def test_worker_restart_with_same_id_is_reconciled(cluster: Cluster) -> None:
    cluster.add_worker("worker-0")
    cluster.add_worker("worker-1")
    gid = cluster.api.deploy(tutorial_spec())["id"]
    old = _placement(cluster, gid, "pipeline-a")["pipeline_id"]
    cluster.kill("worker-0")
    # Restarted before the timeout, without --state-dir: it registers with no pipelines.
    fresh = cluster.add_worker("worker-0")
    placement = poll_for(
        lambda: (p := _placement(cluster, gid, "pipeline-a"))["pipeline_id"] != old and p,
        5,
        what="reconcile",
    )
    assert placement["worker_id"] == "worker-0" and placement["worker_address"] == fresh.url
    assert fresh.manager.ids() == [placement["pipeline_id"]]
    r = cluster.api.inject(gid, "EventA")
    assert r.status_code == 200 and r.json()["worker_id"] == "worker-0"


def test_lost_pipeline_reported_by_heartbeat_is_redeployed(cluster: Cluster) -> None:
    w0 = cluster.add_worker("worker-0")
    gid = cluster.api.deploy({"name": "g", "pipelines": [{"name": "a", "source": A_SOURCE}]})["id"]
    old = _placement(cluster, gid, "a")["pipeline_id"]
    w0.manager.delete(old)  # someone deleted it behind the coordinator's back
    poll_for(lambda: len(w0.manager.ids()) == 1 and old not in w0.manager.ids(), 5)
    assert cluster.api.inject(gid, "EventA").status_code == 200


def test_teardown_during_failover_leaves_nothing_behind(cluster: Cluster) -> None:
    cluster.add_worker("worker-0")
    cluster.add_worker("worker-1")
    spec = {
        "name": "g",
        "pipelines": [
            {"name": f"p{i}", "source": A_SOURCE, "worker_affinity": "worker-1"} for i in range(6)
        ],
    }
    gid = cluster.api.deploy(spec)["id"]
    cluster.kill("worker-1")
    w0 = cluster.workers["worker-0"]
    poll_for(lambda: w0.manager.ids(), 5, what="failover started")
    assert cluster.api.delete(f"{GROUPS}/{gid}").json()["torn_down"] is True
    coordinator = cluster.coordinator.coordinator
    poll_for(coordinator.idle, 10, what="background work done")
    assert w0.manager.ids() == []
    assert cluster.api.workers()["worker-0"]["assigned_pipelines"] == []


def test_concurrent_deploys_and_teardowns_stay_consistent(cluster: Cluster) -> None:
    w0, w1 = cluster.add_worker("worker-0"), cluster.add_worker("worker-1")
    errors: list[str] = []

    def churn(i: int) -> None:
        for _ in range(3):
            gid = cluster.api.deploy(
                {
                    "name": f"g{i}",
                    "pipelines": [
                        {"name": "a", "source": A_SOURCE},
                        {"name": "b", "source": A_SOURCE},
                    ],
                }
            )["id"]
            if cluster.api.inject(gid, "EventA").status_code != 200:
                errors.append(gid)
            cluster.api.delete(f"{GROUPS}/{gid}")

    threads = [threading.Thread(target=churn, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == [] and w0.manager.ids() == [] and w1.manager.ids() == []
    # A heartbeat sent before a teardown may report a deleted id once more: poll.
    poll_for(
        lambda: all(
            w["pipelines_running"] == 0 and w["assigned_pipelines"] == []
            for w in cluster.api.workers().values()
        ),
        5,
    )


def test_drain_moves_everything_off(cluster: Cluster) -> None:
    w0 = cluster.add_worker("worker-0")
    cluster.add_worker("worker-1")
    gid = cluster.api.deploy(tutorial_spec())["id"]
    body = cluster.api.post(f"{WORKERS}/worker-0/drain", json={"timeout_secs": None}).json()
    assert body == {
        "worker_id": "worker-0",
        "status": "drained",
        "pipelines_migrated": 1,
        "pipelines_remaining": 0,
    }
    assert (
        w0.manager.ids() == [] and _placement(cluster, gid, "pipeline-a")["worker_id"] == "worker-1"
    )
    assert cluster.api.workers()["worker-0"]["status"] == "draining"
    assert cluster.api.inject(gid, "EventA").json()["worker_id"] == "worker-1"
    r = cluster.api.post(
        GROUPS,
        json={
            "name": "x",
            "pipelines": [{"name": "p", "source": A_SOURCE, "worker_affinity": "worker-0"}],
        },
    )
    assert r.json()["placements"][0]["worker_id"] == "worker-1"  # draining: not a candidate
    again = cluster.api.post(f"{WORKERS}/worker-0/drain").json()
    assert again["status"] == "drained" and again["pipelines_migrated"] == 0


def test_rebalance_spreads_unpinned_placements(cluster: Cluster) -> None:
    cluster.add_worker("worker-0")
    spec = {"name": "g", "pipelines": [{"name": f"p{i}", "source": A_SOURCE} for i in range(4)]}
    gid = cluster.api.deploy(spec)["id"]
    cluster.add_worker("worker-1")
    body = cluster.api.post("/api/v1/cluster/rebalance").json()
    assert body["migrations_started"] == 2 and body["migrations_completed"] == 2
    placed = [p["worker_id"] for p in cluster.api.get(f"{GROUPS}/{gid}").json()["placements"]]
    assert sorted(placed) == ["worker-0", "worker-0", "worker-1", "worker-1"]
    assert cluster.api.post("/api/v1/cluster/rebalance").json()["migrations_started"] == 0


def test_restart_with_state_dir_keeps_groups(make_cluster, tmp_path: Path) -> None:
    first = make_cluster(state_dir=str(tmp_path))
    w0, w1 = first.add_worker("worker-0"), first.add_worker("worker-1")
    gid = first.api.deploy(tutorial_spec())["id"]
    first.add_worker("gone", beat=False)
    first.api.delete(f"{WORKERS}/gone")
    first.beats.stop()
    first.coordinator.close()

    second = make_cluster(state_dir=str(tmp_path))
    workers = second.api.workers()
    assert list(workers) == ["worker-0", "worker-1"]
    assert {w["status"] for w in workers.values()} == {"registering"}
    group = second.api.get(f"{GROUPS}/{gid}").json()
    assert group["status"] == "running"
    # Injects work at once: the restored placements carry the workers' keys.
    assert second.api.inject(gid, "EventB").json()["worker_id"] == "worker-1"
    for worker_id, worker in (("worker-0", w0), ("worker-1", w1)):
        second.beats.add(worker_id, worker)
    poll_for(lambda: {w["status"] for w in second.api.workers().values()} == {"ready"}, 5)
    r = second.api.post(f"{WORKERS}/gone/heartbeat", json={})
    assert r.json()["code"] == "worker_deregistered"
    assert len(w0.manager.ids()) == 1 and len(w1.manager.ids()) == 1  # nothing redeployed


def test_restart_without_state_workers_reregister(make_cluster) -> None:
    first = make_cluster()
    w0 = first.add_worker("worker-0")
    first.beats.stop()
    url = first.coordinator.url
    port = first.coordinator.handle.port
    first.coordinator.close()
    second = make_cluster(port=port)
    assert second.coordinator.url == url
    second.beats.add("worker-0", w0)  # its heartbeat gets 404 worker_not_found → registers
    poll_for(lambda: "worker-0" in second.api.workers(), 5)
