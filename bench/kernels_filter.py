"""Batch filter + emit over columns vs the per-event path (a script; never a test).

1,000,000 ``TemperatureReading`` events (``sensor_id`` a string of 100 values,
``temperature`` a float, about 10 % above 100) through

    stream S = TemperatureReading .where(temperature > 100)
        .emit(sensor_id: sensor_id, temperature: temperature)

in the same run, each timed as the median of ``--repeat`` runs:

* per event (the baseline): ``Engine.process(event)`` for every event, outputs
  turned into the REST output dicts (``to_api_json``);
* Event objects → output dicts: ``Engine.process_batch(events)`` (the batch
  path: numexpr filter over the temperature column, output events only for
  the passing rows), outputs turned into dicts;
* event dicts → output dicts: the REST batch body's items ``{"event_type": T,
  "fields": {...}}`` through the server's own path (cyclic GC paused while
  the batch is handled, one-type check, then
  ``BatchPlan.process_rows(..., api=True)``: no input Event objects at all,
  and the output dicts built straight from the output columns, as the
  server answers), in REST batches of ``--rest-batches`` events: 10,000
  (0.77 MiB of JSON) and 100,000 (7.7 MiB; ``events-batch`` takes at most
  16 MiB, about 200,000 such events) (target ≥ 3,000,000 events/s);
* column to column: ``BatchPlan.process_columns(ColumnarBatch)`` → one output
  ColumnarBatch (target ≥ 20,000,000 events/s).

Every path's outputs are checked equal to the per-event outputs.

    python bench/kernels_filter.py [--events 1000000] [--repeat 3] [--chunk 1000000]
                                   [--rest-batches 10000,100000]
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

# Run as a script, bench/ (which holds kernels.py) would shadow the ``kernels`` package.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]
sys.path.insert(0, os.path.dirname(_HERE))

import numpy as np  # noqa: E402

from kernels.columnar import ColumnarBatch  # noqa: E402
from varpulis.events import Event, to_api_json  # noqa: E402
from varpulis.memory import gc_paused  # noqa: E402
from varpulis.runtime.engine import Engine  # noqa: E402
from varpulis.server.app import uniform_rows  # noqa: E402

PROGRAM = (
    "stream S = TemperatureReading .where(temperature > 100)"
    " .emit(sensor_id: sensor_id, temperature: temperature)"
)
TYPE = "TemperatureReading"


def generate(n: int, seed: int = 7) -> tuple[list[Event], ColumnarBatch]:
    """The same events as Event objects and as one columnar batch (timestamps 1 ms apart)."""
    rng = np.random.default_rng(seed)
    temps = rng.uniform(0.0, 111.0, n)
    names = np.array([f"s{i}" for i in range(100)], dtype=object)[rng.integers(0, 100, n)]
    stamps = np.arange(n, dtype=np.int64) * 1_000_000
    triples = zip(names.tolist(), temps.tolist(), stamps.tolist(), strict=True)
    events = [Event(TYPE, {"sensor_id": s, "temperature": t}, ts) for s, t, ts in triples]
    batch = ColumnarBatch(TYPE, {"sensor_id": names, "temperature": temps}, timestamps=stamps)
    return events, batch


def median(repeat: int, fn: Callable[[], Any]) -> tuple[float, Any]:
    """Median seconds of *repeat* calls (after a collection each) and the last result."""
    times, result = [], None
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def chunks(items: list[Any], size: int) -> list[list[Any]]:
    """*items* in parts of *size* (the list itself when it fits: a copy touches every item)."""
    if size >= len(items):
        return [items]
    return [items[i : i + size] for i in range(0, len(items), size)]


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark; *argv* defaults to the command line (unknown options are ignored)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--chunk", type=int, default=1_000_000, help="events per batch call")
    ap.add_argument("--rest-batches", default="10000,100000",
                    help="events per REST batch, event-dicts path (comma-separated)")  # fmt: skip
    args = ap.parse_known_args(argv)[0]
    n = args.events
    events, batch = generate(n)
    rows = [ev.fields for ev in events]
    per_event_engine, batch_engine = Engine(PROGRAM), Engine(PROGRAM)
    plan = batch_engine.batch_plan
    assert plan is not None, "the filter stream should take the batch path"

    def per_event() -> list[dict]:
        process = per_event_engine.process
        return [to_api_json(out) for ev in events for out in process(ev)]

    def events_to_dicts() -> list[dict]:
        return [to_api_json(out) for part in chunks(events, args.chunk)
                for out in batch_engine.process_batch(part)]  # fmt: skip

    items = [{"event_type": TYPE, "fields": fields} for fields in rows]

    def rows_to_dicts(size: int) -> list[dict]:
        # what POST .../events-batch does with a uniform body (cyclic GC paused, as
        # there); REST batches carry one arrival time (0 here, as the per-event
        # outputs are compared without times)
        out = []
        with gc_paused():
            for part in chunks(items, size):
                event_type, fields = uniform_rows(part)
                out.extend(plan.process_rows(event_type, fields, 0, api=True))
        return out

    def columns() -> list[Any]:
        size = args.chunk
        parts = [batch.take(np.arange(i, min(i + size, n))) for i in range(0, n, size)]
        parts = parts if len(parts) > 1 else [batch]
        return [out for part in parts for out in plan.process_columns(part)]

    t_base, expected = median(args.repeat, per_event)
    t_events, got = median(args.repeat, events_to_dicts)
    assert got == expected, "batch path outputs differ from the per-event path"
    t_rows = {}
    for size in map(int, args.rest_batches.split(",")):
        t_rows[size], got_rows = median(args.repeat, lambda size=size: rows_to_dicts(size))
        assert got_rows == expected
    t_cols, out = median(args.repeat, columns)
    assert all(isinstance(b, ColumnarBatch) for b in out)
    assert sum(len(b) for b in out) == len(expected)
    assert [d for b in out for d in b.to_dicts()] == [
        {k: v for k, v in e.items() if k != "event_type"} for e in expected
    ]
    assert plan.per_event == 0, "every run should have gone columnar"

    def line(label: str, seconds: float, target: str = "") -> None:
        print(f"{label:<40} {n / seconds:>13,.0f} events/s  {t_base / seconds:>6.1f}x per-event"
              f"{target}", flush=True)  # fmt: skip

    print(
        f"{n:,} events, {len(expected):,} outputs, batches of {min(args.chunk, n):,}"
        f" (REST path: {args.rest_batches})"
    )
    line("per event (baseline)", t_base)
    for size, seconds in t_rows.items():
        line(f"event dicts -> out dicts, REST {size:,}", seconds, "   (target >= 3,000,000)")
    line("Events -> output dicts", t_events)
    line("column -> column", t_cols, "   (target >= 20,000,000)")


if __name__ == "__main__":
    main()
