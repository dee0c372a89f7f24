"""The worker's REST routes: a bottle app over a :class:`PipelineManager`.

:func:`make_worker_app` registers ``/health``, ``/ready``, ``/openapi.json``,
``/metrics`` (only when a Prometheus registry is given) and the
``/api/v1/pipelines`` routes. Errors are raised as VarpulisError subclasses and
turned into ``{"error", "code"}`` JSON by the one plugin of :mod:`varpulis.web`;
``/api/v1/*`` needs ``x-api-key`` when a key is set, the root routes never do.
Handlers keep no state of their own: they run on waitress's threads and all
shared state lives in the manager. Inject is the hot path: no logging, no
per-request allocation beyond the JSON bodies.
"""

from __future__ import annotations

import logging
import operator
import re
import time
from collections.abc import Callable
from itertools import repeat
from typing import Any

from bottle import Bottle, HTTPResponse, request

from varpulis import __version__
from varpulis.errors import BadRequest
from varpulis.events import Event, event_from_json, to_api_json
from varpulis.memory import gc_paused
from varpulis.server.openapi import openapi_document
from varpulis.server.pipelines import InjectResult, PipelineManager
from varpulis.web import MIB, add_open_routes, json_body, json_response, make_app

__all__ = ["BATCH_MAX_BODY", "MAX_PAGE", "SINGLE_MAX_BODY", "make_worker_app", "uniform_rows"]

logger = logging.getLogger(__name__)

#: Body limits: 1 MiB for deploy/inject/reload, 16 MiB for a batch inject.
SINGLE_MAX_BODY = MIB
BATCH_MAX_BODY = 16 * MIB
#: Largest ``limit`` of a pipeline list page.
MAX_PAGE = 1000
_DEFAULT_PAGE = 50
#: A pipeline id a client may choose at deploy (the coordinator does, to clean up strays).
_PIPELINE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_PIPELINE = "/api/v1/pipelines/<pipeline_id>"


