"""The engine's batch path gives exactly the per-event outputs (differential tests).

Every check runs one engine per event and another on the whole batch and
compares outputs by type, value (``repr``, so 1 and 1.0 differ and NaN equals
itself), order and timestamp, plus the counters of ``metrics()``.
"""

from __future__ import annotations

import io
import math
import tempfile
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kernels.columnar import ColumnarBatch
from tests.utils import canon
from varpulis.events import Event, to_api_json
from varpulis.runtime.batch import MIN_RUN
from varpulis.runtime.engine import Engine
from varpulis.simulate import simulate


def both(source: str, events: list[Event]) -> tuple[Engine, Engine]:
    """Run *events* per event and as one batch; assert identical outputs and counters.

    Events of one type also go through ``process_rows(..., api=True)``: the REST
    output dicts, built from columns, equal ``to_api_json`` of the per-event outputs.
    """
    single, batched = Engine(source), Engine(source)
    expected = [out for ev in events for out in single.process(ev)]
    got = batched.process_batch(events)
    assert canon(got) == canon(expected)
    assert batched.metrics() == single.metrics()
    kinds = {ev.event_type for ev in events}
    rows_engine = Engine(source)
    if len(kinds) == 1 and rows_engine.batch_plan is not None:
        dicts = rows_engine.batch_plan.process_rows(kinds.pop(), [e.fields for e in events], 0,
                                                    api=True)  # fmt: skip
        assert canon_dicts(dicts) == canon_dicts(list(map(to_api_json, expected)))
    return single, batched


def canon_dicts(dicts: list[dict]) -> list[list]:
    """Dicts compared with key order and exact Python types (NaN equal to NaN)."""
    return [[(k, type(v).__name__, repr(v)) for k, v in d.items()] for d in dicts]


def readings(temps: list[Any], kind: str = "TemperatureReading") -> list[Event]:
    return [Event(kind, {"sensor_id": f"s{i % 7}", "temperature": t}, 1000 + i)
            for i, t in enumerate(temps)]  # fmt: skip


FILTER = (
    "stream S = TemperatureReading .where(temperature > 100)"
    " .emit(sensor_id: sensor_id, temperature: temperature)"
)


def test_filter_runs_columnar_and_matches() -> None:
    temps = [float(t) for t in range(90, 130)] + [100.0, 101.0, -5.0, 2.0**62]
    _, engine = both(FILTER, readings(temps))
    assert engine.batch_plan is not None
    assert engine.batch_plan.metrics() == {"streams": ["S"], "columnar": 44, "per_event": 0}


@pytest.mark.parametrize(
    ("temps", "why"),
    [
        ([101.5] * 20 + [101], "int among floats"),
        ([101.5] * 20 + ["hot"], "string among floats"),
        ([101.5] * 20 + [None], "null among floats"),
        ([2**63 + 5] * 20, "beyond int64"),
    ],
)
def test_mixed_columns_fall_back_per_event(temps: list[Any], why: str) -> None:
    _, engine = both(FILTER, readings(temps))
    assert engine.batch_plan.per_event == len(temps), why


def test_missing_field_falls_back_and_keeps_results() -> None:
    events = readings([120.0] * 20)
    del events[3].fields["temperature"]
    del events[5].fields["sensor_id"]  # emitted without the missing item
    _, engine = both(FILTER, events)
    assert engine.batch_plan.per_event == 20


def test_missing_passthrough_field_is_left_out_columnar() -> None:
    events = readings([120.0] * 20)
    del events[5].fields["sensor_id"]
    _, engine = both(FILTER, events)
    assert engine.batch_plan.columnar == 20


def test_mixed_types_and_short_runs_keep_order() -> None:
    events = readings([120.0] * 20) + readings([1.0] * 3, "Other") + readings([150.5] * 5)
    events += readings([130.0] * 30)
    both(FILTER, events)


