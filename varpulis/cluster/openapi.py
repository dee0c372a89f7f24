"""The coordinator's OpenAPI 3.0 document, served at ``GET /openapi.json``.

Written by hand from one table (path, method, summary, success status, error
statuses, request schema), so a test can compare it with the routes the app
registers: every route is documented and every documented path is a route.
``/metrics`` is always registered by the CLI. Built once, shared read-only.
"""

from __future__ import annotations

import copy
import functools
from typing import Any

from varpulis import __version__

__all__ = ["openapi_document"]

_S, _I, _B, _O = ({"type": "string"}, {"type": "integer"}, {"type": "boolean"}, {"type": "object"})
_WHY = {
    400: "Malformed body, invalid VPL (with pipeline, line, column, snippet)",
    401: "Missing or wrong x-api-key",
    404: "Unknown worker or group (code names which)",
    413: "Body over the size limit",
    502: "The worker could not be reached (routing_failed)",
    503: "No worker available (no_workers_available)",
}


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _props(**props: Any) -> dict[str, Any]:
    return {"type": "object", "properties": props}


_WORKER = _props(
    id=_S,
    address=_S,
    status={"type": "string", "enum": ["registering", "ready", "busy", "unhealthy", "draining"]},
    pipelines_running=_I,
    max_pipelines=_I,
    assigned_pipelines={"type": "array", "items": _S},
    cpu_cores=_I,
    events_processed=_I,
    last_heartbeat_secs={"type": "number"},
)
_PLACEMENT = _props(
    pipeline_name=_S,
    worker_id=_S,
    worker_address=_S,
    pipeline_id=_S,
    status={"type": "string", "enum": ["Running", "Failed", "Deploying"]},
    error=_S,
)
_ROUTE = _props(from_pipeline=_S, to_pipeline=_S, event_types={"type": "array", "items": _S})
_GROUP = _props(
    id=_S,
    name=_S,
    status={"type": "string", "enum": ["running", "partially_running", "failed", "deploying"]},
    pipeline_count=_I,
    placements={"type": "array", "items": _ref("Placement")},
)
_SPEC = _props(
    name=_S,
    placement={"type": "string", "enum": ["round-robin", "least-loaded"]},
    pipelines={"type": "array", "items": _props(name=_S, source=_S, worker_affinity=_S)},
    routes={"type": "array", "items": _ref("Route")},
)
_EVENT = _props(event_type=_S, fields=_O)
_REGISTER = _props(
    worker_id=_S,
    address=_S,
    api_key=_S,
    pipelines={"type": "array", "items": _S},
    capacity=_props(cpu_cores=_I, pipelines_running=_I, max_pipelines=_I),
)
_HEARTBEAT = _props(
    events_processed=_I, pipelines_running=_I, pipelines={"type": "array", "items": _S}
)
_OUTPUTS = {"type": "array", "items": {"type": "object", "additionalProperties": True}}

