"""The http sink against a local http.server: payloads, batches, retries, failures."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from varpulis.connectors.base import ConnectorConfig
from varpulis.connectors.http import HttpConfigError, HttpSink
from varpulis.connectors.registry import make_sink
from varpulis.events import Event, dumps_sink


class Hook:
    """Records bodies; answers the statuses in ``plan`` first, then 200."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self.headers: list[dict[str, str]] = []
        self.plan: list[int] = []


@pytest.fixture
def hook() -> Iterator[tuple[Hook, str]]:
    state = Hook()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            body = self.rfile.read(int(self.headers["Content-Length"]))
            status = state.plan.pop(0) if state.plan else 200
            if status == 200:
                state.bodies.append(body)
                state.headers.append(dict(self.headers))
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state, f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()
    server.server_close()


def events(n: int) -> list[Event]:
    return [Event("Alert", {"i": i}, i * 10**9) for i in range(n)]


def sink(url: str, **params: object) -> HttpSink:
    made = make_sink(ConnectorConfig("Hook", "http", {"url": url, **params}))
    assert isinstance(made, HttpSink)
    made._sleep = lambda s: None  # no real backoff waits in tests
    return made


def test_posts_one_payload_per_event(hook: tuple[Hook, str]) -> None:
    state, url = hook
    s = sink(url)
    s.send(events(3))
    assert state.bodies == [dumps_sink(e).encode() for e in events(3)]
    assert state.headers[0]["Content-Type"] == "application/json"
    assert s.sent == 3 and s.dropped == 0
    s.close()


def test_batch_size_posts_arrays(hook: tuple[Hook, str]) -> None:
    state, url = hook
    s = sink(url, batch_size=2)
    s.send(events(5))
    assert [len(json.loads(b)) for b in state.bodies] == [2, 2, 1]
    assert s.sent == 5


def test_retries_5xx_then_succeeds(hook: tuple[Hook, str]) -> None:
    state, url = hook
    state.plan = [503, 500]
    s = sink(url, retries=3)
    s.send(events(1))
    assert len(state.bodies) == 1 and s.sent == 1 and s.retried == 2 and s.failures == 0


def test_gives_up_after_retries_and_counts(hook: tuple[Hook, str]) -> None:
    state, url = hook
    state.plan = [503] * 3
    s = sink(url, retries=2)
    s.send(events(2))
    assert s.failures == 1 and s.dropped == 1 and s.sent == 1  # the second event got through


def test_4xx_is_not_retried(hook: tuple[Hook, str]) -> None:
    state, url = hook
    state.plan = [400]
    s = sink(url)
    s.send(events(1))
    assert s.retried == 0 and s.failures == 1 and s.dropped == 1


def test_connection_refused_is_counted_not_raised() -> None:
    from varpulis.connectors.broker import free_port

    s = sink(f"http://127.0.0.1:{free_port()}/", retries=1, timeout=1)
    s.send(events(2))
    assert s.dropped == 2 and s.failures == 2 and s.retried == 2


def test_backoff_doubles_up_to_the_cap(hook: tuple[Hook, str]) -> None:
    state, url = hook
    state.plan = [503] * 5
    s = sink(url, retries=4, backoff=0.5, backoff_max=1.5)
    waits: list[float] = []
    s._sleep = waits.append
    s.send(events(1))
    assert waits == [0.5, 1.0, 1.5, 1.5]


def test_url_is_required() -> None:
    with pytest.raises(HttpConfigError, match="missing url"):
        HttpSink(ConnectorConfig("Hook", "http", {}))
