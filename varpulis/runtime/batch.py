"""The engine's batch path: stateless where/select/emit chains run over columns.

:class:`BatchPlan` is built once per :class:`~varpulis.runtime.engine.Engine`.
An event type takes the batch path when exactly one stream reads it, that
stream has no sequence, join or merge entry, nothing reads the stream in turn,
and :func:`~varpulis.compiler.batch.compile_chain` lowers its operations. Such
a stream cannot fail on an event and changes no state, so running a run of
consecutive events of its type column by column gives exactly the per-event
outputs: same values and Python types, same order, same timestamps.

:meth:`BatchPlan.process_batch` splits the input into runs of consecutive
events of one type; a run of a batched type with at least :data:`MIN_RUN`
events runs columnar, everything else goes through ``Engine.process`` one
event at a time, and the outputs are concatenated in input order. Inside a
run, fields the kernels read are converted to typed columns; when a field is
missing from some event, its values mix types, or a kernel is not exact for
the values at hand (``Kernel.exact``), the whole run goes per event. Fields
copied as they are (``.emit(x: x)``) are read only for the rows that pass.
Output events are built only for passing rows. :meth:`BatchPlan.process_columns`
does the same from a :class:`~kernels.columnar.ColumnarBatch` to output
batches. Counters (engine and stream ``events_in``/``events_out``) move as
per event. A plan belongs to its engine's thread.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from itertools import repeat
from operator import attrgetter
from typing import TYPE_CHECKING, Any

import numpy as np

from kernels.columnar import ColumnarBatch, column_from_values
from varpulis.compiler.batch import compile_chain
from varpulis.compiler.values import MISSING
from varpulis.events import Event, to_api_json
from varpulis.lang import ast
from varpulis.lang.evt_shapes import dict_builder
from varpulis.memory import gc_paused
from varpulis.runtime.blocks import Block, Stateful
from varpulis.runtime.chains import BatchStream, Output, Rows, rows_in, rows_of

if TYPE_CHECKING:
    from collections.abc import Iterable

    from varpulis.runtime.engine import Engine

__all__ = ["MIN_RUN", "BatchPlan", "BatchStream", "batch_plan"]

logger = logging.getLogger("varpulis.runtime")

#: Shortest run of one type worth running columnar (shorter runs go per event).
MIN_RUN = 16

_FIELDS, _EVENT_TYPE = attrgetter("fields"), attrgetter("event_type")
_TIMESTAMP = attrgetter("timestamp")


class BatchPlan:
    """The batch path of one engine (see the module docstring).

    ``columnar`` counts the input events that ran over columns, ``per_event``
    those of a batched type that went per event (short runs, missing or mixed
    fields, values a kernel is not exact for); ``metrics()`` reports both.
    """

    __slots__ = ("batched", "columnar", "direct", "engine", "per_event", "several", "stateful",
                 "streams")  # fmt: skip

    def __init__(
        self,
        engine: Engine,
        streams: dict[str, BatchStream],
        direct: dict[str, Any] | None = None,
        stateful: dict[str, Stateful] | None = None,
        several: dict[str, tuple[BatchStream, ...]] | None = None,
    ) -> None:
        self.engine = engine
        self.streams = streams
        #: Event type -> the chains of the stateless streams reading it, when several do.
        self.several = several or {}
        #: Event type -> the one stream reading it, when that stream feeds no other
        #: and yields no batches: such events skip the engine's routing (see _direct).
        self.direct = direct or {}
        #: Event type -> the stateful kernel (sequence, window) of the one stream reading it.
        self.stateful = stateful or {}
        #: Every event type some columnar path reads.
        self.batched = frozenset(self.streams) | frozenset(self.stateful) | frozenset(self.several)
        self.columnar = self.per_event = 0

    def metrics(self) -> dict[str, Any]:
        """``{"streams": [batched stream names], "columnar": n, "per_event": n}``."""
        chains = [c for group in self.several.values() for c in group]
        kernels = list(self.streams.values()) + list(self.stateful.values()) + chains
        names = sorted({k.runner.name for k in kernels})
        return {"streams": names, "columnar": self.columnar, "per_event": self.per_event}

    def settle(self) -> None:
        """Hand every stateful kernel's carried state to its per-event operator."""
        for kernel in set(self.stateful.values()):
            kernel.settle()

    def _stateful(self, kernel: Stateful, block: Block) -> list[Event]:
        """*block* through *kernel*, or per event when the kernel declines it."""
        outputs = kernel.run(block)
        if outputs is not None:
            self.columnar += block.n
            return outputs
        kernel.settle()
        return self._per_event(block.events(), "declined by the stateful kernel")

    def process_types(
        self, types: list[str], columns: dict[str, Sequence[Any]], timestamps: Sequence[int]
    ) -> list[Event] | None:
        """As :meth:`process_table` for rows of several types that one stateful kernel
        reads (row *i* has type ``types[i]``); None when no one kernel reads them all."""
        kernel = self.stateful.get(types[0])
        if kernel is None or not kernel.types.issuperset(types) or self.engine.lateness.enabled:
            return None
        with gc_paused():
            return self._stateful(kernel, Block.of_table(types, columns, timestamps))

    def _per_event(self, events: list[Event], why: str) -> list[Event]:
        self.per_event += len(events)
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("%d %s events run per event: %s", len(events), events[0].event_type, why)
        process = self.engine.process
        return [out for ev in events for out in process(ev)]

    def __repr__(self) -> str:
        return f"BatchPlan({sorted(self.streams)})"

    # ------------------------------------------------------------------ events

    def process_batch(self, events: Iterable[Event]) -> list[Event]:
        """Process *events* in order; return the outputs ``Engine.process`` would, in order."""
        if not isinstance(events, list):
            events = list(events)
        with gc_paused():
            return self._process_batch(events)

    def _process_batch(self, events: list[Event]) -> list[Event]:
        engine = self.engine
        process = engine.process
        if engine.lateness.enabled or (len(events) < MIN_RUN and not self.stateful):
            return [out for ev in events for out in process(ev)]
        types = list(map(_EVENT_TYPE, events))
        first = types[0]
        if types.count(first) == len(types):
            return self._run(first, events)
        stateful = self.stateful
        if self.batched.isdisjoint(types):
            return self._direct(events)
        outputs: list[Event] = []
        start = 0
        n = len(types)
        while start < n:
            kind = types[start]
            stop = start + 1
            kernel = stateful.get(kind)
            if kernel is None:
                while stop < n and types[stop] == kind:
                    stop += 1
                outputs.extend(self._run(kind, events[start:stop]))
            else:  # a run of the types one kernel reads
                members = kernel.types
                while stop < n and types[stop] in members:
                    stop += 1
                outputs.extend(self._stateful(kernel, Block.of_events(events[start:stop])))
            start = stop
        return outputs

    def _run(self, event_type: str, events: list[Event]) -> list[Event]:
        engine = self.engine
        stream = self.streams.get(event_type)
        if stream is None:
            kernel = self.stateful.get(event_type)
            if kernel is not None:
                return self._stateful(kernel, Block.of_events(events))
            chains = self.several.get(event_type)
            if chains is not None:
                return self._run_several(chains, event_type, events)
            if event_type not in engine.routes:
                engine.events_in += len(events)
                return []
            return self._direct(events)
        if len(events) < MIN_RUN:
            return self._per_event(events, f"a run shorter than {MIN_RUN}")
        result = stream.run(Rows(events, {}, len(events)), event_type)
        if result is False:
            return self._per_event(events, "missing or mixed fields, or inexact values")
        if not self._count(stream, len(events), result):
            return []
        pos = result.pos  # type: ignore[union-attr]
        picked = events if pos is None else list(map(events.__getitem__, pos.tolist()))
        kind = result.event_type  # type: ignore[union-attr]
        fields = rows_of(result, len(picked))  # type: ignore[arg-type]
        return list(map(Event, repeat(kind), fields, map(_TIMESTAMP, picked)))

    def _run_several(
        self, chains: tuple[BatchStream, ...], event_type: str, events: list[Event]
    ) -> list[Event]:
        """A run read by several stateless streams: each chain over the run, outputs
        merged as per event (by input event, then stream in declaration order)."""
        n = len(events)
        if n < MIN_RUN:
            return self._per_event(events, f"a run shorter than {MIN_RUN}")
        results = [chain.run(Rows(events, {}, n), event_type) for chain in chains]
        if any(result is False for result in results):
            return self._per_event(events, "missing or mixed fields, or inexact values")
        engine = self.engine
        engine.events_in += n
        self.columnar += n
        made: list[Event] = []
        rows, streams = [], []
        for index, (chain, result) in enumerate(zip(chains, results, strict=True)):
            chain.runner.events_in += n
            count = 0 if result is None else rows_in(result)  # type: ignore[arg-type]
            if not count:
                continue
            chain.runner.events_out += count
            engine.events_out += count
            pos = np.arange(n) if result.pos is None else result.pos  # type: ignore[union-attr]
            stamps = map(_TIMESTAMP, map(events.__getitem__, pos.tolist()))
            fields = rows_of(result, count)  # type: ignore[arg-type]
            made += map(Event, repeat(result.event_type), fields, stamps)  # type: ignore[union-attr]
            rows.append(pos)
            streams.append(np.full(count, index))
        if len(rows) < 2:
            return made
        order = np.lexsort((np.concatenate(streams), np.concatenate(rows)))
        return list(map(made.__getitem__, order.tolist()))

    def _direct(self, events: list[Event]) -> list[Event]:
        """``Engine.process`` of each event in turn, with the routing done here.

        An event whose type has a :attr:`direct` stream runs that stream's
        entry and stages through ``Engine.run_stream`` (same counters, a
        VPL runtime error drops the event for the stream and is counted);
        any other event goes through ``Engine.process``.
        """
        engine = self.engine
        direct, process, run = self.direct, engine.process, engine.run_stream
        outputs: list[Event] = []
        for ev in events:
            runner = direct.get(ev.event_type)
            if runner is None:
                outputs += process(ev)
                continue
            engine.events_in += 1
            run(runner, ev, outputs)  # type: ignore[arg-type]  # direct streams are not columnar
        return outputs

    def _count(self, stream: BatchStream, n: int, result: Output | None) -> bool:
        """Move the counters for *n* inputs; tell whether *result* has output rows."""
        engine = self.engine
        engine.events_in += n
        stream.runner.events_in += n
        self.columnar += n
        if result is None:
            return False
        count = rows_in(result)
        stream.runner.events_out += count
        engine.events_out += count
        return count > 0

    def process_rows(
        self, event_type: str, rows: list[dict[str, Any]], timestamp: int, *, api: bool = False
    ) -> list[Any]:
        """Process events of one type given as field dicts, all with event time *timestamp*.

        The same outputs as ``process_batch([Event(event_type, f, timestamp) for f
        in rows])``; the dicts become the events' fields (not copied). Events are
        built only when the run goes per event. With *api* the outputs come as
        the REST output dicts (``to_api_json`` of each event), built directly.
        """
        with gc_paused():
            return self._process_rows(event_type, rows, timestamp, api)

    def _process_rows(
        self, event_type: str, rows: list[dict[str, Any]], timestamp: int, api: bool
    ) -> list[Any]:
        stream = self.streams.get(event_type)
        if stream is None or len(rows) < MIN_RUN or self.engine.lateness.enabled:
            outputs = self._process_batch([Event(event_type, f, timestamp) for f in rows])
            return list(map(to_api_json, outputs)) if api else outputs
        result = stream.run(Rows(rows, {}, len(rows), wrapped=False), event_type)
        if result is False:
            events = [Event(event_type, f, timestamp) for f in rows]
            outputs = self._per_event(events, "missing or mixed fields, or inexact values")
            return list(map(to_api_json, outputs)) if api else outputs
        if not self._count(stream, len(rows), result):
            return []
        kind = result.event_type  # type: ignore[union-attr]
        if api:
            return rows_of(result, rows_in(result), kind)  # type: ignore[arg-type]
        fields = rows_of(result, rows_in(result))  # type: ignore[arg-type]
        return [Event(kind, f, timestamp) for f in fields]

    def process_table(
        self, event_type: str, columns: dict[str, Sequence[Any]], timestamps: Sequence[int]
    ) -> list[Event]:
        """Process events of one type given as columns of Python values, row by row.

        Row *i* is ``Event(event_type, {k: columns[k][i] for k in columns},
        timestamps[i])`` (keys in *columns* order); returns what
        ``process_batch`` of those events would. Events and field dicts are
        built only for rows that go per event. The sequences are read, never
        mutated, and may be kept by output events.
        """
        n = len(timestamps)
        stream = self.streams.get(event_type)
        if stream is None and n and event_type in self.stateful:
            found = self.process_types([event_type] * n, columns, timestamps)
            if found is not None:
                return found
        if stream is None or n < MIN_RUN or self.engine.lateness.enabled:
            return self.process_batch(_table_events(event_type, columns, timestamps))
        result = stream.run(Rows(None, dict(columns), n), event_type)
        if result is False:
            events = _table_events(event_type, columns, timestamps)
            return self._per_event(events, "missing or mixed fields, or inexact values")
        if not self._count(stream, n, result):
            return []
        pos = result.pos  # type: ignore[union-attr]
        if pos is not None:
            timestamps = [timestamps[i] for i in pos.tolist()]
        kind = result.event_type  # type: ignore[union-attr]
        fields = rows_of(result, len(timestamps))  # type: ignore[arg-type]
        return list(map(Event, repeat(kind), fields, timestamps))

    # ------------------------------------------------------------------ columns

    def process_columns(self, batch: ColumnarBatch) -> list[ColumnarBatch | Event]:
        """Process a batch of one type; outputs as batches (events where a column mixes types).

        Returns what ``process_batch`` would for the batch's rows, in order:
        one output batch when the stream is batched, else the per-event
        outputs. Input arrays are not modified; output batches may share them.
        """
        n = len(batch)
        stream = self.streams.get(batch.event_type)
        if stream is None or n == 0 or self.engine.lateness.enabled:
            return self.process_batch(self._events(batch))  # type: ignore[return-value]
        rows = Rows(None, dict(batch.columns), n)
        result = stream.run(rows, batch.event_type)
        if result is False:
            why = "missing fields or inexact values"
            return self._per_event(self._events(batch), why)  # type: ignore[return-value]
        if not self._count(stream, n, result):
            return []
        pos = result.pos  # type: ignore[union-attr]
        stamps = batch.row_timestamps()
        if pos is not None:
            stamps = stamps[pos]
        count = len(stamps)
        columns = {}
        for key, value in zip(result.keys, result.cols, strict=True):
            if not isinstance(value, np.ndarray):
                value = None if MISSING in value else column_from_values(value)
                if value is None:  # a missing or mixed field: not one column
                    kind = result.event_type
                    fields = rows_of(result, count)
                    return [Event(kind, f, t) for f, t in zip(fields, stamps.tolist(), strict=True)]
            columns[key] = value
        return [ColumnarBatch(result.event_type, columns, timestamps=stamps)]

    @staticmethod
    def _events(batch: ColumnarBatch) -> list[Event]:
        kind = batch.event_type
        return [Event(kind, fields, ts) for fields, ts in batch.iter_rows()]


