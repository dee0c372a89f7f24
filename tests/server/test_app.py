"""The worker's REST routes over real HTTP: every route, status code and error body."""

from __future__ import annotations

import pytest

from tests.server.conftest import TUTORIAL_A, Api
from varpulis import __version__

THRESHOLD = (
    "stream Hot = SensorReading .where(temperature > 100) .emit(sensor: sensor, t: temperature)"
)


def test_tutorial_inject_exact(api: Api) -> None:
    pid = api.deploy(TUTORIAL_A, "pipeline-a")
    r = api.post(f"/api/v1/pipelines/{pid}/events",
                 json={"event_type": "EventA", "fields": {"x": 42}})  # fmt: skip
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    assert r.json() == {
        "accepted": True,
        "output_events": [{"event_type": "A", "result": "from-a"}],
    }


def test_health_and_ready_need_no_key(worker) -> None:
    anon = Api(worker.url, key=None)
    body = anon.get("/health").json()
    assert body["status"] == "healthy" and body["role"] == "worker"
    assert body["version"] == __version__ and body["uptime_seconds"] >= 0
    r = anon.get("/ready")
    assert r.status_code == 200 and r.json()["status"] == "ready"


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/api/v1/pipelines"), ("POST", "/api/v1/pipelines"),
    ("GET", "/api/v1/pipelines/x"), ("DELETE", "/api/v1/pipelines/x"),
    ("POST", "/api/v1/pipelines/x/events"), ("POST", "/api/v1/pipelines/x/events-batch"),
    ("GET", "/api/v1/pipelines/x/metrics"), ("POST", "/api/v1/pipelines/x/reload"),
])  # fmt: skip
@pytest.mark.parametrize("key", [None, "wrong", ""])
def test_api_needs_key(worker, method: str, path: str, key: str | None) -> None:
    r = Api(worker.url, key=key).request(method, path, json={})
    assert r.status_code == 401
    assert r.json() == {"error": "missing or invalid x-api-key header", "code": "unauthorized"}


def test_open_api_without_key(start) -> None:
    open_worker = start(api_key=None)
    anon = Api(open_worker.url, key=None)
    assert anon.get("/api/v1/pipelines").json()["total"] == 0
    pid = anon.deploy()
    assert anon.get(f"/api/v1/pipelines/{pid}").status_code == 200


def test_deploy_list_get_delete(api: Api) -> None:
    ids = [api.deploy(TUTORIAL_A, f"p{i}") for i in range(3)]
    body = api.get("/api/v1/pipelines").json()
    assert body["total"] == 3
    assert [p["id"] for p in body["pipelines"]] == ids  # deploy order
    first = body["pipelines"][0]
    assert first["name"] == "p0" and first["status"] == "running"
    assert first["source"] == TUTORIAL_A and first["uptime_secs"] >= 0
    page = api.get("/api/v1/pipelines", params={"limit": 1, "offset": 1}).json()
    assert [p["id"] for p in page["pipelines"]] == ids[1:2] and page["total"] == 3
    assert page["pagination"]["has_more"] is True
    assert api.get(f"/api/v1/pipelines/{ids[1]}").json()["name"] == "p1"
    r = api.delete(f"/api/v1/pipelines/{ids[1]}")
    assert r.status_code == 200 and r.json() == {"deleted": True}
    assert api.get("/api/v1/pipelines").json()["total"] == 2
    r = api.get(f"/api/v1/pipelines/{ids[1]}")
    assert r.status_code == 404 and r.json()["code"] == "pipeline_not_found"


def test_deploy_with_a_chosen_id(api: Api) -> None:
    r = api.post("/api/v1/pipelines", json={"name": "p", "source": TUTORIAL_A, "id": "pid-1"})
    assert r.status_code == 201 and r.json()["id"] == "pid-1"
    assert api.get("/api/v1/pipelines/pid-1").json()["name"] == "p"
    again = api.post("/api/v1/pipelines", json={"name": "q", "source": TUTORIAL_A, "id": "pid-1"})
    assert again.status_code == 400 and "already deployed" in again.json()["error"]
    for bad in ("", "../x", "a" * 65, 7, "x y"):
        body = {"name": "q", "source": TUTORIAL_A, "id": bad}
        r = api.post("/api/v1/pipelines", json=body)
        assert r.status_code == 400 and r.json()["code"] == "bad_request", bad


