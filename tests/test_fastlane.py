"""varpulis.fastlane: hot POST routes answer exactly as the bottle route would."""

from __future__ import annotations

import io
import json
import logging
from typing import Any

import pytest
import requests

from varpulis.errors import NotFound
from varpulis.fastlane import FastLane
from varpulis.web import make_app, serve

KEY = "s3cret"
LIMIT = 64


def _handler(group_id: str, body: bytes, query: str) -> Any:
    if group_id == "missing":
        raise NotFound(f"group {group_id!r} not found")
    if group_id == "boom":
        raise RuntimeError("a bug")
    if group_id == "raw":
        return b'{"raw":true}'
    if group_id == "unencodable":
        return {"value": object()}  # a bug too: answered 500 like any other
    return {"group": group_id, "body": body.decode(), "query": query}


def _open(item: str, body: bytes, query: str) -> dict[str, Any]:
    return {"item": item}


def _lane(key: str | None = KEY) -> FastLane:
    lane = FastLane(make_app(key), key)
    lane.post("/groups/<group_id>/inject", _handler, max_body=LIMIT)
    lane.post("/open/<item>", _open, auth=False)
    return lane


def _call(app: Any, method: str, path: str, body: bytes = b"", key: str | None = KEY,
          length: str | None = None, query: str = "") -> tuple[str, dict[str, Any]]:  # fmt: skip
    environ = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "CONTENT_LENGTH": str(len(body)) if length is None else length,
    }
    if key is not None:
        environ["HTTP_X_API_KEY"] = key
    seen: list[Any] = []
    out = b"".join(app(environ, lambda status, headers, exc=None: seen.append((status, headers))))
    status, headers = seen[0]
    assert dict(headers)["Content-Type"].startswith("application/json"), headers
    return status, json.loads(out)


CASES = [
    ("POST", "/groups/g1/inject", b'{"a":1}', KEY, None, "wait=true"),
    ("POST", "/groups/raw/inject", b"{}", KEY, None, ""),
    ("POST", "/groups/g1/inject", b"{}", None, None, ""),  # no key
    ("POST", "/groups/g1/inject", b"{}", "wrong", None, ""),
    ("POST", "/groups/g1/inject", b"x" * (LIMIT + 1), "wrong", None, ""),  # 413 before 401
    ("POST", "/groups/g1/inject", b"", KEY, None, ""),  # empty body
    ("POST", "/groups/g1/inject", b"{}", KEY, "12x", ""),  # malformed Content-Length
    ("POST", "/groups/missing/inject", b"{}", KEY, None, ""),
    ("POST", "/groups/boom/inject", b"{}", KEY, None, ""),
    ("POST", "/groups/unencodable/inject", b"{}", KEY, None, ""),
    ("POST", "/groups/g\xc3\xa9/inject", b"{}", KEY, None, ""),  # UTF-8 read as latin-1
    ("POST", "//groups/g1/inject", b"{}", KEY, None, ""),
    ("POST", "/open/x", b"{}", None, None, ""),
    ("GET", "/groups/g1/inject", b"", KEY, None, ""),  # bottle's 405
    ("POST", "/groups/g1/inject/more", b"{}", KEY, None, ""),  # bottle's 404
]


@pytest.mark.parametrize("case", CASES, ids=[f"{c[0]} {c[1]} {c[3]} {c[4]}" for c in CASES])
def test_the_lane_answers_as_the_bottle_route(
    case: tuple[Any, ...], caplog: pytest.LogCaptureFixture
) -> None:
    lane = _lane()
    with caplog.at_level(logging.CRITICAL):
        assert _call(lane, *case) == _call(lane.app, *case)


def test_answers_in_detail(caplog: pytest.LogCaptureFixture) -> None:
    lane = _lane()
    status, body = _call(lane, "POST", "/groups/g1/inject", b'{"a":1}', query="q=1")
    assert (status, body) == ("200 OK", {"group": "g1", "body": '{"a":1}', "query": "q=1"})
    assert _call(lane, "POST", "/groups/raw/inject", b"{}") == ("200 OK", {"raw": True})
    status, body = _call(lane, "POST", "/groups/g1/inject", b"{}", key="nope")
    assert (status, body["code"]) == ("401 Unauthorized", "unauthorized")
    status, body = _call(lane, "POST", "/groups/g1/inject", b"x" * 100)
    assert (status[:4], body["code"]) == ("413 ", "payload_too_large")  # phrase per Python
    assert _call(lane, "POST", "/groups/missing/inject", b"{}")[1]["code"] == "not_found"
    # a bug in a handler: logged with its traceback, answered without details
    status, body = _call(lane, "POST", "/groups/boom/inject", b"{}")
    internal = {"error": "internal server error", "code": "internal_error"}
    assert (status, body) == ("500 Internal Server Error", internal)
    assert "unhandled error in POST /groups/boom/inject" in caplog.text
    assert "RuntimeError: a bug" in caplog.text
    # the path parameter as bottle decodes it (UTF-8)
    path = "/groups/" + "gé".encode().decode("latin-1") + "/inject"
    assert _call(lane, "POST", path, b"{}")[1]["group"] == "gé"


def test_date_header_formatted_once_a_second() -> None:
    now = [784111777.9]
    lane = FastLane(make_app(None), None, clock=lambda: now[0])
    lane.post("/open/<item>", _open, auth=False)
    seen: list[Any] = []
    environ = {"REQUEST_METHOD": "POST", "PATH_INFO": "/open/x", "CONTENT_LENGTH": "2",
               "wsgi.input": io.BytesIO(b"{}")}  # fmt: skip
    lane(environ, lambda status, headers: seen.append(dict(headers)["Date"]))
    assert seen == ["Sun, 06 Nov 1994 08:49:37 GMT"]  # RFC 9110's example date
    now[0] += 1.0
    environ["wsgi.input"] = io.BytesIO(b"{}")
    lane(environ, lambda status, headers: seen.append(dict(headers)["Date"]))
    assert seen[-1] == "Sun, 06 Nov 1994 08:49:38 GMT"


def test_no_key_configured_means_open() -> None:
    lane = _lane(key=None)
    assert _call(lane, "POST", "/groups/g1/inject", b"{}", key=None)[0] == "200 OK"


def test_served_over_http_with_keep_alive() -> None:
    handle = serve(_lane(), port=0, threads=2)
    try:
        with requests.Session() as s:
            url = f"{handle.url}/groups/g2/inject"
            for _ in range(3):  # one connection, several requests
                r = s.post(url, data=b'{"k":2}', headers={"x-api-key": KEY})
                assert r.status_code == 200 and r.json()["group"] == "g2"
                assert r.headers["content-type"] == "application/json"
                assert r.headers["date"].endswith(" GMT") and r.headers["server"] == "varpulis"
            r = s.post(url, data=b"{}", headers={"x-api-key": "bad"})
            assert (r.status_code, r.json()["code"]) == (401, "unauthorized")
            assert s.get(f"{handle.url}/nowhere").status_code == 404
    finally:
        handle.close()
