"""Compile a stream's operations into stages: plain callables over event lists.

A *stage* takes the stream's current events (a list) and returns the events
that go on; stages are built once per stream by :func:`compile_stages` from
the registry :data:`STAGES` (operation name → builder). Output events (those
``.emit`` produces, or ``.process``'s when the stream has no ``.emit``) are
appended to :attr:`StreamEnv.outputs` by the stage that makes them. All stages
of one engine share one :class:`~varpulis.compiler.evalctx.EvalContext`,
whose ``event`` each stage sets before evaluating compiled code; stages belong
to the engine's thread.

Chunks. ``.process(f(args))`` runs *f* as a SIMT kernel when it can
(:mod:`varpulis.compiler.simt`) and then yields
:class:`~kernels.columnar.ColumnarBatch` items (one per run of rows of one emit
site) among its events. From that stage on, a stream's item lists and its
``outputs`` may hold batches: stages marked ``columnar`` (``.to``) take them
as they are, every other stage gets them materialised into events first
(:func:`materialise`), so no stage written for events ever sees a batch.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kernels.columnar import ColumnarBatch
from varpulis.compiler.evalctx import EvalContext
from varpulis.compiler.exprs import compile_expr, compile_predicate
from varpulis.compiler.scope import Scope
from varpulis.compiler.simt import ProcessKernel
from varpulis.compiler.values import MISSING, display
from varpulis.errors import VPLSemanticError
from varpulis.events import Event
from varpulis.lang import ast

__all__ = [
    "STAGES",
    "Item",
    "Stage",
    "StreamEnv",
    "compile_stages",
    "count_rows",
    "materialise",
    "single_event_path",
]

logger = logging.getLogger("varpulis.runtime")

#: What stage lists and stream outputs hold once a kernel produced batches.
Item = Event | ColumnarBatch
Stage = Callable[[list[Event]], list[Event]]
Builder = Callable[["StreamEnv", ast.Op], "Stage | None"]

#: Operation name → stage builder. ``None`` from a builder: nothing to run.
STAGES: dict[str, Builder] = {}

_DISTINCT_CAP = 100_000


def stage(*names: str) -> Callable[[Builder], Builder]:
    """Register a stage builder for the operations *names*."""

    def register(fn: Builder) -> Builder:
        for name in names:
            STAGES[name] = fn
        return fn

    return register


@dataclass(slots=True)
class StreamEnv:
    """What stage builders of one stream share.

    ``sink_for(connector, params)`` returns a callable that sends a list of
    events to a connector; ``outputs`` is the list the stream's output events
    are appended to (the runner empties it after each run); ``flushers``
    pairs each windowed stage's index with a callable releasing what it holds.
    ``vectorise`` lets ``.process`` run functions as kernels; ``kernels`` lists
    the stream's :class:`~varpulis.compiler.simt.ProcessKernel` (for metrics);
    ``columnar`` is set once a stage may yield batches.
    """

    name: str
    scope: Scope
    ctx: EvalContext
    sink_for: Callable[[str, dict[str, Any]], Callable[[list[Event]], None]]
    has_emit: bool = False
    partition_by: str | None = None
    outputs: list[Event] = field(default_factory=list)
    flushers: list[tuple[int, Callable[[], list[Event]]]] = field(default_factory=list)
    cross_context: list[str] = field(default_factory=list)
    vectorise: bool = True
    kernels: list[ProcessKernel] = field(default_factory=list)
    columnar: bool = False

    def error(self, message: str, node: Any) -> VPLSemanticError:
        return self.scope.error(message, node)


def single_event_path(stages: list[Stage]) -> Callable[[Event], Event | None] | None:
    """A function running *stages* on one event without lists, when every stage
    maps one event to at most one (``where``, ``select``, ``emit``); else None."""
    ones = [getattr(s, "one", None) for s in stages]
    if not ones or None in ones:
        return None
    if len(ones) == 1:
        return ones[0]
    if len(ones) == 2:
        first, second = ones

        def run_two(ev: Event) -> Event | None:
            ev = first(ev)
            return None if ev is None else second(ev)

        return run_two

    def run_all(ev: Event | None) -> Event | None:
        for fn in ones:
            ev = fn(ev)
            if ev is None:
                return None
        return ev

    return run_all


def compile_stages(env: StreamEnv, ops: list[ast.Op]) -> list[Stage]:
    """Build the stages for *ops* in order (window + aggregate fuse into one)."""
    env.has_emit = any(op.name == "emit" for op in ops)
    stages: list[Stage] = []
    i = 0
    while i < len(ops):
        op = ops[i]
        if op.name == "window":
            agg = ops[i + 1] if i + 1 < len(ops) and ops[i + 1].name == "aggregate" else None
            stages.append(_window_stage(env, op, agg, len(stages)))
            i += 2 if agg is not None else 1
            continue
        builder = STAGES.get(op.name)
        if builder is None:
            msg = f"operation .{op.name}() is not supported here"
            raise env.error(msg, op)
        columnar = env.columnar
        built = builder(env, op)
        if built is not None:
            if columnar and not getattr(built, "columnar", False):
                built = _materialising(built)
            stages.append(built)
        i += 1
    return stages


def materialise(items: list[Any]) -> list[Event]:
    """*items* with every :class:`ColumnarBatch` expanded into its events, in order."""
    out: list[Event] = []
    for item in items:
        if type(item) is ColumnarBatch:
            kind = item.event_type
            out.extend(Event(kind, fields, ts) for fields, ts in item.iter_rows())
        else:
            out.append(item)
    return out


def count_rows(items: list[Any]) -> int:
    """Events in *items*, a batch counting its rows."""
    return sum(len(x) if type(x) is ColumnarBatch else 1 for x in items)


def _materialising(stage_fn: Stage) -> Stage:
    """*stage_fn* behind a guard that expands batches into events."""

    def run(items: list[Any]) -> list[Event]:
        for item in items:
            if type(item) is ColumnarBatch:
                return stage_fn(materialise(items))
        return stage_fn(items)

    return run


@stage("where", "having")
def _where(env: StreamEnv, op: ast.Op) -> Stage:
    pred = compile_predicate(op.args[0], env.scope)
    ctx = env.ctx

    def where(events: list[Event]) -> list[Event]:
        out = []
        for ev in events:
            ctx.event = ev
            if pred(ev.fields, ctx):
                out.append(ev)
        return out

    def one(ev: Event) -> Event | None:
        ctx.event = ev
        return ev if pred(ev.fields, ctx) else None

    where.one = one  # type: ignore[attr-defined]
    return where


def _fields_builder(env: StreamEnv, items: list[tuple[str, Any]]) -> Callable[..., dict]:
    """One compiled call that builds the field dict (MISSING values left out)."""
    return compile_expr(ast.MapLit(tuple(items)), env.scope)


@stage("select")
def _select(env: StreamEnv, op: ast.Op) -> Stage:
    items: list[tuple[str, Any]] = []
    for arg in op.args:
        if not isinstance(arg, ast.Name):
            msg = ".select() takes field names or name: expression"
            raise env.error(msg, arg)
        items.append((arg.id, ast.Name(arg.id, arg.span)))
    items.extend(op.kwargs)
    build = _fields_builder(env, items)
    ctx = env.ctx

    def one(ev: Event) -> Event:
        ctx.event = ev
        return Event(ev.event_type, build(ev.fields, ctx), ev.timestamp)

    def select(events: list[Event]) -> list[Event]:
        return [one(ev) for ev in events]

    select.one = one  # type: ignore[attr-defined]
    return select


@stage("emit")
def _emit(env: StreamEnv, op: ast.Op) -> Stage:
    items: list[tuple[str, Any]] = []
    type_expr = None
    for key, value in op.kwargs:
        if key == "context" and isinstance(value, ast.Name):
            env.cross_context.append(value.id)  # routing target; not a field
        elif key == "event_type":
            type_expr = compile_expr(value, env.scope)
        else:
            items.append((key, value))
    build = _fields_builder(env, items)
    ctx, outputs, name = env.ctx, env.outputs, env.name

    def make(ev: Event) -> Event:
        ctx.event = ev
        kind = name
        if type_expr is not None:
            value = type_expr(ev.fields, ctx)
            kind = value if isinstance(value, str) else name
        return Event(kind, build(ev.fields, ctx), ev.timestamp)

    def emit(events: list[Event]) -> list[Event]:
        out = [make(ev) for ev in events]
        outputs.extend(out)
        return out

    def one(ev: Event) -> Event:
        out = make(ev)
        outputs.append(out)
        return out

    emit.one = one  # type: ignore[attr-defined]
    return emit


@stage("process")
def _process(env: StreamEnv, op: ast.Op) -> Stage:
    node = op.args[0]
    ctx, outputs, has_emit = env.ctx, env.outputs, env.has_emit
    if env.vectorise and ProcessKernel.applies(node, env.scope):
        return _vector_process(env, ProcessKernel(node, env.scope))
    call = compile_expr(node, env.scope)

    def process(events: list[Event]) -> list[Event]:
        out: list[Event] = []
        for ev in events:
            ctx.event = ev
            ctx.emitted = out
            try:
                call(ev.fields, ctx)
            finally:
                ctx.emitted = None
        if not has_emit:
            outputs.extend(out)
        return out

    return process


def _vector_process(env: StreamEnv, kernel: ProcessKernel) -> Stage:
    """``.process(f(args))`` through *kernel*: batches when it runs, events when it falls back."""
    ctx, outputs, has_emit = env.ctx, env.outputs, env.has_emit
    env.kernels.append(kernel)
    env.columnar = True

    def process(events: list[Event]) -> list[Any]:
        out: list[Any] = []
        for ev in events:
            ctx.event = ev
            fields = ev.fields
            values = kernel.arguments(fields, ctx)
            batches = kernel.run(values, ctx, ev.timestamp)
            if batches is not None:
                out.extend(batches)
                continue
            ctx.emitted = out
            try:
                kernel.scalar(values, fields, ctx)
            finally:
                ctx.emitted = None
        if not has_emit:
            outputs.extend(out)
        return out

    return process


@stage("to")
def _to(env: StreamEnv, op: ast.Op) -> Stage:
    conn = op.args[0]
    params = {k: _constant(env, v) for k, v in op.kwargs}
    send = env.sink_for(conn.id, params)
    # sink_for hands out the sink's bound ``send``; batches go to its ``send_batch``
    send_batch = getattr(getattr(send, "__self__", None), "send_batch", None)

    def to(items: list[Any]) -> list[Any]:
        if not items:
            return items
        if not env.columnar:
            send(items)
            return items
        pending: list[Event] = []
        for item in items:
            if type(item) is not ColumnarBatch:
                pending.append(item)
                continue
            if pending:
                send(pending)
                pending = []
            if send_batch is not None:
                send_batch(item)
            else:
                send(materialise([item]))
        if pending:
            send(pending)
        return items

    to.columnar = True  # type: ignore[attr-defined]
    return to


def _constant(env: StreamEnv, node: Any) -> Any:
    value = compile_expr(node, env.scope)({}, EvalContext(None))
    if value is MISSING:
        msg = "a connector parameter must be a constant"
        raise env.error(msg, node)
    return value


@stage("print")
def _print(env: StreamEnv, op: ast.Op) -> Stage:
    parts = [compile_expr(a, env.scope) for a in op.args]
    ctx, name = env.ctx, env.name

    def print_(events: list[Event]) -> list[Event]:
        for ev in events:
            ctx.event = ev
            if parts:
                values = [p(ev.fields, ctx) for p in parts]
                text = " ".join("null" if v is MISSING else display(v) for v in values)
            else:
                text = f"[{name}] {ev.event_type}: {ev.fields}"
            print(f"[PRINT] {text}", flush=True)
        return events

    return print_


_LEVELS = {"error": logging.ERROR, "warn": logging.WARNING, "warning": logging.WARNING,
           "debug": logging.DEBUG, "trace": logging.DEBUG}  # fmt: skip


@stage("log")
def _log(env: StreamEnv, op: ast.Op) -> Stage:
    kw = dict(op.kwargs)
    level = _LEVELS.get(str(_constant(env, kw["level"])) if "level" in kw else "", logging.INFO)
    message = compile_expr(kw["message"], env.scope) if "message" in kw else None
    data = compile_expr(kw["data"], env.scope) if "data" in kw else None
    ctx, name = env.ctx, env.name

    def log(events: list[Event]) -> list[Event]:
        if logger.isEnabledFor(level):
            for ev in events:
                ctx.event = ev
                text = message(ev.fields, ctx) if message else ev.event_type
                payload = data(ev.fields, ctx) if data else ev.fields
                logger.log(level, "[%s] %s %s", name, text, payload)
        return events

    return log


@stage("tap")
def _tap(env: StreamEnv, op: ast.Op) -> Stage:
    # .tap(...) observes without changing anything: it logs at debug level.
    ctx, name = env.ctx, env.name
    parts = [compile_expr(a, env.scope) for a in op.args]

    def tap(events: list[Event]) -> list[Event]:
        if logger.isEnabledFor(logging.DEBUG):
            for ev in events:
                ctx.event = ev
                logger.debug("[%s] tap %s", name, [p(ev.fields, ctx) for p in parts] or ev)
        return events

    return tap


@stage("distinct")
def _distinct(env: StreamEnv, op: ast.Op) -> Stage:
    key = compile_expr(op.args[0], env.scope) if op.args else None
    seen: OrderedDict[Any, None] = OrderedDict()
    ctx = env.ctx

    def distinct(events: list[Event]) -> list[Event]:
        out = []
        for ev in events:
            ctx.event = ev
            k = _hashable(key(ev.fields, ctx) if key else ev.fields)
            if k in seen:
                seen.move_to_end(k)
                continue
            seen[k] = None
            if len(seen) > _DISTINCT_CAP:
                seen.popitem(last=False)
            out.append(ev)
        return out

    return distinct


def _hashable(value: Any) -> Any:
    if isinstance(value, dict):
        return tuple((k, _hashable(v)) for k, v in value.items())
    if isinstance(value, list):
        return tuple(_hashable(v) for v in value)
    return value


@stage("limit", "first")
def _limit(env: StreamEnv, op: ast.Op) -> Stage:
    limit = 1 if op.name == "first" else _constant(env, op.args[0])
    if type(limit) is not int or limit < 0:
        msg = f".limit() needs a non-negative integer, not {limit!r}"
        raise env.error(msg, op)
    count = [0]

    def limited(events: list[Event]) -> list[Event]:
        room = limit - count[0]
        if room <= 0:
            return []
        out = events[:room]
        count[0] += len(out)
        return out

    return limited


@stage("partition_by")
def _partition_by(env: StreamEnv, op: ast.Op) -> None:
    arg = op.args[0]
    if not isinstance(arg, ast.Name):
        msg = ".partition_by() takes a field name"
        raise env.error(msg, arg)
    env.partition_by = arg.id


@stage("context", "from", "watermark", "allowed_lateness", "within", "on")
def _handled_elsewhere(env: StreamEnv, op: ast.Op) -> None:
    """Read by the plan, the engine or the source; nothing runs per event."""


@stage("aggregate")
def _aggregate_alone(env: StreamEnv, op: ast.Op) -> Stage:
    # Without a window every event is its own batch.
    return _window_stage(env, None, op, -1)


def _window_stage(env: StreamEnv, op: ast.Op | None, agg: ast.Op | None, index: int) -> Stage:
    from varpulis.runtime.aggregates import compile_aggregate
    from varpulis.runtime.windows import PartitionedWindow, compile_window

    field_name = env.partition_by
    aggregate = compile_aggregate(agg, env.scope, field_name) if agg is not None else None
    if op is None:
        window = None
    else:
        factory = compile_window(op, env.scope)
        if field_name is not None:
            window = PartitionedWindow(lambda e: e.fields.get(field_name, MISSING), factory)
        else:
            window = factory()
    name = env.name

    def release(batches: list[list[Event]]) -> list[Event]:
        if aggregate is None:
            return [ev for batch in batches for ev in batch]
        out = []
        for batch in batches:
            key = batch[-1].fields.get(field_name, MISSING) if field_name else None
            out.append(Event(name, aggregate(batch, key), batch[-1].timestamp))
        return out

    if window is None:
        return lambda events: release([[ev] for ev in events])

    def windowed(events: list[Event]) -> list[Event]:
        batches: list[list[Event]] = []
        for ev in events:
            batches.extend(window.add(ev))
        return release(batches) if batches else []

    env.flushers.append((index, lambda: release(window.flush())))
    # What a columnar kernel (runtime/window_batch.py) needs to take this stage's place.
    windowed.window = window  # type: ignore[attr-defined]
    windowed.spec = factory  # type: ignore[attr-defined]
    windowed.partition_field = field_name  # type: ignore[attr-defined]
    windowed.aggregate = aggregate  # type: ignore[attr-defined]
    windowed.aggregate_op = agg  # type: ignore[attr-defined]
    return windowed
