"""Fixtures: an in-process coordinator on port 0 and real in-process workers.

Workers are real ``varpulis server`` apps (:func:`varpulis.server.start_worker`)
that the tests register and heartbeat for explicitly (:class:`Heartbeats`), so
each test decides when a worker goes silent. Intervals are short (0.1 s sweep,
0.5 s timeout); waiting is always :func:`tests.utils.poll_for`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from varpulis.cluster import CoordinatorConfig, CoordinatorServer, start_coordinator
from varpulis.server import ServerConfig, WorkerServer, start_worker
from varpulis.server.pipelines import default_runtime

ADMIN, WORKER_KEY = "admin", "test"
A_SOURCE = 'stream A = EventA .emit(result: "from-a")'
B_SOURCE = 'stream B = EventB .emit(result: "from-b")'


class Api:
    """A keep-alive client of one coordinator, with the admin key by default."""

    def __init__(self, url: str, key: str | None = ADMIN) -> None:
        self.url, self.session = url, requests.Session()
        if key is not None:
            self.session.headers["x-api-key"] = key

    def request(self, method: str, path: str, **kw: Any) -> requests.Response:
        kw.setdefault("timeout", 15)
        return self.session.request(method, self.url + path, **kw)

    def get(self, path: str, **kw: Any) -> requests.Response:
        return self.request("GET", path, **kw)

    def post(self, path: str, **kw: Any) -> requests.Response:
        return self.request("POST", path, **kw)

    def delete(self, path: str, **kw: Any) -> requests.Response:
        return self.request("DELETE", path, **kw)

    def register(
        self,
        worker_id: str,
        worker: WorkerServer,
        max_pipelines: int = 100,
        key: str | None = WORKER_KEY,
    ) -> requests.Response:
        body = {
            "worker_id": worker_id,
            "address": worker.url,
            "api_key": key,
            "capacity": {
                "cpu_cores": 2,
                "pipelines_running": len(worker.manager),
                "max_pipelines": max_pipelines,
            },
            "pipelines": worker.manager.ids(),
        }
        return self.post("/api/v1/cluster/workers/register", json=body)

    def heartbeat(self, worker_id: str, worker: WorkerServer) -> requests.Response:
        body = {
            "events_processed": 0,
            "pipelines_running": len(worker.manager),
            "pipelines": worker.manager.ids(),
        }
        return self.post(f"/api/v1/cluster/workers/{worker_id}/heartbeat", json=body)

    def deploy(self, spec: dict[str, Any]) -> dict[str, Any]:
        r = self.post("/api/v1/cluster/pipeline-groups", json=spec)
        assert r.status_code == 201, r.text
        return r.json()

    def workers(self) -> dict[str, dict[str, Any]]:
        return {w["id"]: w for w in self.get("/api/v1/cluster/workers").json()["workers"]}

    def inject(self, group_id: str, event_type: str, **fields: Any) -> requests.Response:
        return self.post(
            f"/api/v1/cluster/pipeline-groups/{group_id}/inject",
            json={"event_type": event_type, "fields": fields},
        )


class Heartbeats:
    """Heartbeats every *interval* s for the workers added, like the registration thread."""

    def __init__(self, api: Api, interval: float = 0.1) -> None:
        self.api, self.interval = Api(api.url, None), interval
        self.workers: dict[str, WorkerServer] = {}
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def add(self, worker_id: str, worker: WorkerServer) -> None:
        self.workers[worker_id] = worker

    def remove(self, worker_id: str) -> None:
        self.workers.pop(worker_id, None)

    def _run(self) -> None:
        while not self._halt.wait(self.interval):
            for worker_id, worker in list(self.workers.items()):
                try:
                    r = self.api.heartbeat(worker_id, worker)
                    if r.status_code == 404 and r.json()["code"] == "worker_not_found":
                        self.api.register(worker_id, worker)
                except requests.RequestException:
                    pass

    def stop(self) -> None:
        self._halt.set()
        self._thread.join(5)


class Cluster:
    """A coordinator, its workers (started and registered on demand) and heartbeats."""

    def __init__(self, coordinator: CoordinatorServer) -> None:
        self.coordinator = coordinator
        self.api = Api(coordinator.url)
        self.beats = Heartbeats(self.api)
        self.workers: dict[str, WorkerServer] = {}
        self._all: list[WorkerServer] = []

    def add_worker(
        self,
        worker_id: str,
        *,
        max_pipelines: int = 100,
        beat: bool = True,
        factory: Callable[[str], Any] = default_runtime,
        **config: Any,
    ) -> WorkerServer:
        worker = start_worker(
            ServerConfig(
                **{
                    "port": 0,
                    "api_key": WORKER_KEY,
                    "threads": 4,
                    "max_pipelines": max_pipelines,
                    **config,
                }
            ),
            factory=factory,
        )
        self._all.append(worker)
        self.workers[worker_id] = worker
        r = self.api.register(worker_id, worker, max_pipelines)
        assert r.status_code == 201, r.text
        if beat:
            self.beats.add(worker_id, worker)
        return worker

    def kill(self, worker_id: str) -> None:
        """Stop a worker's heartbeats and the worker itself (its port then refuses)."""
        self.beats.remove(worker_id)
        self.workers.pop(worker_id).close(timeout=2)

    def close(self) -> None:
        self.beats.stop()
        self.coordinator.close(timeout=5)
        for worker in self._all:
            worker.close(timeout=2)


@pytest.fixture
def make_cluster() -> Iterator[Callable[..., Cluster]]:
    """``make_cluster(**CoordinatorConfig overrides)``; everything is closed at teardown."""
    made: list[Cluster] = []

    def make(**overrides: Any) -> Cluster:
        config = CoordinatorConfig(
            **{
                "port": 0,
                "api_key": ADMIN,
                "heartbeat_interval": 0.1,
                "heartbeat_timeout": 0.5,
                "http_timeout": 5.0,
                **overrides,
            }
        )
        cluster = Cluster(start_coordinator(config))
        made.append(cluster)
        return cluster

    yield make
    for cluster in made:
        cluster.close()


@pytest.fixture
def cluster(make_cluster: Callable[..., Cluster]) -> Cluster:
    return make_cluster()


def tutorial_spec() -> dict[str, Any]:
    """Part 4's group, verbatim."""
    return {
        "name": "my-first-group",
        "pipelines": [
            {"name": "pipeline-a", "source": A_SOURCE, "worker_affinity": "worker-0"},
            {"name": "pipeline-b", "source": B_SOURCE, "worker_affinity": "worker-1"},
        ],
        "routes": [
            {"from_pipeline": "_external", "to_pipeline": "pipeline-a", "event_types": ["EventA*"]},
            {"from_pipeline": "_external", "to_pipeline": "pipeline-b", "event_types": ["EventB*"]},
        ],
    }
