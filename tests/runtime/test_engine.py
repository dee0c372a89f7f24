"""Engine conformance: the tier-1 examples of the VPL spec, under our decisions."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fixtures import (
    CLASSIFY_AND_GEN,
    CROSS_CONTEXT_CHAIN,
    MANDELBROT_FNS,
    mandelbrot_py,
)
from varpulis.events import Event
from varpulis.runtime.engine import Engine


def run(source: str, *events: tuple[str, dict], **options: object) -> list[tuple[str, dict]]:
    engine = Engine(source, **options)  # type: ignore[arg-type]
    out = []
    for i, (kind, fields) in enumerate(events):
        out.extend(engine.process(Event(kind, fields, i * 10**9)))
    return [(e.event_type, e.fields) for e in out]


ALERTS = """
stream TempAlerts = TemperatureReading
    .where(temperature > 100)
    .emit(alert_type: "HIGH_TEMP", sensor_id: sensor_id, temperature: temperature)
"""


def test_constant_emit() -> None:
    src = 'stream A = EventA .emit(result: "from-a")'
    assert run(src, ("EventA", {"x": 1})) == [("A", {"result": "from-a"})]
    assert run(src, ("EventB", {"x": 1})) == []
    assert run(src, ("EventA", {"from-a": 42})) == [("A", {"result": "from-a"})]  # no quirk
    assert run(src, ("A", {"z": 0})) == []


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"sensor_id": "s1", "temperature": 105.5},
         [{"alert_type": "HIGH_TEMP", "sensor_id": "s1", "temperature": 105.5}]),
        ({"sensor_id": "s2", "temperature": 100}, []),
        ({"sensor_id": "s3", "temperature": 101},
         [{"alert_type": "HIGH_TEMP", "sensor_id": "s3", "temperature": 101}]),
        ({"sensor_id": "s4", "temperature": 100.0}, []),
        ({"temperature": 150}, [{"alert_type": "HIGH_TEMP", "temperature": 150}]),
        ({"sensor_id": "s6", "temperature": "hot"}, []),
        ({"sensor_id": "s7"}, []),
        ({"sensor_id": "s8", "temperature": None}, []),
        ({"sensor_id": "s9", "temperature": 100.0000001},
         [{"alert_type": "HIGH_TEMP", "sensor_id": "s9", "temperature": 100.0000001}]),
    ],
)  # fmt: skip
def test_filter_and_emit(fields: dict, expected: list[dict]) -> None:
    assert run(ALERTS, ("TemperatureReading", fields)) == [("TempAlerts", f) for f in expected]


def test_mixed_comparisons_promote() -> None:
    src = "stream S = R .where(t >= 100) .emit(t: t)"
    got = run(src, ("R", {"t": 100}), ("R", {"t": 105.5}), ("R", {"t": 100.0}), ("R", {"t": 99}))
    assert got == [("S", {"t": 100}), ("S", {"t": 105.5}), ("S", {"t": 100.0})]


def test_expression_emit_arithmetic() -> None:
    src = 'stream Calc = N .emit(q: a / b, r: a % b, f: a / 2.0, p: a ** 2, m: -a, c: a + b * 2, s: "lit", w: w)'  # noqa: E501
    assert run(src, ("N", {"a": 7, "b": 2, "w": "x"})) == [
        ("Calc", {"q": 3, "r": 1, "f": 3.5, "p": 49, "m": -7, "c": 11, "s": "lit", "w": "x"})
    ]
    assert run(src, ("N", {"a": -7, "b": 2})) == [
        ("Calc", {"q": -3, "r": -1, "f": -3.5, "p": 49, "m": 7, "c": -3, "s": "lit"})
    ]
    assert run(src, ("N", {"a": 7, "b": 0})) == [
        ("Calc", {"q": None, "r": None, "f": 3.5, "p": 49, "m": -7, "c": 7, "s": "lit"})
    ]
    assert run(src, ("N", {"a": 7.0, "b": 2})) == [
        ("Calc", {"q": 3.5, "r": 1.0, "f": 3.5, "p": 49.0, "m": -7.0, "c": 11.0, "s": "lit"})
    ]


def test_logic_and_equality() -> None:
    src = "stream L = N .where(a > 0 or b > 0) .emit(ok: true, eq: a == 1, lt: a < 1.5)"
    assert run(src, ("N", {"a": 1, "b": -1})) == [("L", {"ok": True, "eq": True, "lt": True})]
    assert run(src, ("N", {"a": 1.0, "b": -1})) == [("L", {"ok": True, "eq": True, "lt": True})]
    assert run(src, ("N", {"a": 1})) == [("L", {"ok": True, "eq": True, "lt": True})]
    assert run(src, ("N", {"a": -1, "b": -1})) == []
    assert run("stream L = N .where(not (a > 1)) .emit(a: a)", ("N", {"a": 0})) == [("L", {"a": 0})]


def test_derived_and_silent_streams() -> None:
    src = "stream Hot = Reading .where(t > 30)\nstream HotAlert = Hot .emit(sensor: id, t: t)"
    assert run(src, ("Reading", {"id": "a", "t": 35})) == [("HotAlert", {"sensor": "a", "t": 35})]
    assert run(src, ("Reading", {"id": "b", "t": 20})) == []
    assert run(src, ("Hot", {"id": "c", "t": 1})) == [("HotAlert", {"sensor": "c", "t": 1})]


GEN = (
    CLASSIFY_AND_GEN
    + """
