"""The coordinator's REST API with real in-process workers: the tutorial's Parts 2–8."""

from __future__ import annotations

import io
import re
import sys

import pytest

from tests.cluster.conftest import (
    A_SOURCE,
    ADMIN,
    WORKER_KEY,
    Api,
    Cluster,
    tutorial_spec,
)
from tests.utils import poll_for
from varpulis.cluster import CoordinatorConfig, banner

GROUPS = "/api/v1/cluster/pipeline-groups"
WORKERS = "/api/v1/cluster/workers"
UUID = re.compile(r"^[0-9a-f-]{36}$")


def _tutorial(cluster: Cluster) -> str:
    cluster.add_worker("worker-0")
    cluster.add_worker("worker-1")
    return cluster.api.deploy(tutorial_spec())["id"]


def test_health_needs_no_key_and_is_healthy_without_workers(cluster: Cluster) -> None:
    body = Api(cluster.coordinator.url, key=None).get("/health").json()
    assert {k: body[k] for k in ("role", "status")} == {"role": "coordinator", "status": "healthy"}
    assert body["version"] and body["workers"]["total"] == 0
    assert Api(cluster.coordinator.url, key=None).get("/ready").json()["status"] == "ready"


def test_banner_is_the_tutorials(cluster: Cluster) -> None:
    lines = banner(cluster.coordinator).splitlines()
    url = cluster.coordinator.url
    assert lines[:4] == [
        "Varpulis Coordinator",
        "=" * 23,
        f"API:       {url}/api/v1/cluster/",
        "Auth:      enabled (API key required)",
    ]


def test_workers_listed_as_the_tutorial_shows(cluster: Cluster) -> None:
    w0, w1 = cluster.add_worker("worker-0"), cluster.add_worker("worker-1")
    body = cluster.api.get(WORKERS).json()
    assert body["total"] == 2
    tutorial_keys = [
        "id",
        "address",
        "status",
        "pipelines_running",
        "max_pipelines",
        "assigned_pipelines",
    ]
    assert [list(w)[:6] for w in body["workers"]] == [tutorial_keys] * 2
    assert [{k: w[k] for k in tutorial_keys} for w in body["workers"]] == [
        {
            "id": "worker-0",
            "address": w0.url,
            "status": "ready",
            "pipelines_running": 0,
            "max_pipelines": 100,
            "assigned_pipelines": [],
        },
        {
            "id": "worker-1",
            "address": w1.url,
            "status": "ready",
            "pipelines_running": 0,
            "max_pipelines": 100,
            "assigned_pipelines": [],
        },
    ]


