"""The coordinator's REST routes: a bottle app over a :class:`Coordinator` and a Router.

Root routes (``/health``, ``/ready``, ``/metrics``, ``/openapi.json``) never need
a key. Every ``/api/v1/cluster/*`` route needs ``x-api-key`` = ``--api-key`` when
one is set, except register and heartbeat, which accept the admin key or
``--worker-key``, and, when no ``--worker-key`` is set, any caller on a
loopback address whatever key it carries (so the tutorial's coordinator key
``admin`` and worker key ``test`` work as written on one host). Errors are
VarpulisError subclasses turned into ``{"error", "code"}`` by the one plugin of
:mod:`varpulis.web`. Handlers hold no state; they run on waitress's threads.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable
from typing import Any

from bottle import HTTPResponse, request

from varpulis import __version__
from varpulis.cluster.coordinator import Coordinator
from varpulis.cluster.inject import Router
from varpulis.cluster.openapi import openapi_document
from varpulis.errors import Unauthorized
from varpulis.fastlane import FastLane
from varpulis.web import MIB, add_open_routes, json_body, json_response, key_matches, make_app

__all__ = ["BATCH_MAX_BODY", "PREFIX", "is_loopback", "make_coordinator_app"]

PREFIX = "/api/v1/cluster"
BATCH_MAX_BODY = 16 * MIB
_WORKER = PREFIX + "/workers/<worker_id>"
_GROUP = PREFIX + "/pipeline-groups/<group_id>"


def is_loopback(address: str | None) -> bool:
    """True for 127.0.0.0/8, ::1 and IPv4-mapped loopback addresses."""
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return False
    mapped = getattr(ip, "ipv4_mapped", None)
    return bool(ip.is_loopback or (mapped is not None and mapped.is_loopback))


def _worker_auth(api_key: str | None, worker_key: str | None) -> Callable[[], None]:
    """The check of register/heartbeat callers (see the module docstring)."""
    keys = [k.encode() for k in (api_key, worker_key) if k]

    def check() -> None:
        if not keys:
            return
        # Compare with every key (no early exit): the time does not tell which one matched.
        if any([key_matches(request.environ, key) for key in keys]):  # noqa: C419
            return
        if worker_key is None and is_loopback(request.environ.get("REMOTE_ADDR")):
            return
        message = (
            "missing or invalid x-api-key header: register/heartbeat need the "
            "coordinator's --api-key or --worker-key"
        )
        raise Unauthorized(message)

    return check


def make_coordinator_app(
    coordinator: Coordinator,
    router: Router,
    *,
    api_key: str | None = None,
    worker_key: str | None = None,
    metrics: Callable[[], tuple[bytes, str]] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> FastLane:
    """Build the coordinator's WSGI app: a bottle app behind the fast lane of its two
    inject routes. *metrics* renders ``(body, content_type)`` for ``/metrics``."""
    app = make_app(api_key)
    started = clock()
    worker_auth = _worker_auth(api_key, worker_key)
    c = coordinator

    @app.get("/health", auth=False)
    def health() -> dict[str, Any]:
        summary = c.summary()
        return {
            "role": "coordinator",
            "status": "healthy",
            "version": __version__,
            "uptime_seconds": round(clock() - started, 3),
            "workers": summary["workers"],
            "pipeline_groups": summary["pipeline_groups"],
        }

    @app.get("/ready", auth=False)
    def ready() -> dict[str, Any]:
        return {"status": "ready", "role": "coordinator"}

    add_open_routes(app, openapi_document, metrics)

    # ---------------------------------------------------------------- workers

    @app.post(PREFIX + "/workers/register", auth=False)
    def register() -> HTTPResponse:
        worker_auth()
        return json_response(c.register(json_body()), 201)

    @app.post(_WORKER + "/heartbeat", auth=False)
    def heartbeat(worker_id: str) -> dict[str, Any]:
        worker_auth()
        return c.heartbeat(worker_id, json_body(required=False))

    @app.get(PREFIX + "/workers")
    def list_workers() -> dict[str, Any]:
        return c.workers_json()

    @app.get(_WORKER)
    def get_worker(worker_id: str) -> dict[str, Any]:
        return c.worker_json(worker_id)

    @app.delete(_WORKER)
    def deregister(worker_id: str) -> dict[str, Any]:
        return c.deregister(worker_id)

    @app.post(_WORKER + "/drain")
    def drain(worker_id: str) -> dict[str, Any]:
        return c.recovery.drain(worker_id, json_body(required=False))

    @app.post(PREFIX + "/rebalance")
    def rebalance() -> dict[str, Any]:
        return c.recovery.rebalance()

    # ---------------------------------------------------------------- groups

    @app.post(PREFIX + "/pipeline-groups")
    def deploy() -> HTTPResponse:
        return json_response(c.deploy_group(json_body()), 201)

    @app.get(PREFIX + "/pipeline-groups")
    def list_groups() -> dict[str, Any]:
        return c.groups_json()

    @app.get(_GROUP)
    def get_group(group_id: str) -> dict[str, Any]:
        return c.group_json(group_id)

    @app.delete(_GROUP)
    def teardown(group_id: str) -> dict[str, Any]:
        return c.teardown(group_id)

    # the data path: served by the fast lane (the same contract, less per-request CPU)
    lane = FastLane(app, api_key)
    lane.post(_GROUP + "/inject", router.inject)
    lane.post(_GROUP + "/inject-batch", router.inject_batch, max_body=BATCH_MAX_BODY)

    @app.get(PREFIX + "/topology")
    def topology() -> dict[str, Any]:
        return c.topology()

    return lane