@pytest.mark.parametrize(
    "source",
    [
        "stream S = T .where(a * 2 + 1 > b) .emit(x: a - b, y: a * b, s: s)",
        "stream S = T .where(a / 2.0 > 3) .emit(q: a / 2.0)",
        "stream S = T .where(b != 0.0) .emit(q: a / b)",
        'stream S = T .where(s == "k3" or s < "k1") .emit(s: s, neg: -a)',
        "stream S = T .where(not (a > 3) and f) .emit(f: f, nf: not f)",
        "stream S = T .select(a, c: a + 1) .where(c > 5) .emit(c: c, a: a)",
        'stream S = T .emit(event_type: "Out", k: 5, t: "x", n: null, z: 2.5, b: true)',
        "stream S = T .where(a > 3)",
        "stream S = T .where(s > 3) .emit(s: s)",
        "stream S = T .where(a == 4.0) .emit(a: a)",
        "stream S = T .where(a / 0 == null) .emit(a: a)",
        "stream S = T .emit(r: a / b)",
        "stream S = T .emit(r: a % 3)",
    ],
)
def test_chains(source: str) -> None:
    events = [Event("T", {"a": i - 5, "b": (i % 4) * 1.5, "s": f"k{i % 5}", "f": i % 3 == 0}, i)
              for i in range(40)]  # fmt: skip
    both(source, events)


def test_int_overflow_and_precision_guards() -> None:
    big = [2**62 + i for i in range(20)]
    events = [Event("T", {"a": v, "b": 0.5}, i) for i, v in enumerate(big)]
    _, engine = both("stream S = T .where(a * 4 > 0) .emit(x: a * 4)", events)
    assert engine.batch_plan.per_event == 20  # int64 would wrap
    _, engine = both("stream S = T .where(a > 4.611686018427388e18) .emit(a: a)", events)
    assert engine.batch_plan.per_event == 20  # float64 compare would round
    small = [Event("T", {"a": i, "b": 0.5}, i) for i in range(20)]
    _, engine = both("stream S = T .where(a * 4 > 0 and a > 2.5) .emit(x: a * 4)", small)
    assert engine.batch_plan.columnar == 20


def test_zero_divisor_column_falls_back() -> None:
    events = [Event("T", {"a": 1.0, "b": float(i % 3)}, i) for i in range(30)]
    _, engine = both("stream S = T .emit(q: a / b)", events)
    assert engine.batch_plan.per_event == 30


def test_not_batchable_streams_have_no_plan() -> None:
    for source in (
        "stream S = T .where(a > 1) .emit(x: a) .print()",
        "stream S = T .where(len(s) > 1) .emit(x: a)",
        "stream S = T .emit(x: a)\nstream U = S .emit(y: x)",
        "stream S = T .window(3) .aggregate(n: count())",
    ):
        plan = Engine(source).batch_plan
        assert plan is None or "T" not in plan.streams, source


def test_process_columns_gives_batches_with_the_same_rows() -> None:
    temps = np.array([float(t) for t in range(80, 140)])
    sensors = np.empty(len(temps), dtype=object)
    sensors[:] = [f"s{i}" for i in range(len(temps))]
    stamps = np.arange(len(temps), dtype=np.int64) * 10
    batch = ColumnarBatch("TemperatureReading", {"sensor_id": sensors, "temperature": temps},
                          timestamps=stamps)  # fmt: skip
    engine, single = Engine(FILTER), Engine(FILTER)
    out = engine.batch_plan.process_columns(batch)
    assert len(out) == 1 and isinstance(out[0], ColumnarBatch)
    rows = [Event(out[0].event_type, f, t) for f, t in out[0].iter_rows()]
    events = [Event("TemperatureReading", f, t) for f, t in batch.iter_rows()]
    assert canon(rows) == canon([o for ev in events for o in single.process(ev)])
    assert engine.metrics() == single.metrics()


def test_process_rows_matches_events() -> None:
    rows = [{"sensor_id": f"s{i}", "temperature": 95.0 + i} for i in range(30)]
    engine, single = Engine(FILTER), Engine(FILTER)
    got = engine.batch_plan.process_rows("TemperatureReading", rows, 77)
    expected = [o for f in rows for o in single.process(Event("TemperatureReading", f, 77))]
    assert canon(got) == canon(expected)