def test_tutorial_deploy_inject_topology_teardown(cluster: Cluster) -> None:
    w0, w1 = cluster.add_worker("worker-0"), cluster.add_worker("worker-1")
    group = cluster.api.deploy(tutorial_spec())
    assert UUID.match(group["id"])
    placements = group.pop("placements")
    assert group == {
        "id": group["id"],
        "name": "my-first-group",
        "status": "running",
        "pipeline_count": 2,
    }
    ids = [p.pop("pipeline_id") for p in placements]
    assert all(UUID.match(i) for i in ids)
    assert placements == [
        {
            "pipeline_name": "pipeline-a",
            "worker_id": "worker-0",
            "worker_address": w0.url,
            "status": "Running",
        },
        {
            "pipeline_name": "pipeline-b",
            "worker_id": "worker-1",
            "worker_address": w1.url,
            "status": "Running",
        },
    ]
    assert w0.manager.ids() == [ids[0]] and w1.manager.ids() == [ids[1]]
    gid = group["id"]

    r = cluster.api.inject(gid, "EventA", x=42)
    assert r.headers["content-type"] == "application/json"
    assert r.status_code == 200 and r.json() == {
        "routed_to": "pipeline-a",
        "worker_id": "worker-0",
        "worker_response": {
            "accepted": True,
            "output_events": [{"event_type": "A", "result": "from-a"}],
        },
    }
    r = cluster.api.inject(gid, "EventB_foo", y=99)  # the EventB family, delivered as EventB
    assert r.json() == {
        "routed_to": "pipeline-b",
        "worker_id": "worker-1",
        "worker_response": {
            "accepted": True,
            "output_events": [{"event_type": "B", "result": "from-b"}],
        },
    }
    r = cluster.api.inject(gid, "EventB", y=99)
    assert r.json()["worker_response"]["output_events"] == [{"event_type": "B", "result": "from-b"}]

    topo = cluster.api.get("/api/v1/cluster/topology").json()
    assert topo == {
        "groups": [
            {
                "group_id": gid,
                "group_name": "my-first-group",
                "pipelines": [
                    {"name": "pipeline-a", "worker_id": "worker-0", "worker_address": w0.url},
                    {"name": "pipeline-b", "worker_id": "worker-1", "worker_address": w1.url},
                ],
                "routes": tutorial_spec()["routes"],
            }
        ]
    }

    worker0 = cluster.api.get(f"{WORKERS}/worker-0").json()
    assert (worker0["pipelines_running"], worker0["assigned_pipelines"]) == (1, ["pipeline-a"])
    assert cluster.api.get(GROUPS).json()["total"] == 1
    assert cluster.api.get(f"{GROUPS}/{gid}").json()["routes"] == tutorial_spec()["routes"]

    assert cluster.api.delete(f"{GROUPS}/{gid}").json() == {"torn_down": True}
    assert w0.manager.ids() == [] and w1.manager.ids() == []
    assert cluster.api.get(f"{WORKERS}/worker-0").json()["assigned_pipelines"] == []
    assert cluster.api.get(f"{GROUPS}/{gid}").status_code == 404


def test_round_robin_p1_p4_in_registration_order(cluster: Cluster) -> None:
    cluster.add_worker("worker-0")
    cluster.add_worker("worker-1")
    spec = {"name": "rr", "pipelines": [{"name": f"p{i}", "source": A_SOURCE} for i in range(1, 5)]}
    for _ in range(2):  # also for a second group: each group starts at the first worker
        placed = [
            (p["pipeline_name"], p["worker_id"]) for p in cluster.api.deploy(spec)["placements"]
        ]
        assert placed == [
            ("p1", "worker-0"),
            ("p2", "worker-1"),
            ("p3", "worker-0"),
            ("p4", "worker-1"),
        ]


def test_least_loaded_per_group(cluster: Cluster) -> None:
    cluster.add_worker("worker-0")
    cluster.add_worker("worker-1")
    cluster.api.deploy({"name": "one", "pipelines": [{"name": "x", "source": A_SOURCE}]})
    spec = {
        "name": "ll",
        "placement": "least-loaded",
        "pipelines": [{"name": "p1", "source": A_SOURCE}, {"name": "p2", "source": A_SOURCE}],
    }
    placed = [p["worker_id"] for p in cluster.api.deploy(spec)["placements"]]
    assert placed == ["worker-1", "worker-0"]


def test_affinity_falls_back_when_worker_unavailable(cluster: Cluster) -> None:
    cluster.add_worker("worker-0")
    spec = {
        "name": "g",
        "pipelines": [{"name": "critical", "source": A_SOURCE, "worker_affinity": "worker-9"}],
    }
    group = cluster.api.deploy(spec)
    assert group["status"] == "running" and group["placements"][0]["worker_id"] == "worker-0"


def test_busy_at_max_pipelines_then_503(cluster: Cluster) -> None:
    cluster.add_worker("worker-0", max_pipelines=1)
    spec = {"name": "g", "pipelines": [{"name": "p", "source": A_SOURCE}]}
    cluster.api.deploy(spec)
    assert cluster.api.get(f"{WORKERS}/worker-0").json()["status"] == "busy"
    r = cluster.api.post(GROUPS, json=spec)
    assert r.status_code == 503 and r.json()["code"] == "no_workers_available"


