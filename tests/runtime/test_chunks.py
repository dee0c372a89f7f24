"""Columnar chunks through the engine: kernels in ``.process``, fallbacks, sinks, counters."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from kernels.columnar import ColumnarBatch
from tests.fixtures import MANDELBROT_FNS
from varpulis.connectors.base import ConnectorConfig, Sink
from varpulis.events import Event
from varpulis.runtime.engine import Engine

TILE = (
    MANDELBROT_FNS
    + """
stream Tile = Go
    .process(compute_tile(x, y, size, 64))
"""
)

STRINGS = """
fn label(n: int):
    var s = ""
    for i in 0..n:
        s := s + "ab"
        emit Label(i: i, text: s)
"""


def both(src: str, events: list[Event], **kwargs: Any) -> tuple[Engine, list[Event], list[Event]]:
    """Run *events* through a vectorising and a scalar engine; return both outputs."""
    fast, slow = Engine(src, **kwargs), Engine(src, vectorise=False, **kwargs)
    got = [o for ev in events for o in fast.process(ev)]
    want = [o for ev in events for o in slow.process(ev)]
    return fast, got, want


def test_tiles_run_as_kernels_and_equal_the_scalar_outputs() -> None:
    events = [Event("Go", {"x": 100 + 7 * k, "y": 300, "size": 9}, 1000 + k) for k in range(3)]
    engine, got, want = both(TILE, events)
    assert got == want and len(got) == 3 * 81
    assert [type(v) for v in got[0].fields.values()] == [int, int, int, bool]
    assert got[81].timestamp == 1001
    metrics = engine.metrics()
    assert metrics["vectorised"] == {"Tile": 3}
    assert metrics["fallback"]["Tile"]["calls"] == 0
    assert metrics["events_out"] == 243 and metrics["streams"]["Tile"]["events_out"] == 243


def test_process_chunks_keeps_batches_and_counts_rows() -> None:
    engine = Engine(TILE)
    chunks = engine.process_chunks(Event("Go", {"x": 0, "y": 0, "size": 5}, 7))
    assert len(chunks) == 1 and isinstance(chunks[0], ColumnarBatch)
    batch = chunks[0]
    assert batch.event_type == "Pixel" and len(batch) == 25 and batch.timestamp == 7
    assert batch.fields == ["x", "y", "iterations", "diverged"]
    assert engine.metrics()["events_out"] == 25


def test_string_building_falls_back_visibly_with_the_same_results(caplog: Any) -> None:
    src = STRINGS + "stream S = Go\n    .process(label(n))\n"
    with caplog.at_level(logging.DEBUG, logger="varpulis.compiler.simt"):
        engine, got, want = both(src, [Event("Go", {"n": 4}), Event("Go", {"n": 2})])
    assert got == want and [e.fields["text"] for e in got[:2]] == ["ab", "abab"]
    fallback = engine.metrics()["fallback"]["S"]
    assert fallback["calls"] == 2 and fallback["fn"] == "label"
    assert "literal" in fallback["reason"]
    assert engine.metrics()["vectorised"] == {"S": 0}
    assert any("fn label runs scalar" in r.getMessage() for r in caplog.records)


def test_run_time_fallback_division_by_zero_gives_the_scalar_null() -> None:
    src = "fn f(d: int):\n    for i in 0..3:\n        emit Q(q: 6 / (i - d))\n" \
          "stream S = Go\n    .process(f(d))\n"  # fmt: skip
    engine, got, want = both(src, [Event("Go", {"d": 1}), Event("Go", {"d": 5})])
    assert got == want and got[1].fields == {"q": None}
    metrics = engine.metrics()
    assert metrics["vectorised"] == {"S": 1} and metrics["fallback"]["S"]["calls"] == 1
    assert metrics["fallback"]["S"]["reason"] == "division by zero gives null"


def test_missing_argument_falls_back() -> None:
    engine, got, want = both(TILE, [Event("Go", {"x": 1, "y": 2})])
    assert got == want == []
    assert "missing" in engine.metrics()["fallback"]["Tile"]["reason"].lower()


def test_stages_after_process_see_events_and_downstream_streams_too() -> None:
    src = TILE.replace("64))", "64))\n    .where(iterations > 3)\n    .emit(px: x, it: iterations)")
    src += "stream Deep = Tile\n    .where(it > 10)\n"
    events = [Event("Go", {"x": 400, "y": 450, "size": 6}, 5)]
    _, got, want = both(src, events)
    assert got == want and got and all(e.event_type in ("Tile", "Deep") for e in got)


class _Collect(Sink):
    batches: list[ColumnarBatch]
    events: list[Event]

    def __init__(self, config: ConnectorConfig) -> None:
        super().__init__(config)
        self.batches, self.events = [], []

    def send(self, events: Any) -> None:
        self.events.extend(events)

    def send_batch(self, batch: ColumnarBatch) -> None:
        self.batches.append(batch)


class _EventsOnly:
    def __init__(self, config: ConnectorConfig) -> None:
        self.config, self.events = config, []

    def send(self, events: Any) -> None:
        self.events.extend(events)

    def close(self) -> None:
        pass


@pytest.mark.parametrize("sink_cls", [_Collect, _EventsOnly, Sink], ids=["batch", "events", "base"])
def test_to_hands_batches_to_send_batch_else_events(sink_cls: type) -> None:
    made: list[Any] = []

    class Base(Sink):  # the base class's default send_batch materialises
        def send(self, events: Any) -> None:
            self.__dict__.setdefault("events", []).extend(events)

    def factory(config: ConnectorConfig) -> Any:
        made.append((Base if sink_cls is Sink else sink_cls)(config))
        return made[-1]

    src = "connector Out = console()\n" + TILE + "    .to(Out)\n"
    engine = Engine(src, sinks=factory)
    outputs = engine.process(Event("Go", {"x": 10, "y": 10, "size": 3}))
    sink = made[0]
    if sink_cls is _Collect:
        assert len(sink.batches) == 1 and sink.events == []
        rows = [Event("Pixel", f, ts) for f, ts in sink.batches[0].iter_rows()]
    else:
        rows = sink.events
    assert rows == outputs and len(rows) == 9


CONTEXT_TILES = (
    MANDELBROT_FNS
    + """
