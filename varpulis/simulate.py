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
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TextIO

from varpulis.compiler.plan import plan_program
from varpulis.events import Event, to_api_json
from varpulis.lang import parse_file
from varpulis.lang.evt import TimedEvent, iter_events, read_event_file
from varpulis.lang.validate import validate
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
    runs hand the engine chunks of events (its batch path, same outputs).
    """
    base = wall_ns() if base_ns is None else base_ns
    events: Iterable[TimedEvent]
    if preload:
        events = read_event_file(events_path, base_ns=base)
    else:
        events = iter_events(events_path, base_ns=base)
    stats = RunStats()
    write = out.write if out is not None else None
    dumps = json.dumps
    process = engine.process
    start = clock()
    if immediate and getattr(engine, "batch_plan", None) is not None:
        _run_chunks(engine, events, stats, write)
        events = ()
    for timed in events:
        if not immediate and timed.offset_ns:
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


def _run_chunks(
    engine: Engine,
    events: Iterable[TimedEvent],
    stats: RunStats,
    write: Callable[[str], Any] | None,
) -> None:
    """Unpaced run through the engine's batch path, :data:`CHUNK` events at a time.

    Outputs, their order and the counts are those of one ``process`` per event;
    when reading the file fails part way, the events read before the failure
    are processed (and written) first, as the per-event loop would have.
    """
    dumps = json.dumps
    iterator = iter(events)
    process_batch = engine.process_batch
    while True:
        chunk: list[Event] = []
        failure: BaseException | None = None
        try:
            for timed in itertools.islice(iterator, CHUNK):
                chunk.append(timed.event)
        except Exception as exc:  # a syntax error part way: process what came before it
            failure = exc
        if chunk:
            outputs = process_batch(chunk)
            stats.events += len(chunk)
            if outputs:
                stats.outputs += len(outputs)
                if write is not None:
                    write("".join(dumps(to_api_json(e)) + "\n" for e in outputs))
        if failure is not None:
            raise failure
        if len(chunk) < CHUNK:
            return


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