def _table_events(
    event_type: str, columns: dict[str, Sequence[Any]], timestamps: Sequence[int]
) -> list[Event]:
    if not columns:
        return [Event(event_type, {}, ts) for ts in timestamps]
    rows = map(dict_builder(tuple(columns)), *columns.values())
    return list(map(Event, repeat(event_type), rows, timestamps))


def _chain_of(engine: Engine, runner: Any) -> BatchStream | None:
    """*runner*'s chain when its stream is stateless (where/select/emit on an event
    type, no entry, nothing reading it), else None."""
    if runner.entry is not None or runner.forward or runner.one is None:
        return None
    if not isinstance(runner.decl.source, ast.EventSource):
        return None
    ops = [op for op in runner.decl.ops if isinstance(op, ast.Op)]
    if len(ops) != len(runner.decl.ops):
        return None
    steps = compile_chain(ops, engine.scope, runner.name)
    if steps is None:
        logger.debug("stream %r runs per event: its operations are not batchable", runner.name)
        return None
    return BatchStream(runner, steps)


def batch_plan(engine: Engine) -> BatchPlan | None:
    """The batch plan of *engine*, or None when no event type can take a batch path."""
    from varpulis.runtime import seq_batch, window_batch

    streams: dict[str, BatchStream] = {}
    direct: dict[str, Any] = {}
    stateful: dict[str, Stateful] = {}
    several: dict[str, tuple[BatchStream, ...]] = {}
    for runner in engine.runners:
        kernel = seq_batch.build(engine, runner) or window_batch.build(engine, runner)
        if kernel is not None:
            stateful.update(dict.fromkeys(kernel.types, kernel))
            logger.debug("stream %r runs %s over columns", runner.name, sorted(kernel.types))
    for event_type, runners in engine.routes.items():
        if len(runners) != 1:
            chains = [_chain_of(engine, r) for r in runners]
            if all(chains):
                several[event_type] = tuple(chains)  # type: ignore[arg-type]
            continue
        runner = runners[0]
        if not runner.forward and not runner.columnar:
            direct[event_type] = runner
        chain = _chain_of(engine, runner)
        if chain is not None:
            streams[event_type] = chain
            logger.debug("stream %r runs %r batches over columns", runner.name, event_type)
    if not (streams or direct or stateful or several):
        return None
    return BatchPlan(engine, streams, direct, stateful, several)