context a
context b

stream Tile = Go
    .context(a)
    .process(compute_tile(x, y, size, 64))

stream Deep = Pixel
    .context(b)
    .where(iterations > 20)
    .emit(px: x, py: y)
"""
)


@pytest.mark.parametrize("transport", ["inproc", "ipc"])
def test_contexts_ship_batches_as_columns_and_keep_the_order(transport: str) -> None:
    from varpulis.runtime.contexts import ContextRuntime

    events = [Event("Go", {"x": 300 + 5 * k, "y": 480, "size": 6}, 10 + k) for k in range(2)]
    want = [o for ev in events for o in Engine(CONTEXT_TILES, vectorise=False).process(ev)]
    with ContextRuntime(CONTEXT_TILES, transport=transport) as rt:
        chunks = rt.process_chunks(events, wait=True)
        again = rt.process_batch(events, wait=True)
        metrics = rt.metrics()
    pixels = [c for c in chunks if isinstance(c, ColumnarBatch)]
    assert len(pixels) == 2 and all(len(p) == 36 for p in pixels)
    assert not pixels[0].columns["x"].flags.writeable  # a view over the received frame
    assert [p.timestamp for p in pixels] == [10, 11]

    # pixels as the scalar engine computes them (context a), then what context b
    # made of them (ContextRuntime routes them to ``Deep`` by their type)
    deep = [Event("Deep", {"px": e.fields["x"], "py": e.fields["y"]}, e.timestamp)
            for e in want if e.fields["iterations"] > 20]  # fmt: skip
    assert again == want + deep and deep
    assert metrics["vectorised"]["Tile"] == 4
