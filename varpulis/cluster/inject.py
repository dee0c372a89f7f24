"""Routing injected events to workers, and forwarding outputs between pipelines.

:class:`Router` serves ``POST /pipeline-groups/{id}/inject`` and ``…/inject-batch``.
Targets are resolved under the coordinator's lock (one dict lookup after the
first event of a type); the HTTP call to the worker runs without it. The hot
path avoids JSON work: the request body is decoded once (to read
``event_type``) and forwarded as received, and the worker's answer is spliced
into the response as raw bytes. A batch is forwarded without being decoded
at all when the group has one pipeline, or when the event types its body
names (found by one scan of the bytes, :func:`scan_types`) all go to one
pipeline unrenamed; otherwise it is decoded and split per target.

Inter-pipeline routes (``from_pipeline`` = a pipeline of the group) are served
*through the coordinator*: when a pipeline that such a route reads from
answers an inject, its output events whose type matches are injected into the
route's ``to_pipeline`` (one ``events-batch`` call per target), and so on, up
to ``max_hops`` deep (a cycle stops there, reported as ``hop_limit``). The
response then carries an additive ``forwarded`` list. Outputs that a pipeline
sends only to its sinks (``.to(...)``, or context streams without ``wait``)
are not in the worker's answer and so are not forwarded.

A call whose target moved while it was in flight (worker unreachable or
pipeline 404) is retried once on the current placement; otherwise a failure is
``502 routing_failed``, except a worker's 400/413 (a malformed event), which is
passed back as the caller's error.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from itertools import compress
from operator import itemgetter
from typing import TYPE_CHECKING, Any

from varpulis.cluster.client import WorkerCallError, decode
from varpulis.cluster.routing import forward_targets
from varpulis.errors import BadRequest, PayloadTooLarge, RoutingFailed, VarpulisError
from varpulis.memory import gc_paused
from varpulis.web import parse_json_object
from varpulis.wire import dumps, loads

if TYPE_CHECKING:
    from varpulis.cluster.coordinator import Coordinator, Target

__all__ = ["Router", "scan_types"]

# A key "event_type" and its string value without escapes. Inside a JSON string
# every quote is escaped, so the key never matches within a string's text; it
# may match a nested object's key: the types found are a superset of the
# events' own, which is all the fast path needs, provided every occurrence of
# the key matched (a value with escapes, or not a string, makes the scan give up).
_TYPE_KEY = re.compile(rb'"event_type"[ \t\r\n]*:[ \t\r\n]*"([^"\\]*)"')
#: Most distinct types one scan resolves before the body is decoded instead.
_SCAN_TYPES = 64


def scan_types(raw: bytes) -> set[str] | None:
    """Every string value of an ``"event_type"`` key in JSON text *raw* (a superset
    of its events' types), or None when there are none or too many, or some key's
    value is not a plain string (escapes, another JSON type)."""
    found = _TYPE_KEY.findall(raw)
    if not found or len(found) != raw.count(b'"event_type"'):
        return None
    distinct = set(found)
    if len(distinct) > _SCAN_TYPES:
        return None
    try:
        return {token.decode() for token in distinct}
    except UnicodeDecodeError:
        return None


_TYPE_OF = itemgetter("event_type")


def _event_type(item: Any, where: str) -> str:
    event_type = item.get("event_type") if isinstance(item, dict) else None
    if not isinstance(event_type, str) or not event_type:
        message = f'{where}"event_type" must be a non-empty string, got {event_type!r:.80}'
        raise BadRequest(message)
    return event_type


class Router:
    """Injects events into groups through *coordinator*; *max_hops* bounds forwarding."""

    def __init__(self, coordinator: Coordinator, max_hops: int = 8) -> None:
        self._c, self.max_hops = coordinator, max_hops

    # ------------------------------------------------------------------ calls

    def _call(self, target: Target, send: Callable[[Target], bytes]) -> tuple[Target, bytes]:
        """*send* to *target*; once more to the current placement if it moved meanwhile."""
        try:
            return target, send(target)
        except WorkerCallError as exc:
            first = exc
        if first.status in (None, 404):
            current = self._c.resolve_pipeline(target.group_id, target.pipeline)
            if (current.pipeline_id, current.address) != (target.pipeline_id, target.address):
                try:
                    return current, send(current)
                except WorkerCallError as exc:
                    first, target = exc, current
            if first.status == 404 and first.code == "pipeline_not_found":
                # The worker lost it (restarted without --state-dir): reconcile now.
                self._c.submit(
                    ("reconcile", target.worker_id),
                    self._c.recovery.reconcile,
                    target.worker_id,
                    True,
                )
        if first.status in (400, 413):
            try:
                message = loads(first.body)["error"]
            except (ValueError, KeyError, TypeError):
                message = first.body[:300].decode("utf-8", "replace")
            if first.status == 413:
                msg = f"worker {target.worker_id!r}: {message}"
                raise PayloadTooLarge(msg)
            msg = f"worker {target.worker_id!r} rejected the event(s): {message}"
            raise BadRequest(msg)
        self._c.count(routing_failures=1)
        message = (
            f"event routing to pipeline {target.pipeline!r} on worker "
            f"{target.worker_id!r} failed: {first}"
        )
        raise RoutingFailed(message)

    # ------------------------------------------------------------------ single

    def inject(self, group_id: str, raw: bytes, query: str = "") -> bytes | dict[str, Any]:
        """Route one ``{event_type, fields}`` event; the tutorial's response."""
        body = parse_json_object(raw)
        event_type = _event_type(body, "")
        fields = body.get("fields")
        if fields is None:
            body["fields"] = {}
            raw = dumps(body)
        elif not isinstance(fields, dict):
            message = f'"fields" must be an object, got {type(fields).__name__}'
            raise BadRequest(message)
        delivered = self._c.deliveries_of(group_id)(event_type)[1]
        if delivered != event_type:  # an event family's member, delivered as the family
            body["event_type"] = delivered
            raw = dumps(body)
        target = self._c.resolve(group_id, event_type)
        client = self._c.client
        target, answer = self._call(
            target, lambda t: client.inject(t.address, t.key, t.pipeline_id, raw, query)
        )
        if not target.forwards:
            return b"".join(
                [
                    b'{"routed_to":',
                    dumps(target.pipeline),
                    b',"worker_id":',
                    dumps(target.worker_id),
                    b',"worker_response":',
                    answer,
                    b"}",
                ]
            )
        response = decode(answer)
        forwarded = self._forward(group_id, target.pipeline, response.get("output_events"), 1)
        return {
            "routed_to": target.pipeline,
            "worker_id": target.worker_id,
            "worker_response": response,
            "forwarded": forwarded,
        }

    # ------------------------------------------------------------------ batch

    def inject_batch(self, group_id: str, raw: bytes, query: str = "") -> dict[str, Any]:
        """Route ``{"events": [...]}``: one ``events-batch`` call per target pipeline.

        Response: ``accepted`` (events the workers accepted), ``events_failed``,
        ``results`` (per target: pipeline, worker_id, events, accepted, and
        ``error`` when that call failed), ``output_events`` (the workers'
        outputs, flattened, target by target) and, when the group forwards,
        ``forwarded``. 502 when every target failed. Runs with the cyclic GC paused
        (:mod:`varpulis.memory`): decoding and splitting allocate a dict per event.
        """
        with gc_paused():
            return self._inject_batch(group_id, raw, query)

    def _inject_batch(self, group_id: str, raw: bytes, query: str) -> dict[str, Any]:
        single = self._c.single_pipeline(group_id) or self._one_target(group_id, raw)
        buckets: dict[str, list[Any] | None]
        known: int | None = None  # the event count, when decoded
        if single is not None:  # one possible target: forward the body undecoded
            buckets = {single: None}
        else:
            items = parse_json_object(raw).get("events")
            if not isinstance(items, list):
                message = f'"events" must be a list of events, got {type(items).__name__}'
                raise BadRequest(message)
            buckets, renamed = self._bucket(group_id, items)
            if len(buckets) == 1 and not renamed:  # one target: forward the body as received
                buckets, known = dict.fromkeys(buckets), len(items)
        client = self._c.client
        results, outputs, forwarded = [], [], []
        accepted = failed = 0
        last_error: Exception | None = None
        # Every target's call starts before the first answer is read: the workers (and
        # the encoding of the next body here) work in parallel.
        calls = []
        for name, events in buckets.items():
            payload = raw if events is None else dumps({"events": events})
            target = self._c.resolve_pipeline(group_id, name)

            def send(t: Target, body: bytes = payload) -> bytes:
                return client.inject_batch(t.address, t.key, t.pipeline_id, body, query)

            call = self._c.io.submit(self._call, target, send) if len(buckets) > 1 else None
            calls.append((name, events, target, send, call))
        for name, events, target, send, call in calls:
            result: dict[str, Any] = {"pipeline": name, "worker_id": target.worker_id}
            try:
                target, answer = call.result() if call is not None else self._call(target, send)
                response = decode(answer)
            except (RoutingFailed, WorkerCallError) as exc:
                if events is None:
                    raise
                last_error = exc
                failed += len(events)
                results.append({**result, "events": len(events), "accepted": 0, "error": str(exc)})
                continue
            n = response.get("accepted", 0)
            accepted += n
            results.append(
                {
                    **result,
                    "worker_id": target.worker_id,
                    "events": (known if known is not None else n)
                    if events is None
                    else len(events),
                    "accepted": n,
                }
            )
            outs = response.get("output_events") or []
            outputs.extend(outs)
            if target.forwards:
                forwarded.extend(self._forward(group_id, name, outs, 1))
        if results and accepted == 0 and failed and last_error is not None:
            if isinstance(last_error, RoutingFailed):
                raise last_error
            msg = f"event routing failed: {last_error}"
            raise RoutingFailed(msg)
        self._c.count(batch_events=accepted)
        out: dict[str, Any] = {
            "accepted": accepted,
            "events_failed": failed,
            "results": results,
            "output_events": outputs,
        }
        if forwarded:
            out["forwarded"] = forwarded
        return out

    def _one_target(self, group_id: str, raw: bytes) -> str | None:
        """The pipeline every event of batch body *raw* goes to, as it is (no family
        renamed), judged from :func:`scan_types`; None when that cannot tell."""
        types = scan_types(raw)
        if types is None:
            return None
        deliveries = self._c.deliveries_of(group_id)
        targets = set()
        for event_type in types:
            if not event_type:
                return None
            name, delivered = deliveries(event_type)
            if delivered != event_type:
                return None
            targets.add(name)
        return targets.pop() if len(targets) == 1 else None

    def _bucket(self, group_id: str, items: list[Any]) -> tuple[dict[str, list[Any] | None], bool]:
        """Events per target pipeline, and whether any was renamed to its family's type."""
        deliveries = self._c.deliveries_of(group_id)
        try:
            types = list(map(_TYPE_OF, items))
        except (KeyError, TypeError):
            types = None
        if types is None or set(map(type, types)) != {str} or "" in types:
            for index, item in enumerate(items):  # the first bad item, for the message
                _event_type(item, f"events[{index}]: ")
        target = {t: deliveries(t) for t in dict.fromkeys(types)}  # type: ignore[arg-type]
        renamed = any(delivered != t for t, (_, delivered) in target.items())
        if renamed:  # an event family's members: copies carry the family's type
            items = [
                item if delivered == t else {**item, "event_type": delivered}
                for item, t in zip(items, types, strict=True)  # type: ignore[arg-type]
                for delivered in (target[t][1],)
            ]
        names = {name for name, _ in target.values()}
        if len(names) == 1:
            return {names.pop(): items}, renamed
        # one C-level pass per target pipeline, each keeping the events' order
        name_of = {t: name for t, (name, _) in target.items()}
        per_event = list(map(name_of.__getitem__, types))  # type: ignore[arg-type]
        buckets: dict[str, list[Any] | None] = {
            name: list(compress(items, map(name.__eq__, per_event)))
            for name in dict.fromkeys(per_event)
        }
        return buckets, renamed

    # ------------------------------------------------------------------ forwarding

    def _forward(self, group_id: str, source: str, outputs: Any, hop: int) -> list[dict[str, Any]]:
        """Inject *source*'s matching outputs into the routes' targets; one record per call."""
        if not isinstance(outputs, list) or not outputs:
            return []
        routes = self._c.routes_of(group_id)
        if routes is None:  # torn down meanwhile
            return []
        buckets: dict[str, list[dict[str, Any]]] = {}
        for out in outputs:
            event_type = out.get("event_type") if isinstance(out, dict) else None
            if not isinstance(event_type, str):
                continue
            for target in forward_targets(routes, source, event_type):
                fields = {k: v for k, v in out.items() if k != "event_type"}
                buckets.setdefault(target, []).append({"event_type": event_type, "fields": fields})
        records: list[dict[str, Any]] = []
        client = self._c.client
        for name, events in buckets.items():
            record: dict[str, Any] = {
                "from_pipeline": source,
                "routed_to": name,
                "hop": hop,
                "events": len(events),
            }
            if hop > self.max_hops:
                records.append({**record, "accepted": 0, "error": "hop_limit"})
                continue
            payload = dumps({"events": events})
            try:
                target = self._c.resolve_pipeline(group_id, name)
                target, answer = self._call(
                    target,
                    lambda t, b=payload: client.inject_batch(t.address, t.key, t.pipeline_id, b),
                )
                response = decode(answer)
            except (VarpulisError, WorkerCallError) as exc:
                records.append({**record, "accepted": 0, "error": str(exc)})
                continue
            outs = response.get("output_events") or []
            records.append(
                {
                    **record,
                    "worker_id": target.worker_id,
                    "accepted": response.get("accepted", 0),
                    "output_events": outs,
                }
            )
            self._c.count(forwarded_events=len(events))
            if target.forwards:
                records.extend(self._forward(group_id, name, outs, hop + 1))
        return records