def test_no_workers_is_503_and_nothing_stored(cluster: Cluster) -> None:
    r = cluster.api.post(GROUPS, json=tutorial_spec())
    assert r.status_code == 503 and r.json()["code"] == "no_workers_available"
    assert cluster.api.get(GROUPS).json() == {"pipeline_groups": [], "total": 0}


def test_bad_vpl_is_400_naming_the_pipeline_and_nothing_is_deployed(cluster: Cluster) -> None:
    w0 = cluster.add_worker("worker-0")
    spec = tutorial_spec()
    spec["pipelines"][1]["source"] = "stream B = EventB .emit(result: "
    r = cluster.api.post(GROUPS, json=spec)
    body = r.json()
    assert r.status_code == 400 and body["code"] == "invalid_program"
    assert body["pipeline"] == "pipeline-b" and body["line"] == 1 and body["column"] > 1
    assert "snippet" in body and "pipeline-b" in body["error"]
    assert w0.manager.ids() == [] and cluster.api.get(GROUPS).json()["total"] == 0
    spec["pipelines"][1]["source"] = "stream B = EventB .frobnicate()"
    r = cluster.api.post(GROUPS, json=spec)
    assert r.status_code == 400 and r.json()["pipeline"] == "pipeline-b"


@pytest.mark.parametrize("body", [b"", b"[]", b"{", b'{"name": 1}', b'{"name": "g"}'])
def test_malformed_group_bodies_are_400(cluster: Cluster, body: bytes) -> None:
    cluster.add_worker("worker-0")
    r = cluster.api.post(GROUPS, data=body, headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["code"] == "bad_request"


def test_unknown_ids_are_404_with_symbolic_codes(cluster: Cluster) -> None:
    api = cluster.api
    for method, path, code in [
        ("GET", f"{WORKERS}/nope", "worker_not_found"),
        ("DELETE", f"{WORKERS}/nope", "worker_not_found"),
        ("POST", f"{WORKERS}/nope/heartbeat", "worker_not_found"),
        ("POST", f"{WORKERS}/nope/drain", "worker_not_found"),
        ("GET", f"{GROUPS}/nope", "group_not_found"),
        ("DELETE", f"{GROUPS}/nope", "group_not_found"),
        ("POST", f"{GROUPS}/nope/inject", "group_not_found"),
        ("POST", f"{GROUPS}/nope/inject-batch", "group_not_found"),
        ("GET", "/api/v1/cluster/nothing", "not_found"),
    ]:
        r = api.request(method, path, json={"event_type": "A", "fields": {}, "events": []})
        assert (r.status_code, r.json()["code"]) == (404, code), (method, path, r.text)


def test_wrong_or_missing_key_is_401(cluster: Cluster) -> None:
    for key in (None, "wrong", WORKER_KEY):
        api = Api(cluster.coordinator.url, key=key)
        for method, path in [
            ("GET", WORKERS),
            ("GET", GROUPS),
            ("POST", GROUPS),
            ("GET", "/api/v1/cluster/topology"),
            ("DELETE", f"{WORKERS}/w"),
            ("POST", "/api/v1/cluster/rebalance"),
        ]:
            r = api.request(method, path, json={})
            assert (r.status_code, r.json()["code"]) == (401, "unauthorized"), (key, path)


def test_loopback_registers_with_any_key_without_worker_key(cluster: Cluster) -> None:
    worker = cluster.add_worker("worker-0", beat=False)
    for key in (None, "anything", ADMIN):
        api = Api(cluster.coordinator.url, key=key)
        assert api.register("worker-0", worker).status_code == 201
        assert api.heartbeat("worker-0", worker).json() == {"acknowledged": True}


def test_worker_key_replaces_the_loopback_rule(make_cluster) -> None:
    from varpulis.server import ServerConfig, start_worker

    cluster = make_cluster(worker_key="secret")

    worker = start_worker(ServerConfig(port=0, api_key=WORKER_KEY))
    try:
        for key, status in ((None, 401), ("test", 401), ("secret", 201), (ADMIN, 201)):
            assert Api(cluster.coordinator.url, key=key).register("w", worker).status_code == status
        assert Api(cluster.coordinator.url, key="x").heartbeat("w", worker).status_code == 401
    finally:
        worker.close(timeout=2)


def _wsgi(app, method: str, path: str, remote: str, key: str | None) -> tuple[str, bytes]:
    environ = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "REMOTE_ADDR": remote,
        "SERVER_NAME": "x",
        "SERVER_PORT": "1",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(b"{}"),
        "CONTENT_LENGTH": "2",
        "CONTENT_TYPE": "application/json",
        "wsgi.errors": sys.stderr,
    }
    if key is not None:
        environ["HTTP_X_API_KEY"] = key
    status: list[str] = []
    body = b"".join(app(environ, lambda s, h, exc=None: status.append(s)))
    return status[0], body


