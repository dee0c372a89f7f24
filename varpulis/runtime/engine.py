"""The inline engine: runs a pipeline plan on events, one event at a time.

``Engine(plan).process(event)`` delivers the event to every stream that
subscribes to its type, in declaration order; each stream runs its compiled
stages (``varpulis.runtime.operators``). What a stream's ``.emit`` (or
``.process``) produces is returned as output; what is left at the end of a
stream is re-typed to the stream's name and fed, breadth first, to the
streams that read that stream. One input is processed completely (all derived
events) before the next. A runtime error in a stream (a type error, a ``while``
over its step budget) drops that event for that stream, is logged and counted
in :meth:`Engine.metrics`; it never stops the engine. An engine belongs to one
thread.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from varpulis.compiler.evalctx import DEFAULT_STEP_BUDGET, EvalContext
from varpulis.compiler.exprs import compile_expr, compile_predicate
from varpulis.compiler.functions import compile_toplevel
from varpulis.compiler.plan import PipelinePlan, StreamPlan, plan_program
from varpulis.compiler.scope import Scope
from varpulis.compiler.values import MISSING
from varpulis.connectors.base import ConnectorConfig, Sink
from varpulis.connectors.registry import make_sink
from varpulis.errors import VPLRuntimeError
from varpulis.events import Event
from varpulis.lang import ast
from varpulis.runtime.joins import JoinBuffer
from varpulis.runtime.lateness import LatenessTracker
from varpulis.runtime.operators import (
    Item,
    Stage,
    StreamEnv,
    compile_stages,
    count_rows,
    materialise,
    single_event_path,
)

__all__ = ["ALL_CONTEXTS", "Engine", "MAX_CHAIN_DEPTH", "SinkFactory"]

logger = logging.getLogger("varpulis.runtime")

#: Derived-event hops after which a chain of streams is cut (a cycle guard).
MAX_CHAIN_DEPTH = 10
#: Pass as ``context`` to run every stream of the plan, whatever its context.
ALL_CONTEXTS = object()

SinkFactory = Callable[[ConnectorConfig], Sink]


class _Runner:
    """One compiled stream: its entry (filter, sequence, join) and its stages."""

    __slots__ = ("columnar", "decl", "entry", "errors", "events_in", "events_out", "flushers",
                 "forward", "kernels", "name", "one", "outputs", "stages")  # fmt: skip

    def __init__(self, decl: ast.StreamDecl, stages: list[Stage], env: StreamEnv) -> None:
        self.decl = decl
        self.name = decl.name
        self.stages = stages
        self.one = single_event_path(stages)
        self.outputs = env.outputs
        self.flushers = env.flushers
        self.kernels = env.kernels
        self.columnar = env.columnar
        self.entry: Callable[[Event], list[tuple[list[Event], dict]]] | None = None
        self.forward = False
        self.events_in = self.events_out = self.errors = 0

    def run_stages(self, events: list[Event], start: int = 0) -> list[Event]:
        stages = self.stages if start == 0 else self.stages[start:]
        for stage in stages:
            if not events:
                break
            events = stage(events)
        return events


class Engine:
    """Runs a :class:`PipelinePlan` (or a Program / VPL text) on events.

    ``sinks`` builds a sink per connector use (default: the connector
    registry); ``context`` selects the streams to run (``ALL_CONTEXTS``: all,
    None: only those without ``.context``, a name: that context's);
    ``step_budget`` bounds each ``while`` loop of a function call;
    ``vectorise`` lets ``.process(f(...))`` run *f* as a numpy kernel where it can
    (False: always the scalar function; results are the same).

    Chunk protocol: a stream whose ``.process`` runs a kernel produces
    :class:`~kernels.columnar.ColumnarBatch` items; :meth:`process_chunks`
    returns them as they are (``Event | ColumnarBatch``, in output order), while
    :meth:`process`, :meth:`process_batch` and :meth:`flush` return events only
    (batches materialised). Counters count rows, not items.
    """

    def __init__(
        self,
        plan: PipelinePlan | ast.Program | str,
        *,
        sinks: SinkFactory | None = None,
        context: object = ALL_CONTEXTS,
        step_budget: int = DEFAULT_STEP_BUDGET,
        vectorise: bool = True,
    ) -> None:
        self._vectorise = vectorise
        if isinstance(plan, str):
            from varpulis.lang import parse

            plan = parse(plan)
        if isinstance(plan, ast.Program):
            plan = plan_program(plan)
        self.plan = plan
        self.scope = Scope(source=plan.source, filename=plan.filename)
        self.functions = compile_toplevel(plan.decls, self.scope, step_budget=step_budget)
        self.ctx = EvalContext(None, step_budget=step_budget)
        self._make_sink = sinks or make_sink
        self._sinks: dict[tuple[str, tuple], Sink] = {}
        self.events_in = self.events_out = 0
        streams = plan.streams if context is ALL_CONTEXTS else plan.streams_in(context)  # type: ignore[arg-type]
        self.routes: dict[str, list[_Runner]] = {}
        self.runners = [self._compile(s) for s in streams]
        self.lateness = LatenessTracker(streams)
        for runner in self.runners:
            runner.forward = runner.name in self.routes
        #: Some stream may produce ColumnarBatch items (outputs are checked for them).
        self.columnar = any(r.columnar for r in self.runners)
        from varpulis.runtime.batch import batch_plan  # the batch path (runtime/batch.py)

        #: Runs stateless where/select/emit streams over columns; None: no stream qualifies.
        self.batch_plan = batch_plan(self)

    # ------------------------------------------------------------------ build

    def _compile(self, splan: StreamPlan) -> _Runner:
        decl = splan.decl
        env = StreamEnv(splan.name, self.scope, self.ctx, self._sink_sender,
                        vectorise=self._vectorise)  # fmt: skip
        ops = [op for op in decl.ops if isinstance(op, ast.Op)]
        entry = None
        if splan.sequence:
            entry, ops = self._sequence_entry(splan, env, ops)
        elif isinstance(decl.source, ast.JoinSource):
            entry, ops = self._join_entry(decl, env, ops)
        elif isinstance(decl.source, ast.MergeSource):
            entry = self._merge_entry(decl.source)
        runner = _Runner(decl, compile_stages(env, ops), env)
        runner.entry = entry
        for name in splan.subscriptions:
            self.routes.setdefault(name, []).append(runner)
        return runner

    def _sequence_entry(self, splan: StreamPlan, env: StreamEnv, ops: list[ast.Op]) -> Any:
        from varpulis.runtime.patterns import SequenceMatcher, compile_sequence

        spec = compile_sequence(splan.decl, self.scope, self.plan.patterns)
        matcher = SequenceMatcher(spec)
        # the operations after the match read the captures: a.field, len(b)
        aliases = {step.alias for step in spec.steps if step.alias}
        env.scope = self.scope.with_aliases(aliases)
        rest = list(spec.rest)

        def entry(ev: Event) -> list[tuple[list[Event], dict]]:
            return [([m.last], m.captures) for m in matcher.push(ev)]

        entry.matcher = matcher  # type: ignore[attr-defined]  # for runtime/seq_batch.py
        return entry, rest

    def _join_entry(self, decl: ast.StreamDecl, env: StreamEnv, ops: list[ast.Op]) -> Any:
        on = next((op for op in ops if op.name == "on"), None)
        window = next((op for op in ops if op.name == "window"), None)
        within = None
        if window is not None and window.args and isinstance(window.args[0], ast.Duration):
            within = window.args[0].nanos
        buffer = JoinBuffer(decl.source.sources, on.args[0] if on else None, within, env)
        rest = [op for op in ops if op is not window]

        def entry(ev: Event) -> list[tuple[list[Event], dict]]:
            joined = buffer.add(ev)
            return [(joined, {})] if joined else []

        return entry, rest

    def _merge_entry(self, source: ast.MergeSource) -> Callable[..., Any]:
        filters: dict[str, list[Any]] = {}
        for item in source.items:
            pred = compile_predicate(item.where, self.scope) if item.where is not None else None
            filters.setdefault(item.source, []).append(pred)
        ctx = self.ctx

        def entry(ev: Event) -> list[tuple[list[Event], dict]]:
            ctx.event = ev
            for pred in filters.get(ev.event_type, ()):
                if pred is None or pred(ev.fields, ctx):
                    return [([ev], {})]
            return []

        return entry

    def _connector_config(self, connector: str, params: dict[str, Any]) -> ConnectorConfig:
        """The declared connector's constant params merged with a call's (the call wins)."""
        decl = self.plan.connectors[connector]
        ctx = EvalContext(None)
        base = {k: compile_expr(v, self.scope)({}, ctx) for k, v in decl.params}
        base = {k: v for k, v in base.items() if v is not MISSING}
        return ConnectorConfig(connector, decl.kind, {**base, **params})

    def _sink_sender(self, connector: str, params: dict[str, Any]) -> Callable[[list[Event]], None]:
        key = (connector, tuple(sorted((k, repr(v)) for k, v in params.items())))
        sink = self._sinks.get(key)
        if sink is None:
            sink = self._make_sink(self._connector_config(connector, params))
            self._sinks[key] = sink
        return sink.send

    def source_configs(self) -> list[ConnectorConfig]:
        """One config per ``.from(Connector, ...)`` of the streams this engine runs."""
        configs = []
        ctx = EvalContext(None)
        for runner in self.runners:
            for op in runner.decl.ops:
                if isinstance(op, ast.Op) and op.name == "from" and op.args:
                    params = {k: compile_expr(v, self.scope)({}, ctx) for k, v in op.kwargs}
                    configs.append(self._connector_config(op.args[0].id, params))
        return configs

    # ------------------------------------------------------------------ run

    def process(self, event: Event) -> list[Event]:
        """Run one input event to completion; return the output events in order."""
        outputs = self.process_chunks(event)
        return materialise(outputs) if self.columnar and outputs else outputs  # type: ignore[return-value]

    def process_chunks(self, event: Event) -> list[Item]:
        """As :meth:`process`, but kernel outputs stay :class:`ColumnarBatch` items."""
        self.events_in += 1
        if self.lateness.enabled and not self.lateness.admit(event.event_type, event.timestamp):
            return []
        runners = self.routes.get(event.event_type)
        if runners is None:
            return []
        if len(runners) == 1:
            fast = runners[0]
            if fast.one is not None and fast.entry is None and not fast.forward:
                return self._run_one(fast, event)
        outputs: list[Item] = []
        queue: deque[tuple[Event, int]] | None = None
        ev, depth = event, 0
        while True:
            for runner in self.routes.get(ev.event_type, ()):
                forwarded = self.run_stream(runner, ev, outputs)
                if forwarded and runner.forward:
                    if runner.columnar:
                        forwarded = materialise(forwarded)
                    if depth >= MAX_CHAIN_DEPTH:
                        logger.warning("stream %r: chain deeper than %d hops cut",
                                       runner.name, MAX_CHAIN_DEPTH)  # fmt: skip
                        continue
                    if queue is None:
                        queue = deque()
                    name = runner.name
                    queue.extend((Event(name, f.fields, f.timestamp), depth + 1) for f in forwarded)
            if not queue:
                break
            ev, depth = queue.popleft()
        return outputs

    def _run_one(self, runner: _Runner, ev: Event) -> list[Event]:
        """The common case: one stream of one-to-one stages, nothing downstream."""
        runner.events_in += 1
        try:
            runner.one(ev)  # type: ignore[misc]
        except VPLRuntimeError as exc:
            self._failed(runner, ev, exc)
            return []
        produced = runner.outputs
        if not produced:
            return []
        outputs = produced[:]
        produced.clear()
        runner.events_out += len(outputs)
        self.events_out += len(outputs)
        return outputs

    def _failed(self, runner: _Runner, ev: Event, exc: VPLRuntimeError) -> None:
        ctx = self.ctx
        ctx.captures = {}
        ctx.emitted = None
        runner.errors += 1
        runner.outputs.clear()
        if runner.errors <= 10 or runner.errors % 1000 == 0:
            logger.warning("stream %r: %s (event %s; %d errors so far)",
                           runner.name, exc, ev.event_type, runner.errors)  # fmt: skip

    def run_stream(self, runner: _Runner, ev: Event, outputs: list[Item]) -> list[Item]:
        """Run one stream on *ev*: its outputs are appended to *outputs* and counted
        (stream and engine ``events_out``); what is left at its end is returned.

        A VPL runtime error drops *ev* for this stream (logged, counted). The
        caller counts the input in ``events_in`` and routes what is returned.
        """
        runner.events_in += 1
        ctx = self.ctx
        try:
            if runner.entry is None:
                one = runner.one
                if one is not None:
                    result = one(ev)
                    forwarded = [] if result is None else [result]
                else:
                    forwarded = runner.run_stages([ev])
            else:
                forwarded = []
                for events, captures in runner.entry(ev):
                    ctx.captures = captures
                    forwarded.extend(runner.run_stages(events))
                ctx.captures = {}
        except VPLRuntimeError as exc:
            self._failed(runner, ev, exc)
            return []
        if runner.outputs:
            rows = count_rows(runner.outputs) if runner.columnar else len(runner.outputs)
            runner.events_out += rows
            self.events_out += rows
            outputs.extend(runner.outputs)
            runner.outputs.clear()
        return forwarded

    def process_batch(self, events: Iterable[Event]) -> list[Event]:
        """Process *events* in order; return all outputs in order.

        The same outputs as :meth:`process` on each event in turn; runs of one
        type read by a batchable stream go over columns (``runtime/batch.py``).
        """
        if self.batch_plan is not None:
            return self.batch_plan.process_batch(events)
        out: list[Event] = []
        for ev in events:
            out.extend(self.process(ev))
        return out

    def flush(self) -> list[Event]:
        """Close every open window and return what that produces."""
        if self.batch_plan is not None:
            self.batch_plan.settle()  # the columnar kernels' state back into the operators
        outputs: list[Event] = []
        for runner in self.runners:
            for index, release in runner.flushers:
                events = release()
                if index >= 0 and events:
                    runner.run_stages(events, index + 1)
                produced = materialise(runner.outputs)
                outputs.extend(produced)
                runner.events_out += len(produced)
                runner.outputs.clear()
        self.events_out += len(outputs)
        return outputs

    def close(self) -> None:
        """Flush and close every sink (windows are not flushed; see :meth:`flush`)."""
        for sink in self._sinks.values():
            try:
                sink.close()
            except Exception:  # a failing sink must not stop the others closing
                logger.exception("closing sink %r failed", sink.config.name)

    def metrics(self) -> dict[str, Any]:
        """Counters: events in/out and, per stream, events in/out and errors.

        Streams whose ``.process`` calls a user function also appear under
        ``"vectorised"`` (stream → calls run as kernels) and ``"fallback"``
        (stream → ``{"fn", "calls", "reason"}``: calls that ran the scalar
        function, and the latest reason why).
        """
        vectorised: dict[str, int] = {}
        fallback: dict[str, dict[str, Any]] = {}
        for r in self.runners:
            for k in r.kernels:
                vectorised[r.name] = vectorised.get(r.name, 0) + k.vectorised
                entry = fallback.setdefault(r.name, {"fn": k.decl.name, "calls": 0,
                                                     "reason": None})  # fmt: skip
                entry["calls"] += k.fallback
                entry["reason"] = k.reason or entry["reason"]
        return {
            "vectorised": vectorised,
            "fallback": fallback,
            "events_in": self.events_in,
            "events_out": self.events_out,
            "errors": sum(r.errors for r in self.runners),
            "late_dropped": self.lateness.dropped,
            "streams": {
                r.name: {"events_in": r.events_in, "events_out": r.events_out, "errors": r.errors}
                for r in self.runners
            },
        }