_G, _W = "/api/v1/cluster/pipeline-groups/{group_id}", "/api/v1/cluster/workers/{worker_id}"
#: (path, method, summary, status, response schema, errors, request schema, secured)
_TABLE: list[tuple[str, str, str, int, dict[str, Any], tuple[int, ...], Any, bool]] = [
    (
        "/health",
        "get",
        "Liveness and counts",
        200,
        _props(
            role=_S,
            status=_S,
            version=_S,
            uptime_seconds={"type": "number"},
            workers=_O,
            pipeline_groups=_I,
        ),
        (),
        None,
        False,
    ),
    ("/ready", "get", "Readiness", 200, _props(status=_S, role=_S), (), None, False),
    ("/openapi.json", "get", "This document", 200, _O, (), None, False),
    ("/metrics", "get", "Prometheus text", 200, _S, (), None, False),
    (
        "/api/v1/cluster/workers/register",
        "post",
        "Register (or update) a worker; admin key, --worker-key, or loopback without --worker-key",
        201,
        _props(worker_id=_S, status=_S),
        (400, 401),
        _REGISTER,
        True,
    ),
    (
        _W + "/heartbeat",
        "post",
        "Worker heartbeat",
        200,
        _props(acknowledged=_B),
        (400, 401, 404),
        _HEARTBEAT,
        True,
    ),
    (
        "/api/v1/cluster/workers",
        "get",
        "List workers (registration order)",
        200,
        _props(workers={"type": "array", "items": _ref("Worker")}, total=_I),
        (401,),
        None,
        True,
    ),
    (_W, "get", "One worker", 200, _ref("Worker"), (401, 404), None, True),
    (
        _W,
        "delete",
        "Deregister a worker (tombstoned: its heartbeats get 404)",
        200,
        _props(deleted=_B),
        (401, 404),
        None,
        True,
    ),
    (
        _W + "/drain",
        "post",
        "Move a worker's pipelines away; it stays draining",
        200,
        _props(worker_id=_S, status=_S, pipelines_migrated=_I, pipelines_remaining=_I),
        (400, 401, 404),
        _props(timeout_secs={"type": "number"}),
        True,
    ),
    (
        "/api/v1/cluster/rebalance",
        "post",
        "Even out placements across ready workers",
        200,
        _props(
            migrations_started=_I, migrations_completed=_I, moved={"type": "array", "items": _O}
        ),
        (401,),
        None,
        True,
    ),
    (
        "/api/v1/cluster/pipeline-groups",
        "post",
        "Validate, place and deploy a group",
        201,
        _ref("Group"),
        (400, 401, 503),
        _SPEC,
        True,
    ),
    (
        "/api/v1/cluster/pipeline-groups",
        "get",
        "List groups",
        200,
        _props(pipeline_groups={"type": "array", "items": _ref("Group")}, total=_I),
        (401,),
        None,
        True,
    ),
    (_G, "get", "One group (with its routes)", 200, _ref("Group"), (401, 404), None, True),
    (
        _G,
        "delete",
        "Tear a group down (delete its pipelines from the workers)",
        200,
        _props(torn_down=_B, errors={"type": "array", "items": _O}),
        (401, 404),
        None,
        True,
    ),
    (
        _G + "/inject",
        "post",
        "Route one event",
        200,
        _props(
            routed_to=_S,
            worker_id=_S,
            worker_response=_props(accepted=_B, output_events=_OUTPUTS),
            forwarded={"type": "array", "items": _O},
        ),
        (400, 401, 404, 413, 502),
        _EVENT,
        True,
    ),
    (
        _G + "/inject-batch",
        "post",
        "Route events; one events-batch call per target",
        200,
        _props(
            accepted=_I,
            events_failed=_I,
            results={"type": "array", "items": _O},
            output_events=_OUTPUTS,
            forwarded={"type": "array", "items": _O},
        ),
        (400, 401, 404, 413, 502),
        _props(events={"type": "array", "items": _EVENT}),
        True,
    ),
    (
        "/api/v1/cluster/topology",
        "get",
        "Every group's placements and routes",
        200,
        _props(groups={"type": "array", "items": _O}),
        (401,),
        None,
        True,
    ),
]


def _parameters(path: str) -> list[dict[str, Any]]:
    return [
        {"name": name, "in": "path", "required": True, "schema": _S}
        for name in ("worker_id", "group_id")
        if "{" + name + "}" in path
    ]


@functools.lru_cache(maxsize=1)
def _document() -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    error = {"content": {"application/json": {"schema": _ref("Error")}}}
    for path, method, summary, status, schema, errors, body, secured in _TABLE:
        kind = "text/plain" if path == "/metrics" else "application/json"
        responses: dict[str, Any] = {
            str(status): {"description": "Success", "content": {kind: {"schema": schema}}}
        }
        responses.update({str(s): {"description": _WHY[s], **error} for s in errors})
        op: dict[str, Any] = {
            "summary": summary,
            "responses": responses,
            "security": [{"apiKey": []}] if secured else [],
        }
        if _parameters(path):
            op["parameters"] = _parameters(path)
        if body is not None:
            op["requestBody"] = {
                "required": method != "post" or "drain" not in path,
                "content": {"application/json": {"schema": body}},
            }
        paths.setdefault(path, {})[method] = op
    return {
        "openapi": "3.0.3",
        "info": {"title": "Varpulis coordinator API", "version": __version__},
        "paths": paths,
        "components": {
            "securitySchemes": {"apiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"}},
            "schemas": {
                "Error": {**_props(error=_S, code=_S), "required": ["error", "code"]},
                "Worker": _WORKER,
                "Placement": _PLACEMENT,
                "Route": _ROUTE,
                "Group": _GROUP,
            },
        },
    }


def openapi_document() -> dict[str, Any]:
    """The coordinator's OpenAPI document (a fresh copy the caller may mutate)."""
    return copy.deepcopy(_document())