stream Items = Trigger
    .process(gen(n))
"""
)


def test_functions_and_process() -> None:
    assert run(GEN, ("Trigger", {"n": 4})) == [
        ("Item", {"i": 0, "label": "small", "total": 0}),
        ("Item", {"i": 1, "label": "small", "total": 1}),
        ("Item", {"i": 3, "label": "big", "total": 4}),
        ("Done", {"total": 4, "avg": 1}),
    ]
    assert run(GEN, ("Trigger", {})) == [("Done", {"total": 0})]


def test_while_has_no_silent_cap_but_a_budget() -> None:
    src = """
fn spin(n: int) -> int:
    var i = 0
    while i < n:
        i := i + 1
    return i

stream W = Go .emit(v: spin(k))
"""
    assert run(src, ("Go", {"k": 20000})) == [("W", {"v": 20000})]
    engine = Engine(src, step_budget=1000)
    assert engine.process(Event("Go", {"k": 5000})) == []
    assert engine.process(Event("Go", {"k": 5})) == [Event("W", {"v": 5})]
    assert engine.metrics()["streams"]["W"]["errors"] == 1


MANDEL = (
    MANDELBROT_FNS
    + """
stream Tile00 = ComputeTile00 .process(compute_tile(77, 497, 2, 50))
stream Tile01 = ComputeTile01 .process(compute_tile(500, 500, 2, 256))
"""
)


def test_mandelbrot_pixels() -> None:
    assert run(MANDEL, ("ComputeTile00", {})) == [
        ("Pixel", {"x": 77, "y": 497, "iterations": 27, "diverged": True}),
        ("Pixel", {"x": 77, "y": 498, "iterations": 31, "diverged": True}),
        ("Pixel", {"x": 78, "y": 497, "iterations": 40, "diverged": True}),
        ("Pixel", {"x": 78, "y": 498, "iterations": 50, "diverged": False}),
    ]
    got = run(MANDEL, ("ComputeTile01", {}))
    assert [(f["x"], f["y"]) for _, f in got] == [(500, 500), (500, 501), (501, 500), (501, 501)]
    assert all(f["iterations"] == 256 and not f["diverged"] for _, f in got)
    assert run(MANDEL, ("ComputeTile02", {})) == []


def test_tile_checksum_matches_plain_python() -> None:
    expected = sum(
        mandelbrot_py(-2.0 + (300 + px) * 3.0 / 1000.0, -1.5 + (400 + py) * 3.0 / 1000.0, 256)
        for px in range(100)
        for py in range(100)
    )
    src = MANDEL.replace("compute_tile(77, 497, 2, 50)", "compute_tile(300, 400, 100, 256)")
    pixels = run(src, ("ComputeTile00", {}))
    assert len(pixels) == 10_000
    assert sum(f["iterations"] for _, f in pixels) == expected


def test_cross_context_chain_runs_inline_in_order() -> None:
    src = CROSS_CONTEXT_CHAIN
    got = run(
        src,
        ("SensorReading", {"sensor_id": "S1", "temperature": 105.5}),
        ("SensorReading", {"sensor_id": "S2", "temperature": 75.0}),
        ("SensorReading", {"sensor_id": "S3", "temperature": 30.0}),
    )
    assert got == [
        ("Filtered", {"sensor": "S1", "temp": 105.5}),
        ("Analysis", {"alert_sensor": "S1", "alert_temp": 105.5}),
        ("Filtered", {"sensor": "S2", "temp": 75.0}),
    ]


def test_select_then_emit() -> None:
    src = "stream F = Reading .select(sensor: sensor_id, f: temp * 9 / 5 + 32, temp) .emit(sensor: sensor, f: f, temp: temp)"  # noqa: E501
    assert run(src, ("Reading", {"sensor_id": "a", "temp": 100, "x": 1})) == [
        ("F", {"sensor": "a", "f": 212, "temp": 100})
    ]
    assert run(src, ("Reading", {"sensor_id": "a"})) == [("F", {"sensor": "a"})]


def test_emit_event_type_sets_the_type() -> None:
    src = 'stream S = A .emit(event_type: "Alarm", v: x)'
    assert run(src, ("A", {"x": 1})) == [("Alarm", {"v": 1})]


def test_merge() -> None:
    src = "stream Env = merge(stream HotT = Temp .where(t > 30), Humid) .emit(t: t, h: h, n: 1)"
    assert run(src, ("Temp", {"t": 35})) == [("Env", {"t": 35, "n": 1})]
    assert run(src, ("Temp", {"t": 20})) == []
    assert run(src, ("Humid", {"h": 80})) == [("Env", {"h": 80, "n": 1})]


def test_join() -> None:
    src = """
