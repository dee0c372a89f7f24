"""Fixtures: in-process workers on port 0 and an HTTP client bound to one."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from varpulis.server import ServerConfig, WorkerServer, start_worker

KEY = "test"
TUTORIAL_A = 'stream A = EventA .emit(result: "from-a")'


class Api:
    """requests.Session with the worker's base URL and (optionally) its API key."""

    def __init__(self, url: str, key: str | None = KEY, verify: Any = True) -> None:
        self.url = url
        self.session = requests.Session()
        self.verify = verify  # per request: REQUESTS_CA_BUNDLE would override session.verify
        if key is not None:
            self.session.headers["x-api-key"] = key

    def request(self, method: str, path: str, **kw: Any) -> requests.Response:
        kw.setdefault("timeout", 10)
        kw.setdefault("verify", self.verify)
        return self.session.request(method, self.url + path, **kw)

    def get(self, path: str, **kw: Any) -> requests.Response:
        return self.request("GET", path, **kw)

    def post(self, path: str, **kw: Any) -> requests.Response:
        return self.request("POST", path, **kw)

    def delete(self, path: str, **kw: Any) -> requests.Response:
        return self.request("DELETE", path, **kw)

    def deploy(self, source: str = TUTORIAL_A, name: str = "p") -> str:
        r = self.post("/api/v1/pipelines", json={"name": name, "source": source})
        assert r.status_code == 201, r.text
        return r.json()["id"]


@pytest.fixture
def start() -> Iterator[Callable[..., WorkerServer]]:
    """Start workers with ServerConfig overrides; all are closed at teardown."""
    started: list[WorkerServer] = []

    def _start(**overrides: Any) -> WorkerServer:
        config = ServerConfig(**{"port": 0, "api_key": KEY, "threads": 4, **overrides})
        worker = start_worker(config)
        started.append(worker)
        return worker

    yield _start
    for worker in started:
        worker.close(timeout=5)


@pytest.fixture
def worker(start: Callable[..., WorkerServer]) -> WorkerServer:
    return start()


@pytest.fixture
def api(worker: WorkerServer) -> Api:
    return Api(worker.url)