# --------------------------------------------------------------- properties

FIELDS = ("a", "b", "s", "f")
INTS = st.one_of(st.integers(-20, 20), st.integers(-(2**63), 2**63 - 1), st.just(2**53 + 1))
FLOATS = st.one_of(
    st.floats(-50, 50, allow_nan=False, width=64),
    st.sampled_from([0.0, -0.0, math.nan, math.inf, 1e300, 2.0**53, 0.5]),
)
STRINGS = st.sampled_from(["", "a", "b", "ab", "B", "k1", "é"])
VALUES = {"int": INTS, "float": FLOATS, "str": STRINGS, "bool": st.booleans()}
ANY = st.one_of(INTS, st.just(2**64), FLOATS, STRINGS, st.booleans(), st.none())
NUMBER_TEXT = st.sampled_from(["0", "3", "-2", "7", "2.5", "100.0", "0.0", "-1.5"])


def literal_text() -> st.SearchStrategy[str]:
    return st.one_of(
        st.integers(-10, 10).map(str),
        NUMBER_TEXT,
        st.sampled_from(['"a"', '"b"', '""', "true", "false", "null"]),
    )


def binary(sub: st.SearchStrategy[str], ops: list[str]) -> st.SearchStrategy[str]:
    return st.tuples(sub, st.sampled_from(ops), sub).map(lambda t: f"({t[0]} {t[1]} {t[2]})")


def any_expr() -> st.SearchStrategy[str]:
    """Anything: every operator, every kind of literal, a field that is never there."""
    leaves = st.one_of(st.sampled_from(FIELDS + ("missing",)), literal_text())
    ops = ["+", "-", "*", "/", "%", "==", "!=", "<", "<=", ">", ">=", "and", "or"]
    return st.recursive(
        leaves,
        lambda sub: st.one_of(
            binary(sub, ops), sub.map(lambda x: f"(-{x})"), sub.map(lambda x: f"(not {x})")
        ),
        max_leaves=6,
    )


def number_expr() -> st.SearchStrategy[str]:
    """Arithmetic over the numeric fields: mostly what the batch path lowers."""
    leaves = st.one_of(st.sampled_from(["a", "b"]), NUMBER_TEXT)
    return st.recursive(
        leaves,
        lambda sub: st.one_of(binary(sub, list("+-*+-*/")), sub.map(lambda x: f"(-{x})")),
        max_leaves=5,
    )


def bool_expr() -> st.SearchStrategy[str]:
    """Comparisons and logic: numbers, strings, the bool field."""
    compare = ["==", "!=", "<", "<=", ">", ">="]
    atoms = st.one_of(
        binary(number_expr(), compare),
        st.tuples(st.sampled_from(compare), st.sampled_from(['"a"', '"ab"', "s"])).map(
            lambda t: f"(s {t[0]} {t[1]})"
        ),
        st.sampled_from(["f", "(not f)", "(f == true)", "(s == 1)", "(a == null)"]),
    )
    return st.recursive(
        atoms,
        lambda sub: st.one_of(binary(sub, ["and", "or"]), sub.map(lambda x: f"(not {x})")),
        max_leaves=4,
    )


@st.composite
def batches(draw: st.DrawFn) -> list[Event]:
    """Events of type T whose fields share one type per column (so the batch path
    runs), a third of the time with occasional rows of another type or a missing field."""
    numeric = st.sampled_from(["int", "float", "float"])
    kinds = {"a": draw(numeric), "b": draw(numeric), "s": "str", "f": "bool"}
    if draw(st.integers(0, 4)) == 0:
        kinds = {name: draw(st.sampled_from(list(VALUES))) for name in FIELDS}
    small = draw(st.booleans())  # small ints: no overflow or precision guard trips
    values = dict(VALUES, int=st.integers(-1000, 1000) if small else INTS)
    clean = draw(st.integers(0, 2)) > 0
    n = draw(st.integers(MIN_RUN, 48))
    events = []
    for i in range(n):
        fields = {}
        for name in FIELDS:
            roll = 2 if clean else draw(st.integers(0, 60))
            if roll == 0:
                continue  # a missing field
            fields[name] = draw(ANY if roll == 1 else values[kinds[name]])
        events.append(Event("T", fields, i))
    if draw(st.integers(0, 3)) == 0:  # two runs of T (one may be short: per event)
        events.insert(draw(st.integers(0, n)), Event("Other", {"a": 1}, 99))
    return events