stream Joined = join(Orders, Customers)
    .on(Orders.customer_id == Customers.id)
    .window(5m)
    .emit(order: Orders.order_id, name: Customers.name)
"""
    got = run(
        src,
        ("Orders", {"order_id": 7, "customer_id": "c1"}),
        ("Customers", {"id": "c1", "name": "Ann"}),
        ("Orders", {"order_id": 8, "customer_id": "c1"}),
        ("Customers", {"id": "c1", "name": "Bob"}),
        ("Orders", {"order_id": 9, "customer_id": "c2"}),
    )
    assert got == [
        ("Joined", {"order": 7, "name": "Ann"}),
        ("Joined", {"order": 8, "name": "Ann"}),
        ("Joined", {"order": 8, "name": "Bob"}),
    ]


def test_distinct_limit_first() -> None:
    assert run("stream D = A .distinct(k) .emit(k: k)", ("A", {"k": 1}), ("A", {"k": 1}),
               ("A", {"k": 2})) == [("D", {"k": 1}), ("D", {"k": 2})]  # fmt: skip
    assert run("stream L = A .limit(2) .emit(k: k)", ("A", {"k": 1}), ("A", {"k": 2}),
               ("A", {"k": 3})) == [("L", {"k": 1}), ("L", {"k": 2})]  # fmt: skip
    assert run("stream F = A .first() .emit(k: k)", ("A", {"k": 1}), ("A", {"k": 2})) == [
        ("F", {"k": 1})
    ]


def test_top_level_constants_are_visible() -> None:
    src = (
        "const LIMIT = 10\nlet threshold = LIMIT * 5\n"
        "stream G = R .where(v > threshold) .emit(v: v)"
    )
    assert run(src, ("R", {"v": 60}), ("R", {"v": 40})) == [("G", {"v": 60})]


def test_runtime_type_error_is_counted_not_fatal() -> None:
    engine = Engine("stream S = A .emit(v: x * 2.5)\nstream T = A .emit(ok: true)")
    out = engine.process(Event("A", {"x": "a"}))
    assert [(e.event_type, e.fields) for e in out] == [("T", {"ok": True})]
    assert engine.metrics()["streams"]["S"]["errors"] == 1
    assert engine.process(Event("A", {"x": 2})) == [
        Event("S", {"v": 5.0}),
        Event("T", {"ok": True}),
    ]


def test_count_window_aggregate_through_the_engine() -> None:
    src = "stream S = M .window(3) .aggregate(n: count(), total: sum(v)) .emit(n: n, total: total)"
    got = run(src, *[("M", {"v": v}) for v in range(1, 8)])
    assert got == [("S", {"n": 3, "total": 6.0}), ("S", {"n": 3, "total": 15.0})]


def test_partitioned_window_and_having() -> None:
    src = """
stream PerKey = Reading
    .partition_by(k)
    .window(2)
    .aggregate(n: count(), total: sum(v))
    .having(total > 10)
    .emit(part: _partition, key: k, n: n, total: total)
"""
    got = run(src, ("Reading", {"k": "a", "v": 1}), ("Reading", {"k": "b", "v": 10}),
              ("Reading", {"k": "a", "v": 2}), ("Reading", {"k": "b", "v": 20}))  # fmt: skip
    assert got == [("PerKey", {"part": "b", "key": "b", "n": 2, "total": 30.0})]


def test_time_window_closes_on_event_time_and_flush() -> None:
    src = "stream S = M .window(1m) .aggregate(n: count(), total: sum(v)) .emit(n: n, total: total)"
    engine = Engine(src)
    out = []
    for seconds, v in ((0, 1), (30, 2), (59, 3), (60, 4), (70, 5), (150, 6)):
        out += engine.process(Event("M", {"v": v}, seconds * 10**9))
    assert [e.fields for e in out] == [{"n": 3, "total": 6.0}, {"n": 2, "total": 9.0}]
    assert [e.fields for e in engine.flush()] == [{"n": 1, "total": 6.0}]


def test_sequence_through_the_engine() -> None:
    src = """