@pytest.mark.parametrize("params", [{"limit": 0}, {"limit": 1001}, {"limit": "x"},
                                    {"offset": -1}])  # fmt: skip
def test_list_bad_pagination(api: Api, params: dict) -> None:
    r = api.get("/api/v1/pipelines", params=params)
    assert r.status_code == 400 and r.json()["code"] == "bad_request"


@pytest.mark.parametrize(("method", "suffix", "body"), [
    ("GET", "", None), ("DELETE", "", None),
    ("POST", "/events", {"event_type": "EventA", "fields": {}}),
    ("POST", "/events-batch", {"events": []}),
    ("GET", "/metrics", None), ("POST", "/reload", {"source": TUTORIAL_A}),
])  # fmt: skip
def test_unknown_pipeline_404(api: Api, method: str, suffix: str, body: dict | None) -> None:
    r = api.request(method, f"/api/v1/pipelines/nope{suffix}", json=body)
    assert r.status_code == 404
    assert r.json() == {"error": "pipeline not found: 'nope'", "code": "pipeline_not_found"}


def test_invalid_vpl_400_with_position(api: Api) -> None:
    source = "stream A = EventA\n    .where(a && b)"
    r = api.post("/api/v1/pipelines", json={"name": "bad", "source": source})
    assert r.status_code == 400
    body = r.json()
    assert body["code"] == "invalid_program"
    assert (body["line"], body["column"]) == (2, 15)
    assert "^" in body["snippet"] and body["message"] and body["hint"]
    assert api.get("/api/v1/pipelines").json()["total"] == 0


def test_semantic_error_400(api: Api) -> None:
    r = api.post("/api/v1/pipelines", json={"name": "bad", "source": "stream S = A .whre(x > 1)"})
    assert r.status_code == 400
    assert r.json()["code"] == "invalid_program" and "where" in r.json()["hint"]


@pytest.mark.parametrize("body", [{"source": TUTORIAL_A}, {"name": "", "source": TUTORIAL_A},
                                  {"name": "x"}, {"name": "x", "source": 3},
                                  {"name": ["x"], "source": TUTORIAL_A}])  # fmt: skip
def test_deploy_bad_body(api: Api, body: dict) -> None:
    r = api.post("/api/v1/pipelines", json=body)
    assert r.status_code == 400 and r.json()["code"] == "bad_request", r.text


@pytest.mark.parametrize("raw", [b"{", b"[1, 2]", b"", b"\xff\xfe", b"null", b'"text"'])
def test_malformed_json_400(api: Api, raw: bytes) -> None:
    pid = api.deploy()
    for path in (
        "/api/v1/pipelines",
        f"/api/v1/pipelines/{pid}/events",
        f"/api/v1/pipelines/{pid}/events-batch",
        f"/api/v1/pipelines/{pid}/reload",
    ):
        r = api.post(path, data=raw, headers={"content-type": "application/json"})
        assert r.status_code == 400, (path, r.text)
        assert r.json()["code"] == "bad_request"


@pytest.mark.parametrize("event", [{}, {"event_type": 3}, {"event_type": ""},
                                   {"event_type": "A", "fields": [1]},
                                   {"event_type": "A", "timestamp": "yesterday"}])  # fmt: skip
def test_inject_bad_event_400(api: Api, event: dict) -> None:
    pid = api.deploy()
    r = api.post(f"/api/v1/pipelines/{pid}/events", json=event)
    assert r.status_code == 400 and r.json()["code"] == "bad_request", r.text


def test_inject_unread_type_empty_outputs(api: Api) -> None:
    pid = api.deploy()
    r = api.post(f"/api/v1/pipelines/{pid}/events", json={"event_type": "Nobody", "fields": {}})
    assert r.status_code == 200 and r.json() == {"accepted": True, "output_events": []}


def test_output_cap_truncates(start) -> None:
    api = Api(start(max_output_events=2).url)
    pid = api.deploy(TUTORIAL_A)
    events = [{"event_type": "EventA", "fields": {"i": i}} for i in range(5)]
    body = api.post(f"/api/v1/pipelines/{pid}/events-batch", json={"events": events}).json()
    assert body["accepted"] == 5 and len(body["output_events"]) == 2 and body["truncated"] is True
    one = api.post(f"/api/v1/pipelines/{pid}/events", json=events[0]).json()
    assert "truncated" not in one


