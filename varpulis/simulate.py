"""Run a VPL program over an event file: ``varpulis run`` and ``varpulis simulate``.

:func:`simulate` loads a program, feeds it the events of a ``.evt`` or JSON
Lines file (paced by their ``BATCH``/``@`` offsets unless ``immediate``) and
writes each output event as one JSON line (``{"event_type": ..., fields...}``)
to ``out`` unless ``quiet``. It returns a :class:`RunStats`; the CLI prints its
:meth:`~RunStats.summary` as the last line on stderr. The clock and the sleep
function are parameters, so pacing is testable without waiting.
"""

from __future__ import annotations

import itertools
import json
import logging
import operator
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TextIO

from varpulis.compiler.plan import plan_program
from varpulis.events import Event, to_api_json
from varpulis.lang import parse_file
from varpulis.lang.evt import TimedEvent, iter_event_blocks, read_event_file
from varpulis.lang.evt_shapes import Table
from varpulis.lang.validate import validate
from varpulis.memory import gc_paused
from varpulis.runtime.engine import Engine

__all__ = ["RunStats", "load_engine", "run_live", "simulate"]

logger = logging.getLogger("varpulis")


@dataclass(slots=True)
class RunStats:
    """What a run did: events in, outputs, runtime errors, wall time in seconds."""

    events: int = 0
    outputs: int = 0
    errors: int = 0
    seconds: float = 0.0

    def summary(self) -> str:
        """``processed N events in T s (R events/s), M output events``."""
        rate = self.events / self.seconds if self.seconds > 0 else 0.0
        return (
            f"processed {self.events} events in {self.seconds:.3f} s "
            f"({rate:,.0f} events/s), {self.outputs} output events"
        )


def load_engine(program_path: str, **engine_options: object) -> Engine:
    """Parse, validate (warnings logged) and compile the program at *program_path*."""
    program = parse_file(program_path)
    for warning in validate(program):
        logger.warning("%s", warning.render(program.source, program.filename))
    return Engine(plan_program(program), **engine_options)  # type: ignore[arg-type]


def simulate(
    engine: Engine,
    events_path: str,
    *,
    out: TextIO | None = None,
    immediate: bool = False,
    preload: bool = False,
    flush_at_end: bool = False,
    base_ns: int | None = None,
    clock: Callable[[], float] = time.perf_counter,
    sleep: Callable[[float], None] = time.sleep,
    wall_ns: Callable[[], int] = time.time_ns,
) -> RunStats:
    """Feed the events of *events_path* to *engine*; write outputs to *out*.

    ``base_ns`` is the event time of offset 0 for events without a
    ``timestamp`` (default: the wall clock at start). ``preload`` parses the
    whole file before the clock starts; otherwise it is streamed. Paced runs
    wait (``sleep``) until each event's offset has elapsed on ``clock``; unpaced
    runs hand the engine chunks of events (``process_batch``, same outputs).
    """
    base = wall_ns() if base_ns is None else base_ns
    blocks: Iterable[Any]
    if preload:
        blocks = [read_event_file(events_path, base_ns=base)]
    else:
        blocks = iter_event_blocks(events_path, base_ns=base, tables=immediate)
    stats = RunStats()
    write = out.write if out is not None else None
    dumps = json.dumps
    process = engine.process
    start = clock()
    if immediate:
        _run_chunks(engine, blocks, stats, write)
        blocks = ()
    for timed in itertools.chain.from_iterable(blocks):
        if timed.offset_ns:
            delay = timed.offset_ns / 1e9 - (clock() - start)
            if delay > 0:
                sleep(delay)
        outputs = process(timed.event)
        stats.events += 1
        if outputs:
            stats.outputs += len(outputs)
            if write is not None:
                write("".join(dumps(to_api_json(e)) + "\n" for e in outputs))
    if flush_at_end:
        outputs = engine.flush()
        stats.outputs += len(outputs)
        if write is not None:
            write("".join(dumps(to_api_json(e)) + "\n" for e in outputs))
    stats.seconds = clock() - start
    stats.errors = engine.metrics()["errors"]
    engine.close()
    return stats