WHERE = st.one_of(bool_expr(), bool_expr(), any_expr())
ITEM = st.one_of(number_expr(), number_expr(), any_expr())


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(where=WHERE, item=ITEM, events=batches())
def test_random_where_emit_match_per_event(where: str, item: str, events: list[Event]) -> None:
    source = f"stream S = T .where({where}) .emit(x: {item}, a: a, s: s)"
    both(source, events)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(item=ITEM, where=WHERE, other=ITEM, events=batches())
def test_random_select_where_emit_match_per_event(
    item: str, where: str, other: str, events: list[Event]
) -> None:
    source = f"stream S = T .select(a, b, s, f, y: {item}) .where({where}) .emit(y: y, z: {other})"
    both(source, events)


DIRECT_PROGRAMS = [
    "stream V = T .partition_by(s) .window(3) .aggregate(n: count(), p: sum(x * y))"
    " .emit(s: _partition, p: p)",
    "stream M = A as a -> B as b .where(a.y == b.y) .within(5ms) .emit(y: a.y)",
    "stream K = T as a -> all T where x > a.x as b .within(4ms) .emit(s: a.x, t: b.x, n: len(b))",
    "stream E = T .emit(v: x * 2.5)\nstream F = A .window(2) .aggregate(m: max(x)) .emit(m: m)",
    "stream S = T .emit(v: x)\nstream U = S .emit(w: v)\nstream W = A .where(x > 1) .emit(z: x)",
]  # fmt: skip
DIRECT_VALUES = st.one_of(st.integers(-3, 3), st.floats(-3, 3, allow_nan=False), st.just("s"))


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(DIRECT_PROGRAMS),
    st.lists(
        st.tuples(
            st.sampled_from(["T", "A", "B", "Z"]),
            st.sampled_from(["p", "q"]),
            DIRECT_VALUES,
            st.integers(0, 2),
        ),  # fmt: skip
        min_size=MIN_RUN,
        max_size=80,
    ),
)
def test_direct_streams_give_per_event_outputs_and_counters(
    program: str, rows: list[tuple[str, str, Any, int]]
) -> None:
    events = [
        Event(kind, {"s": s, "x": x, "y": y}, i * 1_000_000)
        for i, (kind, s, x, y) in enumerate(rows)
    ]
    batched, single = Engine(program), Engine(program)
    assert batched.batch_plan is not None and batched.batch_plan.direct
    got = batched.process_batch(events)
    assert canon(got) == canon([o for ev in events for o in single.process(ev)])
    assert batched.metrics() == single.metrics()


TICK_PROGRAMS = [
    "stream Hi = StockTick .where(price > 50.0) .emit(symbol: symbol, price: price)",
    "stream Hi = StockTick .where(price * volume > 900) .select(p: price) .emit(q: p, v: volume)",
    "stream V = StockTick .partition_by(symbol) .window(5) .aggregate(v: sum(price * volume))"
    " .emit(s: _partition, v: v)",
    "stream M = A as a -> B as b .where(a.id == b.id) .within(3ms) .emit(id: a.id)",
]