def test_batch_inject_10k(api: Api) -> None:
    pid = api.deploy(THRESHOLD)
    events = [{"event_type": "SensorReading", "fields": {"sensor": f"s{i % 7}",
                                                          "temperature": 90 + i % 20}}
              for i in range(10_000)]  # fmt: skip
    r = api.post(f"/api/v1/pipelines/{pid}/events-batch", json={"events": events})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["accepted"] == 10_000 and isinstance(body["processing_time_us"], int)
    hot = [e for e in events if e["fields"]["temperature"] > 100]
    assert len(body["output_events"]) == len(hot)
    assert body["output_events"][0] == {"event_type": "Hot", "sensor": hot[0]["fields"]["sensor"],
                                        "t": hot[0]["fields"]["temperature"]}  # fmt: skip


def test_batch_bad_item_is_rejected_whole(api: Api) -> None:
    pid = api.deploy()
    events = [{"event_type": "EventA", "fields": {}}, {"fields": {}}]
    r = api.post(f"/api/v1/pipelines/{pid}/events-batch", json={"events": events})
    assert r.status_code == 400 and r.json()["error"].startswith("events[1]:")
    assert api.get(f"/api/v1/pipelines/{pid}/metrics").json()["events_in"] == 0
    r = api.post(f"/api/v1/pipelines/{pid}/events-batch", json={"events": {"a": 1}})
    assert r.status_code == 400


def test_pipeline_metrics_are_per_pipeline(api: Api) -> None:
    a, b = api.deploy(TUTORIAL_A, "a"), api.deploy(TUTORIAL_A, "b")
    for _ in range(3):
        api.post(f"/api/v1/pipelines/{a}/events", json={"event_type": "EventA", "fields": {}})
    api.post(f"/api/v1/pipelines/{a}/events", json={"event_type": "Other", "fields": {}})
    m = api.get(f"/api/v1/pipelines/{a}/metrics").json()
    assert m["pipeline_id"] == a
    assert (m["events_in"], m["events_out"], m["errors"]) == (4, 3, 0)
    assert m["streams"]["A"] == {"events_in": 3, "events_out": 3, "errors": 0}
    assert api.get(f"/api/v1/pipelines/{b}/metrics").json()["events_in"] == 0


def test_reload_swaps_program_atomically(api: Api) -> None:
    pid = api.deploy(TUTORIAL_A)
    new = 'stream A = EventA .emit(result: "v2")'
    r = api.post(f"/api/v1/pipelines/{pid}/reload", json={"source": new})
    assert r.status_code == 200 and r.json()["reloaded"] is True
    out = api.post(f"/api/v1/pipelines/{pid}/events", json={"event_type": "EventA", "fields": {}})
    assert out.json()["output_events"] == [{"event_type": "A", "result": "v2"}]
    assert api.get(f"/api/v1/pipelines/{pid}").json()["source"] == new
    bad = api.post(f"/api/v1/pipelines/{pid}/reload", json={"source": "stream A = ("})
    assert bad.status_code == 400 and "line" in bad.json()
    out = api.post(f"/api/v1/pipelines/{pid}/events", json={"event_type": "EventA", "fields": {}})
    assert out.json()["output_events"] == [{"event_type": "A", "result": "v2"}]
    r = api.post(f"/api/v1/pipelines/{pid}/reload", json={})
    assert r.status_code == 400 and r.json()["code"] == "bad_request"


def test_max_pipelines_429(start) -> None:
    api = Api(start(max_pipelines=2).url)
    first = api.deploy()
    api.deploy()
    r = api.post("/api/v1/pipelines", json={"name": "x", "source": TUTORIAL_A})
    assert r.status_code == 429 and r.json()["code"] == "pipeline_limit_reached"
    assert "--max-pipelines 2" in r.json()["error"]
    api.delete(f"/api/v1/pipelines/{first}")
    api.deploy()


def test_unknown_route_and_wrong_method(api: Api) -> None:
    r = api.get("/nope")
    assert r.status_code == 404 and r.json()["code"] == "not_found"
    r = api.request("PUT", "/api/v1/pipelines")
    assert r.status_code == 405 and r.json()["code"] == "method_not_allowed"
    assert set(r.headers["allow"].split(",")) >= {"GET", "POST"}
    r = api.post("/health")
    assert r.status_code == 405 and r.headers["content-type"] == "application/json"