def test_non_loopback_registration_needs_a_key(cluster: Cluster) -> None:
    from varpulis.cluster.app import is_loopback, make_coordinator_app
    from varpulis.cluster.inject import Router

    c = cluster.coordinator.coordinator
    app = make_coordinator_app(c, Router(c), api_key=ADMIN)
    path = "/api/v1/cluster/workers/register"
    assert _wsgi(app, "POST", path, "10.1.2.3", "test")[0].startswith("401")
    assert _wsgi(app, "POST", path, "10.1.2.3", None)[0].startswith("401")
    assert _wsgi(app, "POST", path, "10.1.2.3", ADMIN)[0].startswith("400")  # authorised
    assert _wsgi(app, "POST", path, "127.0.0.1", "test")[0].startswith("400")
    assert is_loopback("::1") and is_loopback("::ffff:127.0.0.1") and not is_loopback("10.0.0.1")
    assert not is_loopback(None) and not is_loopback("not-an-ip")


def test_deregister_tombstone_and_explicit_reregister(cluster: Cluster) -> None:
    worker = cluster.add_worker("worker-1", beat=False)
    assert cluster.api.delete(f"{WORKERS}/worker-1").json() == {"deleted": True}
    r = cluster.api.heartbeat("worker-1", worker)
    assert (r.status_code, r.json()["code"]) == (404, "worker_deregistered")
    assert "worker-1" not in cluster.api.workers()
    # A restarted worker process registers explicitly: allowed, and the tombstone is gone.
    assert cluster.api.register("worker-1", worker).status_code == 201
    assert cluster.api.heartbeat("worker-1", worker).status_code == 200


def test_reregister_updates_the_record(cluster: Cluster) -> None:
    worker = cluster.add_worker("worker-0", beat=False)
    other = cluster.add_worker("spare", beat=False)
    body = {
        "worker_id": "worker-0",
        "address": other.url,
        "api_key": WORKER_KEY,
        "capacity": {"cpu_cores": 1, "pipelines_running": 0, "max_pipelines": 7},
    }
    assert cluster.api.post(f"{WORKERS}/register", json=body).status_code == 201
    info = cluster.api.workers()["worker-0"]
    assert (info["address"], info["max_pipelines"]) == (other.url, 7)
    assert list(cluster.api.workers()) == ["worker-0", "spare"]  # registration order kept
    assert worker.url != other.url


def test_unhealthy_after_timeout_and_back_on_heartbeat(cluster: Cluster) -> None:
    worker = cluster.add_worker("worker-1", beat=False)
    poll_for(lambda: cluster.api.workers()["worker-1"]["status"] == "unhealthy", 5)
    cluster.api.heartbeat("worker-1", worker)
    assert cluster.api.workers()["worker-1"]["status"] == "ready"


def test_inject_errors(cluster: Cluster) -> None:
    gid = _tutorial(cluster)
    for body in (
        {"fields": {}},
        {"event_type": "", "fields": {}},
        {"event_type": "A", "fields": [1]},
    ):
        r = cluster.api.post(f"{GROUPS}/{gid}/inject", json=body)
        assert (r.status_code, r.json()["code"]) == (400, "bad_request"), body
    r = cluster.api.post(f"{GROUPS}/{gid}/inject", json={"event_type": "EventA"})  # no fields
    assert r.status_code == 200 and r.json()["worker_response"]["accepted"] is True
    cluster.kill("worker-0")
    r = cluster.api.inject(gid, "EventA", x=1)
    assert (r.status_code, r.json()["code"]) == (502, "routing_failed")
    assert "worker-0" in r.json()["error"]