#: Events handed to ``Engine.process_batch`` at a time by an unpaced run.
CHUNK = 4096
_event_of = operator.itemgetter(1)  # TimedEvent -> its event


def _run_chunks(
    engine: Engine,
    blocks: Iterable[list[TimedEvent] | Table],
    stats: RunStats,
    write: Callable[[str], Any] | None,
) -> None:
    """Unpaced run through ``Engine.process_batch``, :data:`CHUNK` events at a time.

    Outputs, their order and the counts are those of one ``process`` per event
    (the engine's batch path runs columnar where it can; a
    :class:`~varpulis.lang.evt_shapes.Table` of one event type goes to it as
    columns). Each block the file reader yields is processed (and its outputs
    written) before the next one is read, so when reading fails part way the
    events before the failing block have been processed, as a per-event loop
    would have.
    """
    dumps = json.dumps
    process_batch = engine.process_batch
    plan = getattr(engine, "batch_plan", None)
    for block in blocks:
        # The cyclic GC waits while a block runs (engines make no cycles per event; a
        # user function's would wait one block): its sweeps cost ~10% of a run.
        with gc_paused():
            _run_block(block, plan, process_batch, stats, write, dumps)


def _run_block(
    block: list[TimedEvent] | Table,
    plan: Any,
    process_batch: Callable[[list[Event]], list[Event]],
    stats: RunStats,
    write: Callable[[str], Any] | None,
    dumps: Callable[[Any], str],
) -> None:
    """One block of :func:`_run_chunks`: a same-type Table as columns, else chunks."""
    if type(block) is Table:
        types = block.types
        if plan is not None and types.count(types[0]) == len(types):
            columns = dict(zip(block.keys, block.columns, strict=True))
            outputs = plan.process_table(types[0], columns, block.timestamps)
            stats.events += len(types)
            _write(outputs, stats, write, dumps)
            return
        if plan is not None:
            columns = dict(zip(block.keys, block.columns, strict=True))
            found = plan.process_types(types, columns, block.timestamps)
            if found is not None:
                stats.events += len(types)
                _write(found, stats, write, dumps)
                return
        events = list(map(Event, types, block.fields(), block.timestamps))
    else:
        events = list(map(_event_of, block))
    for begin in range(0, len(events), CHUNK):
        chunk = events[begin : begin + CHUNK] if len(events) > CHUNK else events
        stats.events += len(chunk)
        _write(process_batch(chunk), stats, write, dumps)


def _write(
    outputs: list[Event],
    stats: RunStats,
    write: Callable[[str], Any] | None,
    dumps: Callable[[Any], str],
) -> None:
    if outputs:
        stats.outputs += len(outputs)
        if write is not None:
            write("".join(dumps(to_api_json(e)) + "\n" for e in outputs))


def run_live(
    engine: Engine,
    *,
    out: TextIO | None,
    stop: threading.Event,
    make_source: Callable[[Any], Any] | None = None,
) -> RunStats:
    """Run *engine* on its ``.from(...)`` sources until *stop* is set.

    Each source delivers lists of events from its own thread; each list is
    processed with ``Engine.process_batch`` under one lock (arrival order per
    source, the outputs of per-event processing), its MQTT publishes are
    written together (:func:`~varpulis.connectors.mqtt.coalesced`) and its
    outputs are written to *out* with one write and flush.
    """
    from varpulis.connectors.mqtt import coalesced
    from varpulis.connectors.sources import make_source as default_make_source

    factory = make_source or default_make_source
    lock = threading.Lock()
    stats = RunStats()
    dumps = json.dumps
    start = time.perf_counter()
    process_batch = engine.process_batch

    def on_events(events: list[Event]) -> None:
        with lock, coalesced():
            outputs = process_batch(events)
            stats.events += len(events)
            stats.outputs += len(outputs)
            if outputs and out is not None:
                out.write("".join(dumps(to_api_json(e)) + "\n" for e in outputs))
                out.flush()

    sources = [factory(config) for config in engine.source_configs()]
    try:
        for source in sources:
            source.start(on_events)
        stop.wait()
    finally:
        for source in sources:
            source.stop()
        with lock:
            stats.seconds = time.perf_counter() - start
            stats.errors = engine.metrics()["errors"]
            engine.close()
    return stats