def test_body_limits_413(api: Api) -> None:
    pid = api.deploy()
    big = b'{"event_type": "EventA", "fields": {"x": "' + b"a" * (1 << 20) + b'"}}'
    r = api.post(f"/api/v1/pipelines/{pid}/events", data=big)
    assert r.status_code == 413 and r.json()["code"] == "payload_too_large"
    r = api.post("/api/v1/pipelines", data=big)
    assert r.status_code == 413
    # The batch route takes up to 16 MiB ...
    r = api.post(f"/api/v1/pipelines/{pid}/events-batch",
                 data=b'{"events": [], "pad": "' + b"a" * (2 << 20) + b'"}')  # fmt: skip
    assert r.status_code == 200 and r.json()["accepted"] == 0
    r = api.post(f"/api/v1/pipelines/{pid}/events-batch",
                 data=b'{"events": [], "pad": "' + b"a" * (16 << 20) + b'"}')  # fmt: skip
    assert r.status_code == 413 and r.json()["code"] == "payload_too_large"


def test_metrics_404_without_flag(api: Api) -> None:
    r = api.get("/metrics")
    assert r.status_code == 404 and r.json()["code"] == "not_found"


def test_prometheus_metrics(start) -> None:
    worker = start(metrics=True)
    api = Api(worker.url)
    pid = api.deploy(TUTORIAL_A, "tut")
    api.post(f"/api/v1/pipelines/{pid}/events", json={"event_type": "EventA", "fields": {}})
    r = Api(worker.url, key=None).get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    text = r.text
    assert f'varpulis_pipeline_events_total{{name="tut",pipeline="{pid}"}} 1.0' in text
    assert f'varpulis_stream_output_events_total{{pipeline="{pid}",stream="A"}} 1.0' in text
    assert "varpulis_pipelines 1.0" in text and "process_cpu_seconds_total" in text


def _batch_response(api: Api, pid: str, events: list) -> dict:
    r = api.post(f"/api/v1/pipelines/{pid}/events-batch", json={"events": events})
    assert r.status_code == 200, r.text
    body = r.json()
    del body["processing_time_us"]
    return body


@pytest.mark.parametrize(
    ("tail", "hot"), [([], 90), ([101.5, "hot", None, True, 2**70], 92)], ids=["ints", "mixed"]
)
def test_batch_rows_path_answers_as_the_event_path(api: Api, tail: list, hot: int) -> None:
    temps = [90 + i % 20 for i in range(200)] + tail
    uniform = [{"event_type": "SensorReading", "fields": {"sensor": f"s{i % 7}", "temperature": t}}
               for i, t in enumerate(temps)]  # fmt: skip
    general = [dict(item, data={}) for item in uniform]  # an extra key: the per-item path
    pid, other = api.deploy(THRESHOLD), api.deploy(THRESHOLD, name="q")
    fast = _batch_response(api, pid, uniform)
    assert fast == _batch_response(api, other, general)
    assert fast["accepted"] == len(temps) and len(fast["output_events"]) == hot
    metrics = api.get(f"/api/v1/pipelines/{pid}/metrics").json()
    assert metrics == dict(api.get(f"/api/v1/pipelines/{other}/metrics").json(), pipeline_id=pid)


@pytest.mark.parametrize(
    "items",
    [
        [],
        [{"event_type": "A", "fields": {}}, {"event_type": "B", "fields": {}}],
        [{"event_type": "A", "fields": {"timestamp": 5}}],
        [{"event_type": "A", "fields": {}, "timestamp": 5}],
        [{"event_type": "", "fields": {}}],
        [{"event_type": "A", "fields": []}],
        [["event_type", "fields"]],
        [{"event_type": "A", "data": {}}],
        ["ab"],
        [5],
        [{"event_type": 3, "fields": {}}],
        [{"event_type": "A", "fields": "xy"}],
        [{"event_type": "A", "fields": {}}, {"event_type": "A", "fields": None}],
    ],
)
def test_uniform_batches_only(items: list) -> None:
    from varpulis.server.app import uniform_rows

    assert uniform_rows(items) is None
    assert uniform_rows([{"event_type": "A", "fields": {"x": 1}}] * 3) == ("A", [{"x": 1}] * 3)