stream Paid = Order as o
    -> Payment where order_id == o.id as p
    .not(Cancel where order_id == o.id)
    .emit(order: o.id, amount: p.amount)
"""
    got = run(src, ("Order", {"id": 1}), ("Order", {"id": 2}), ("Cancel", {"order_id": 1}),
              ("Payment", {"order_id": 2, "amount": 50.0}),
              ("Payment", {"order_id": 1, "amount": 10.0}))  # fmt: skip
    assert got == [("Paid", {"order": 2, "amount": 50.0})]


def test_kleene_sequence_reads_last_and_len() -> None:
    src = """
stream Burst = Start as s
    -> all Tick where price > 100 as t
    -> End as e
    .emit(first: s.id, ticks: len(t), last_price: t.price, end: e.id)
"""
    got = run(src, ("Start", {"id": 1}), ("Tick", {"price": 90}), ("Tick", {"price": 101.5}),
              ("Tick", {"price": 120}), ("End", {"id": 9}))  # fmt: skip
    assert got == [("Burst", {"first": 1, "ticks": 2, "last_price": 120, "end": 9})]


def test_named_pattern_through_the_engine() -> None:
    src = """
pattern Rising = SEQ(StockTick as a, StockTick+ where price > a.price as b, StockTick where price > b.price as c) within 60s partition by symbol
stream RisingAlert = Rising .emit(symbol: a.symbol, start: a.price, peak: c.price)
"""  # noqa: E501
    ticks = [("StockTick", {"symbol": "X", "price": p}) for p in (10, 11, 12)]
    assert run(src, *ticks) == [("RisingAlert", {"symbol": "X", "start": 10, "peak": 12})]


def test_where_after_a_sequence_reads_captures() -> None:
    src = "stream M = A as a -> B as b .where(a.id == b.id) .within(60s) .emit(id: a.id)"
    got = run(src, ("A", {"id": 1}), ("A", {"id": 2}), ("B", {"id": 2}))
    assert got == [("M", {"id": 2})]


def test_watermark_and_allowed_lateness() -> None:
    src = "stream W = S .watermark(out_of_order: 5s) .allowed_lateness(10s) .emit(v: v)"
    engine = Engine(src)
    got = []
    for seconds, v in ((100, 1), (90, 2), (80, 3), (101, 4)):
        got += [e.fields["v"] for e in engine.process(Event("S", {"v": v}, seconds * 10**9))]
    assert got == [1, 2, 4]
    assert engine.metrics()["late_dropped"] == 1
    no_lateness = Engine("stream W = S .watermark(out_of_order: 5s) .emit(v: v)")
    for seconds in (100, 10):
        assert no_lateness.process(Event("S", {"v": seconds}, seconds * 10**9))


def test_print_log_tap_pass_events_through(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    src = (
        'stream S = A .print("temp", t, missing) .log(level: "warn", message: "seen", data: t)'
        " .tap(t) .emit(t: t)"
    )
    caplog.set_level("DEBUG", logger="varpulis.runtime")
    assert run(src, ("A", {"t": 100.0})) == [("S", {"t": 100.0})]
    assert capsys.readouterr().out == "[PRINT] temp 100 null\n"
    messages = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert ("WARNING", "[S] seen 100.0") in messages
    assert ("DEBUG", "[S] tap [100.0]") in messages


def test_to_file_and_console_sinks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "alerts.jsonl"
    src = f"""
connector Out = file (path: "{target}")
connector Screen = console ()
stream Hot = Reading
    .where(t > 30)
    .to(Out)
    .emit(sensor: id, t: t, timestamp: "x")
    .to(Out)
    .to(Screen)
"""
    engine = Engine(src)
    out = engine.process(Event("Reading", {"id": "a", "t": 35}, 1_704_067_205 * 10**9))
    assert [(e.event_type, e.fields) for e in out] == [
        ("Hot", {"sensor": "a", "t": 35, "timestamp": "x"})
    ]
    engine.close()
    assert target.read_text().splitlines() == [
        '{"event_type":"Reading","timestamp":"2024-01-01T00:00:05Z","id":"a","t":35}',
        '{"event_type":"Hot","timestamp":"2024-01-01T00:00:05Z","sensor":"a","t":35}',
    ]
    assert capsys.readouterr().out.splitlines() == [
        '{"event_type":"Hot","timestamp":"2024-01-01T00:00:05Z","sensor":"a","t":35}'
    ]