def _int_param(name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        value = None
    if value is None or not low <= value <= high:
        message = f"query parameter {name!r} must be an integer in [{low}, {high}], got {raw!r}"
        raise BadRequest(message)
    return value


def _event(item: Any, now: int) -> Event:
    """An Event from one decoded JSON event; the common shape skips the general checks.

    ``{"event_type": str, "fields": dict}`` without any ``timestamp`` is by far
    the common body; it is turned into an Event directly, reusing the decoded
    dict (it belongs to this request). Every other shape, and every error,
    goes through :func:`event_from_json`, so the result is the same.
    """
    if type(item) is dict:
        event_type, fields = item.get("event_type"), item.get("fields")
        if (type(event_type) is str and event_type and type(fields) is dict
                and "timestamp" not in item and "timestamp" not in fields):  # fmt: skip
            return Event(event_type, fields, now)
    return event_from_json(item, now_ns=now)


_EVENT_TYPE, _FIELDS = operator.itemgetter("event_type"), operator.itemgetter("fields")


def uniform_rows(items: list[Any]) -> tuple[str, list[dict[str, Any]]] | None:
    """``(event_type, fields dicts)`` when every item is exactly ``{"event_type": T,
    "fields": {...}}`` with one non-empty string T and no ``timestamp`` field.

    That is the common batch body: such items are the events :func:`_event`
    would build with the arrival time, so they go to the engine as rows (no
    Event per item; the columnar path reads the dicts directly). The checks
    run as C-level passes over the list; anything else returns None.
    """
    try:  # a non-dict item or fields value fails a lookup or dict.__contains__: TypeError
        if not items or operator.countOf(map(len, items), 2) != len(items):
            return None
        types = list(map(_EVENT_TYPE, items))
        first = types[0]
        if type(first) is not str or not first or types.count(first) != len(types):
            return None
        rows = list(map(_FIELDS, items))
        if any(map(dict.__contains__, rows, repeat("timestamp"))):
            return None
    except (KeyError, TypeError):
        return None
    return first, rows


def _output_body(result: InjectResult, body: dict[str, Any]) -> dict[str, Any]:
    outputs = result.outputs
    body["output_events"] = outputs if result.api else list(map(to_api_json, outputs))
    if result.truncated:
        body["truncated"] = True
    return body


def _source_field(body: dict[str, Any]) -> str:
    source = body.get("source")
    if not isinstance(source, str):
        message = f'"source" (a string of VPL) is required, got {source!r:.80}'
        raise BadRequest(message)
    return source


def make_worker_app(
    manager: PipelineManager,
    *,
    api_key: str | None = None,
    metrics: Callable[[], tuple[bytes, str]] | None = None,
    started: float | None = None,
    clock: Callable[[], float] = time.monotonic,
    wall_ns: Callable[[], int] = time.time_ns,
) -> Bottle:
    """Build the worker app. *metrics* renders ``(body, content_type)`` for ``/metrics``."""
    app = make_app(api_key)
    started = clock() if started is None else started
    inject, inject_batch, inject_rows = manager.inject, manager.inject_batch, manager.inject_rows

    @app.get("/health", auth=False)
    def health() -> dict[str, Any]:
        return {"status": "healthy", "role": "worker", "version": __version__,
                "uptime_seconds": round(clock() - started, 3)}  # fmt: skip

    @app.get("/ready", auth=False)
    def ready() -> Any:
        if manager.closed:
            body = {"status": "not_ready", "reason": "shutting down"}
            return json_response(body, 503)
        return {"status": "ready", "pipelines_running": len(manager),
                "max_pipelines": manager.max_pipelines}  # fmt: skip

    add_open_routes(app, openapi_document, metrics)

    @app.post("/api/v1/pipelines")
    def deploy() -> HTTPResponse:
        body = json_body()
        pipeline_id = body.get("id")
        if pipeline_id is not None and (
            not isinstance(pipeline_id, str) or not _PIPELINE_ID.fullmatch(pipeline_id)
        ):
            message = f'"id" must be 1-64 letters, digits, ".", "_" or "-"; got {pipeline_id!r:.80}'
            raise BadRequest(message)
        pipeline = manager.deploy(body.get("name"), body.get("source"),  # type: ignore[arg-type]
                                  pipeline_id=pipeline_id)  # fmt: skip
        out = {"id": pipeline.id, "name": pipeline.name, "status": pipeline.status}
        warnings = getattr(pipeline.runtime, "warnings", None)
        if warnings:
            out["warnings"] = warnings
        return json_response(out, 201)

    @app.get("/api/v1/pipelines")
    def list_pipelines() -> dict[str, Any]:
        limit = _int_param("limit", _DEFAULT_PAGE, 1, MAX_PAGE)
        offset = _int_param("offset", 0, 0, 2**31)
        page, total = manager.page(limit, offset)
        pagination = {"total": total, "limit": limit, "offset": offset,
                      "has_more": offset + len(page) < total}  # fmt: skip
        return {"pipelines": page, "total": total, "pagination": pagination}

    @app.get(_PIPELINE)
    def get_pipeline(pipeline_id: str) -> dict[str, Any]:
        return manager.info(pipeline_id)

    @app.delete(_PIPELINE)
    def delete_pipeline(pipeline_id: str) -> dict[str, Any]:
        manager.delete(pipeline_id)
        return {"deleted": True}

    @app.post(_PIPELINE + "/events")
    def inject_one(pipeline_id: str) -> dict[str, Any]:
        body = json_body()
        event = _event(body, wall_ns())
        result = inject(pipeline_id, event, wait=_wants_wait(body))
        return _output_body(result, {"accepted": True})

    @app.post(_PIPELINE + "/events-batch", max_body=BATCH_MAX_BODY)
    def inject_many(pipeline_id: str) -> dict[str, Any]:
        manager.get(pipeline_id)  # 404 before decoding a large body
        # Decoding a batch allocates two dicts per event; with the cyclic collector on,
        # its passes over them cost more than the batch (they make no cycles).
        with gc_paused():
            return _inject_many(pipeline_id)

    def _inject_many(pipeline_id: str) -> dict[str, Any]:
        body = json_body()
        items = body.get("events")
        if not isinstance(items, list):
            message = f'"events" must be a list of events, got {type(items).__name__}'
            raise BadRequest(message)
        begin = time.perf_counter()
        now = wall_ns()
        uniform = uniform_rows(items)
        if uniform is not None:
            event_type, rows = uniform
            result = inject_rows(pipeline_id, event_type, rows, now, wait=_wants_wait(body))
        else:
            events = []
            append = events.append
            for index, item in enumerate(items):
                try:
                    append(_event(item, now))
                except BadRequest as exc:
                    message = f"events[{index}]: {exc}"
                    raise BadRequest(message) from None
            result = inject_batch(pipeline_id, events, wait=_wants_wait(body))
        micros = int((time.perf_counter() - begin) * 1e6)
        return _output_body(result, {"accepted": result.accepted, "processing_time_us": micros})

    @app.get(_PIPELINE + "/metrics")
    def pipeline_metrics(pipeline_id: str) -> dict[str, Any]:
        return manager.metrics(pipeline_id)

    @app.post(_PIPELINE + "/reload")
    def reload(pipeline_id: str) -> dict[str, Any]:
        source = _source_field(json_body())
        manager.reload(pipeline_id, source)
        return {"reloaded": True, "id": pipeline_id}

    return app


def _wants_wait(body: Any) -> bool:
    """``?wait=true`` or ``"wait": true``: wait for every context's outputs (a barrier)."""
    query = request.query.get("wait", "")
    return query.lower() in ("1", "true", "yes") or (
        isinstance(body, dict) and body.get("wait") is True
    )