@settings(max_examples=25, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(
    st.sampled_from(TICK_PROGRAMS),
    st.lists(
        st.tuples(
            st.sampled_from(["StockTick"] * 4 + ["A", "B"]),
            st.sampled_from(["AAPL", "IBM"]),
            st.one_of(st.floats(0, 100).map(lambda f: round(f, 2)), st.integers(0, 100)),
            st.sampled_from(["", "", "", "@{i}ms ", "BATCH {i}\n"]),
        ),
        min_size=1,
        max_size=200,
    ),
)
def test_simulate_over_line_tables_gives_per_event_outputs(
    program: str, ticks: list[tuple[str, str, Any, str]]
) -> None:
    """Tables from the .evt reader (columns, one regex per block) vs one event at a time."""
    body = '{{ symbol: "{}", price: {}, volume: {}, id: {} }}'
    lines = [
        prefix.format(i=i) + kind + " " + body.format(sym, price, i % 17, i % 5)
        for i, (kind, sym, price, prefix) in enumerate(ticks)
    ]
    with tempfile.TemporaryDirectory() as tmp:
        path = f"{tmp}/t.evt"
        with open(path, "w") as f:
            f.write("\n".join(lines * 3) + "\n")
        runs = []
        for immediate in (True, False):
            out = io.StringIO()
            stats = simulate(Engine(program), path, out=out, immediate=immediate, base_ns=0,
                             sleep=lambda s: None)  # fmt: skip
            runs.append((out.getvalue(), stats.events, stats.outputs, stats.errors))
    assert runs[0] == runs[1]


def test_simulate_hands_uniform_tables_to_the_columnar_path(tmp_path: Any) -> None:
    path = tmp_path / "t.evt"
    path.write_text(
        "".join(
            f'@{i}ms StockTick {{ symbol: "S{i % 3}", price: {i % 97}.5 }}\n' for i in range(300)
        )
    )
    engine, single = Engine(TICK_PROGRAMS[0]), Engine(TICK_PROGRAMS[0])
    out, out_single = io.StringIO(), io.StringIO()
    simulate(engine, str(path), out=out, immediate=True, base_ns=5)
    simulate(single, str(path), out=out_single, base_ns=5, sleep=lambda s: None)
    assert out.getvalue() == out_single.getvalue() and out.getvalue().count("\n") == 141
    assert engine.batch_plan is not None and engine.batch_plan.columnar == 300
    assert engine.metrics() == single.metrics()


SEVERAL = (
    "stream Hi = T .where(x > 0) .emit(v: x, s: s)\n"
    "stream All = T .emit(w: x * 2, y: y)\n"
    'stream Named = T .where(s == "p") .select(x, y) .emit(event_type: "N", x: x)'
)


def test_several_stateless_streams_on_one_type_run_over_columns() -> None:
    events = [Event("T", {"s": "pq"[i % 2], "x": i - 20, "y": i % 3}, i) for i in range(60)]
    single, batched = both(SEVERAL, events)
    assert batched.batch_plan.metrics() == {
        "streams": ["All", "Hi", "Named"], "columnar": 60, "per_event": 0
    }  # fmt: skip
    # per event: for each input, the streams in declaration order
    kinds = [o.event_type for o in batched.process_batch(events[30:46])]
    assert kinds[:4] == ["Hi", "All", "N", "Hi"]


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(st.sampled_from(["p", "q"]), DIRECT_VALUES, st.integers(0, 2)),
        min_size=0,
        max_size=60,
    )
)
def test_several_streams_match_per_event(rows: list[tuple[str, Any, int]]) -> None:
    events = [Event("T", {"s": s, "x": x, "y": y}, i) for i, (s, x, y) in enumerate(rows)]
    both(SEVERAL, events)


@pytest.mark.parametrize(
    "where",
    ["-(-(a / a))", '(-(a / a)) == "x"', "(a / a) + 1"],  # non-bool, or kinds that never match
)
def test_a_folded_filter_keeps_the_errors_of_its_division(where: str) -> None:
    # per event, the division by zero gives null and the next operation fails (counted)
    events = [Event("T", {"a": 0.0, "s": "x"}, i) for i in range(MIN_RUN)]
    single, batched = both(f"stream S = T .where({where}) .emit(x: a)", events)
    assert batched.metrics()["errors"] == single.metrics()["errors"]