def test_inject_batch_groups_events_per_target(cluster: Cluster) -> None:
    gid = _tutorial(cluster)
    events = [
        {"event_type": t, "fields": {"i": i}}
        for i, t in enumerate(["EventA", "EventB", "EventA", "Unrouted", "EventB_foo"])
    ]
    body = cluster.api.post(f"{GROUPS}/{gid}/inject-batch", json={"events": events}).json()
    assert body["accepted"] == 5 and body["events_failed"] == 0
    assert body["results"] == [
        {"pipeline": "pipeline-a", "worker_id": "worker-0", "events": 3, "accepted": 3},
        {"pipeline": "pipeline-b", "worker_id": "worker-1", "events": 2, "accepted": 2},
    ]
    assert (
        body["output_events"]
        == [{"event_type": "A", "result": "from-a"}] * 2
        + [{"event_type": "B", "result": "from-b"}] * 2
    )
    r = cluster.api.post(f"{GROUPS}/{gid}/inject-batch", json={"events": [{"fields": {}}]})
    assert r.status_code == 400 and "events[0]" in r.json()["error"]
    r = cluster.api.post(f"{GROUPS}/{gid}/inject-batch", json={"events": "nope"})
    assert r.status_code == 400


def test_inject_batch_to_one_target_of_several_is_forwarded_whole(cluster: Cluster) -> None:
    gid = _tutorial(cluster)
    for types, target, worker, result in [
        (["EventA", "Unrouted", "EventA"], "pipeline-a", "worker-0", "from-a"),
        (["EventB", "EventB"], "pipeline-b", "worker-1", "from-b"),
        (["EventB_foo", "EventB"], "pipeline-b", "worker-1", "from-b"),  # renamed: decoded
    ]:
        events = [{"event_type": t, "fields": {"i": i}} for i, t in enumerate(types)]
        body = cluster.api.post(f"{GROUPS}/{gid}/inject-batch", json={"events": events}).json()
        n = len(types)
        assert body["results"] == [
            {"pipeline": target, "worker_id": worker, "events": n, "accepted": n}
        ]
        expected = 2 if target == "pipeline-a" else n  # Unrouted reaches pipeline-a, no output
        assert (
            body["output_events"]
            == [{"event_type": target[-1].upper(), "result": result}] * expected
        )
    r = cluster.api.post(f"{GROUPS}/{gid}/inject-batch",
                         json={"events": [{"event_type": "EventB"}, {"fields": {}}]})  # fmt: skip
    assert r.status_code == 400


def test_inject_batch_single_pipeline_fast_path(cluster: Cluster) -> None:
    cluster.add_worker("worker-0")
    gid = cluster.api.deploy({"name": "g", "pipelines": [{"name": "a", "source": A_SOURCE}]})["id"]
    events = [{"event_type": "EventA", "fields": {}}, {"event_type": "Other", "fields": {}}]
    body = cluster.api.post(f"{GROUPS}/{gid}/inject-batch", json={"events": events}).json()
    assert body["accepted"] == 2 and body["output_events"] == [
        {"event_type": "A", "result": "from-a"}
    ]
    r = cluster.api.post(f"{GROUPS}/{gid}/inject-batch", json={"events": [{"x": 1}]})
    assert r.status_code == 400 and "worker-0" in r.json()["error"]
    # a one-pipeline group reached by a family route still renames its members
    spec = {"name": "f", "pipelines": [{"name": "a", "source": A_SOURCE}],
            "routes": [{"from_pipeline": "_external", "to_pipeline": "a",
                        "event_types": ["EventA*"]}]}  # fmt: skip
    gid = cluster.api.deploy(spec)["id"]
    events = [{"event_type": "EventA_x", "fields": {}}]
    body = cluster.api.post(f"{GROUPS}/{gid}/inject-batch", json={"events": events}).json()
    assert body["output_events"] == [{"event_type": "A", "result": "from-a"}]


