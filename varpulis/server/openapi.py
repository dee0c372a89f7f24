"""The worker's OpenAPI 3.0 document, served at ``GET /openapi.json``.

Written by hand (not derived from the routes), so a test can compare the two:
every route the app registers must be documented here and every path here must
be a registered route. ``/metrics`` is documented although it only exists with
``--metrics``. The document is built once and shared read-only.
"""

from __future__ import annotations

import copy
import functools
from typing import Any

from varpulis import __version__

__all__ = ["openapi_document"]

_ERROR = {"$ref": "#/components/schemas/Error"}
_ID = {"name": "pipeline_id", "in": "path", "required": True, "schema": {"type": "string"}}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*statuses: int) -> dict[str, Any]:
    why = {400: "Malformed body or invalid VPL", 401: "Missing or wrong x-api-key",
           404: "Unknown pipeline", 413: "Body over the size limit",
           429: "--max-pipelines reached (code pipeline_limit_reached)",
           503: "Shutting down"}  # fmt: skip
    out = {str(s): _json(_ERROR, why[s]) for s in statuses}
    if "400" in out:
        out["400"] = _json({"oneOf": [_ERROR, {"$ref": "#/components/schemas/VPLError"}]},
                           why[400])  # fmt: skip
    return out


def _obj(props: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": props}
    if required:
        schema["required"] = list(required)
    return schema


_S, _I, _B, _N = ({"type": "string"}, {"type": "integer"}, {"type": "boolean"},
                  {"type": "number"})  # fmt: skip
_EVENT_IN = _obj({"event_type": _S, "fields": {"type": "object"}}, ("event_type",))
_EVENT_OUT = {"type": "object", "properties": {"event_type": _S},
              "additionalProperties": True,
              "description": "Flattened: event_type then the fields in emission order"}  # fmt: skip
_OUTPUTS = {"type": "array", "items": _EVENT_OUT}
_INFO = {"$ref": "#/components/schemas/PipelineInfo"}
_SECURED = [{"apiKey": []}]


def _op(summary: str, responses: dict[str, Any], body: dict[str, Any] | None = None,
        *, path_id: bool = False, secured: bool = True, params: list[Any] | None = None
        ) -> dict[str, Any]:  # fmt: skip
    op: dict[str, Any] = {"summary": summary, "responses": responses}
    parameters = ([_ID] if path_id else []) + (params or [])
    if parameters:
        op["parameters"] = parameters
    if body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    op["security"] = _SECURED if secured else []
    return op


@functools.lru_cache(maxsize=1)
def _document() -> dict[str, Any]:
    paths = {
        "/health": {"get": _op("Liveness", {"200": _json(_obj({
            "status": _S, "role": _S, "version": _S, "uptime_seconds": _N}), "Alive")},
            secured=False)},
        "/ready": {"get": _op("Readiness: can accept pipelines", {
            "200": _json(_obj({"status": _S, "pipelines_running": _I, "max_pipelines": _I}),
                         "Ready"), **_errors(503)}, secured=False)},
        "/openapi.json": {"get": _op("This document", {"200": _json({"type": "object"},
                                                                     "OpenAPI 3 document")},
                                     secured=False)},
        "/metrics": {"get": _op("Prometheus text (only with --metrics; else 404)", {
            "200": {"description": "Prometheus exposition format",
                    "content": {"text/plain": {"schema": _S}}}}, secured=False)},
        "/api/v1/pipelines": {
            "post": _op("Deploy a VPL pipeline", {
                "201": _json(_obj({"id": _S, "name": _S, "status": _S,
                                   "warnings": {"type": "array", "items": _S}}), "Deployed"),
                **_errors(400, 401, 413, 429)},
                _obj({"name": _S, "source": _S, "id": _S}, ("name", "source"))),
            "get": _op("List pipelines (deploy order)", {
                "200": _json(_obj({"pipelines": {"type": "array", "items": _INFO}, "total": _I,
                                   "pagination": {"type": "object"}}), "One page"),
                **_errors(400, 401)},
                params=[{"name": "limit", "in": "query", "schema": {**_I, "default": 50,
                                                                    "maximum": 1000}},
                        {"name": "offset", "in": "query", "schema": {**_I, "default": 0}}]),
        },
        "/api/v1/pipelines/{pipeline_id}": {
            "get": _op("One pipeline", {"200": _json(_INFO, "Pipeline"), **_errors(401, 404)},
                       path_id=True),
            "delete": _op("Stop and remove a pipeline", {
                "200": _json(_obj({"deleted": _B}), "Deleted"), **_errors(401, 404)},
                path_id=True),
        },
        "/api/v1/pipelines/{pipeline_id}/events": {"post": _op("Inject one event", {
            "200": _json(_obj({"accepted": _B, "output_events": _OUTPUTS, "truncated": _B}),
                         "Processed; inline outputs"), **_errors(400, 401, 404, 413)},
            _EVENT_IN, path_id=True)},
        "/api/v1/pipelines/{pipeline_id}/events-batch": {"post": _op("Inject events in order", {
            "200": _json(_obj({"accepted": _I, "output_events": _OUTPUTS,
                               "processing_time_us": _I, "truncated": _B}), "Processed"),
            **_errors(400, 401, 404, 413)},
            _obj({"events": {"type": "array", "items": _EVENT_IN}}, ("events",)), path_id=True)},
        "/api/v1/pipelines/{pipeline_id}/metrics": {"get": _op("Counters of one pipeline", {
            "200": _json(_obj({"pipeline_id": _S, "events_in": _I, "events_out": _I,
                               "errors": _I, "streams": {"type": "object"}}), "Counters"),
            **_errors(401, 404)}, path_id=True)},
        "/api/v1/pipelines/{pipeline_id}/reload": {"post": _op(
            "Replace the program atomically (a bad source keeps the old one)", {
                "200": _json(_obj({"reloaded": _B, "id": _S}), "Reloaded"),
                **_errors(400, 401, 404, 413)},
            _obj({"source": _S}, ("source",)), path_id=True)},
    }  # fmt: skip
    return {
        "openapi": "3.0.3",
        "info": {"title": "Varpulis worker API", "version": __version__},
        "paths": paths,
        "components": {
            "securitySchemes": {"apiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"}},
            "schemas": {
                "Error": _obj({"error": _S, "code": _S}, ("error", "code")),
                "VPLError": _obj(
                    {
                        "error": _S,
                        "code": _S,
                        "line": _I,
                        "column": _I,
                        "message": _S,
                        "snippet": _S,
                        "hint": _S,
                    },
                    ("error", "code", "line", "column", "message"),
                ),
                "PipelineInfo": _obj(
                    {
                        "id": _S,
                        "name": _S,
                        "status": _S,
                        "source": _S,
                        "uptime_secs": _I,
                        "deployed_at": _S,
                    }
                ),
            },
        },  # fmt: skip
    }


def openapi_document() -> dict[str, Any]:
    """The OpenAPI document of the worker API (a fresh copy the caller may mutate)."""
    return copy.deepcopy(_document())
