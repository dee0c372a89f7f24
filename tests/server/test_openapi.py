"""/openapi.json documents exactly the routes the worker app registers."""

from __future__ import annotations

import re

from tests.server.conftest import Api
from varpulis.server.app import make_worker_app
from varpulis.server.pipelines import PipelineManager


def _registered() -> set[tuple[str, str]]:
    app = make_worker_app(PipelineManager(), metrics=lambda: (b"", "text/plain"))
    return {(r.method.lower(), re.sub(r"<(\w+)>", r"{\1}", r.rule)) for r in app.routes}


def test_every_route_documented_and_vice_versa(worker) -> None:
    doc = Api(worker.url, key=None).get("/openapi.json").json()
    assert doc["openapi"].startswith("3.")
    documented = {(m, path) for path, ops in doc["paths"].items() for m in ops}
    assert documented == _registered()
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            assert op["responses"], (method, path)
            if path.startswith("/api/v1/"):
                assert "401" in op["responses"] and op["security"], (method, path)