def test_inter_pipeline_routes_forward_outputs_through_the_coordinator(cluster: Cluster) -> None:
    cluster.add_worker("worker-0")
    cluster.add_worker("worker-1")
    spec = {
        "name": "chain",
        "pipelines": [
            {"name": "hot", "source": "stream Hot = Reading .where(t > 100) .emit(t: t)"},
            {"name": "alert", "source": 'stream Alert = Hot .emit(level: "HIGH", t: t)'},
            {"name": "loop", "source": "stream Echo = Echo .emit(n: 1)"},
        ],
        "routes": [
            {"from_pipeline": "_external", "to_pipeline": "hot", "event_types": ["Reading"]},
            {"from_pipeline": "hot", "to_pipeline": "alert", "event_types": ["Hot"]},
            {"from_pipeline": "_external", "to_pipeline": "loop", "event_types": ["Echo"]},
            {"from_pipeline": "loop", "to_pipeline": "loop", "event_types": ["Echo"]},
        ],
    }
    gid = cluster.api.deploy(spec)["id"]
    body = cluster.api.inject(gid, "Reading", t=120).json()
    assert body["worker_response"]["output_events"] == [{"event_type": "Hot", "t": 120}]
    assert body["forwarded"] == [
        {
            "from_pipeline": "hot",
            "routed_to": "alert",
            "hop": 1,
            "events": 1,
            "worker_id": "worker-1",
            "accepted": 1,
            "output_events": [{"event_type": "Alert", "level": "HIGH", "t": 120}],
        }
    ]
    assert cluster.api.inject(gid, "Reading", t=5).json()["forwarded"] == []
    batch = cluster.api.post(
        f"{GROUPS}/{gid}/inject-batch",
        json={"events": [{"event_type": "Reading", "fields": {"t": 101}}]},
    ).json()
    assert batch["forwarded"][0]["output_events"][0]["event_type"] == "Alert"
    # A cycle stops at the hop limit and says so.
    loop = cluster.api.inject(gid, "Echo").json()["forwarded"]
    assert len(loop) == 9 and loop[-1]["error"] == "hop_limit" and loop[-1]["hop"] == 9


def test_openapi_documents_exactly_the_routes(cluster: Cluster) -> None:
    c = cluster.coordinator.coordinator
    from varpulis.cluster.app import make_coordinator_app
    from varpulis.cluster.inject import Router

    app = make_coordinator_app(c, Router(c), metrics=lambda: (b"", "text/plain"))
    routes = app.app.routes  # the bottle app behind the fast lane serves every route
    registered = {(r.method.lower(), re.sub(r"<(\w+)>", r"{\1}", r.rule)) for r in routes}
    doc = Api(cluster.coordinator.url, key=None).get("/openapi.json").json()
    documented = {(m, path) for path, ops in doc["paths"].items() for m in ops}
    assert documented == registered
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            if path.startswith("/api/v1/cluster/"):
                assert "401" in op["responses"] and op["security"], (method, path)


def test_metrics_are_prometheus_text(cluster: Cluster) -> None:
    gid = _tutorial(cluster)
    cluster.api.inject(gid, "EventA")
    text = Api(cluster.coordinator.url, key=None).get("/metrics").text
    assert 'varpulis_cluster_workers{status="ready"} 2.0' in text
    assert "varpulis_cluster_pipeline_groups 1.0" in text
    assert "varpulis_cluster_injects_total 1.0" in text


def test_config_rejects_bad_values() -> None:
    from varpulis.cluster import start_coordinator
    from varpulis.errors import BadRequest

    for bad in ({"heartbeat_interval": 0}, {"tls_cert": "x"}, {"placement": "random"}):
        with pytest.raises((ValueError, BadRequest)):
            start_coordinator(CoordinatorConfig(port=0, **bad))
