"""The columnar count-window kernel gives exactly the per-event outputs (differential tests).

Each check runs one engine per event and drives another through
``window_batch.build(engine, runner).run(block)``, running a block per event
(as the batch plan does) whenever the kernel declines it. Outputs are compared
by type, fields (key order, Python type and ``repr``, so ``1`` and ``1.0``
differ and NaN equals itself), order and timestamp, plus ``metrics()``; then
the kernel settles and both engines flush.
"""

from __future__ import annotations

import math
import random
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.utils import canon
from varpulis.errors import VPLRuntimeError
from varpulis.events import Event
from varpulis.runtime.blocks import Block
from varpulis.runtime.engine import Engine
from varpulis.runtime.window_batch import WindowKernel, build

VWAP = (
    "stream Vwap = StockTick .partition_by(symbol) .window(100)"
    " .aggregate(vwap: sum(price * volume) / sum(volume), volume: sum(volume))"
    " .emit(symbol: _partition, vwap: vwap, volume: volume)"
)
SYMBOLS = ["AAPL", "MSFT", "GOOG", "AMZN", "TSLA", "META", "NVDA", "IBM"]


def kernel_of(source: str, name: str = "S") -> tuple[Engine, WindowKernel]:
    engine = Engine(source)
    runner = next(r for r in engine.runners if r.name == name)
    kernel = build(engine, runner)
    assert kernel is not None
    return engine, kernel


def run_block(
    engine: Engine, kernel: WindowKernel, events: list[Event]
) -> tuple[list[Event], bool]:
    """The outputs of *events* through the kernel, per event when it declines."""
    out = kernel.run(Block.of_events(events))
    if out is not None:
        return out, True
    return [o for ev in events for o in engine.process(ev)], False


def compare(source: str, events: list[Event], sizes: list[int], name: str = "S",
            per_event: set[int] = frozenset()) -> int:  # type: ignore[assignment]  # fmt: skip
    """Run *events* in blocks of *sizes* (cycled; blocks numbered in *per_event* go
    through ``Engine.process``) and per event; assert equality. Returns how many
    blocks ran as columns."""
    single = Engine(source)
    expected = [o for ev in events for o in single.process(ev)]
    engine, kernel = kernel_of(source, name)
    got: list[Event] = []
    start = columnar = block = 0
    while start < len(events):
        size = sizes[block % len(sizes)]
        chunk = events[start : start + size]
        if block in per_event:
            got += [o for ev in chunk for o in engine.process(ev)]
        else:
            out, ran = run_block(engine, kernel, chunk)
            got += out
            columnar += ran
        start += size
        block += 1
    assert canon(got) == canon(expected)
    assert engine.metrics() == single.metrics()
    kernel.settle()
    assert flushed(engine) == flushed(single)
    assert engine.metrics() == single.metrics()
    return columnar


def flushed(engine: Engine) -> list[tuple] | str:
    """What ``flush`` gives (an aggregate's runtime error there propagates, per event too)."""
    try:
        return canon(engine.flush())
    except VPLRuntimeError as exc:
        return repr(exc)


def ticks(
    n: int, seed: int = 1, *, symbols: list[Any] = SYMBOLS, ints: bool = False
) -> list[Event]:
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        price = rnd.randint(1, 900) if ints else round(rnd.uniform(10, 100), 2)
        fields = {"symbol": rnd.choice(symbols), "price": price, "volume": rnd.randint(1, 500),
                  "id": i}  # fmt: skip
        out.append(Event("StockTick", fields, 1_000 + i))
    return out


# ------------------------------------------------------------------ VWAP


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("ints", [False, True])
def test_vwap_random_blocks(seed: int, ints: bool) -> None:
    rnd = random.Random(seed)
    symbols = rnd.sample(SYMBOLS, rnd.randint(1, len(SYMBOLS)))
    events = ticks(6000, seed, symbols=symbols, ints=ints)
    sizes = [rnd.choice([1, 99, 100, 101, 1000, rnd.randint(2, 400)]) for _ in range(40)]
    assert compare(VWAP, events, sizes, "Vwap") > 0


def test_vwap_counters_and_carry() -> None:
    engine, kernel = kernel_of(VWAP, "Vwap")
    events = ticks(250, symbols=["A"])
    out = kernel.run(Block.of_events(events))
    assert out is not None and len(out) == 2
    assert [o.timestamp for o in out] == [events[99].timestamp, events[199].timestamp]
    runner = kernel.runner
    assert (engine.events_in, engine.events_out) == (250, 2)
    assert (runner.events_in, runner.events_out) == (250, 2)
    assert kernel.carry is not None and kernel.carry.n == 50
    assert runner.entry is not None  # the guard
    kernel.settle()
    assert kernel.carry is None and runner.entry is None
    assert (engine.events_in, engine.events_out) == (250, 2)
    assert len(engine.flush()) == 1


def test_vwap_table_blocks() -> None:
    events = ticks(3000, 5)
    single = Engine(VWAP)
    expected = [o for e in events for o in single.process(e)]
    engine, kernel = kernel_of(VWAP, "Vwap")
    got: list[Event] = []
    for start in range(0, len(events), 1024):
        chunk = events[start : start + 1024]
        columns = {k: [e.fields[k] for e in chunk] for k in chunk[0].fields}
        block = Block.of_table([e.event_type for e in chunk], columns, [e.timestamp for e in chunk])
        got += kernel.run(block) or []
    assert canon(got) == canon(expected)
    assert engine.metrics() == single.metrics()


def test_vwap_mixed_with_per_event() -> None:
    events = ticks(5000, 7)
    per_event = {1, 4, 5, 9, 15}
    compare(VWAP, events, [700, 3, 250, 1, 100, 999], "Vwap", per_event)


@pytest.mark.parametrize("partitioned", [False, True])
def test_blocks_take_the_per_event_windows_over(partitioned: bool) -> None:
    part = ".partition_by(k) " if partitioned else ""
    src = f"stream S = T {part}.window(10) .aggregate(n: count(), s: sum(x)) .emit(n: n, s: s)"
    events = [Event("T", {"x": i, "k": "ab"[i % 3 == 0]}, i) for i in range(100)]
    engine, kernel = kernel_of(src)
    for ev in events[:5]:
        engine.process(ev)
    assert kernel.run(Block.of_events(events[5:32])) is not None
    assert kernel.idle() and kernel.carry is not None
    assert engine.metrics()["events_in"] == 32
    # 8 blocks, 2 per event: every other block runs as columns
    assert compare(src, events, [10, 25, 5, 7, 13], per_event={0, 3}) == 6


def test_a_take_over_that_does_not_fit_leaves_the_window_as_it_was() -> None:
    src = "stream S = T .window(10) .aggregate(s: sum(x)) .emit(s: s)"
    engine, kernel = kernel_of(src)
    held = [Event("T", {"x": 1}, 0), Event("T", {"x": 2.5}, 1)]  # int and float: no column
    for ev in held:
        engine.process(ev)
    assert kernel.run(Block.of_events([Event("T", {"x": 3}, 2)])) is None
    assert not kernel.idle() and kernel.carry is None
    single = Engine(src)
    for ev in held:
        single.process(ev)
    for ev in [Event("T", {"x": i}, 3 + i) for i in range(12)]:
        assert canon(engine.process(ev)) == canon(single.process(ev))
    assert engine.metrics() == single.metrics()


def test_flush_order_is_first_seen_partition_order() -> None:
    src = "stream S = T .partition_by(k) .window(2) .aggregate(n: count()) .emit(p: _partition)"
    keys = ["a", "a", "b", "a"]  # a closes, b then a stay open: flush releases a, then b
    events = [Event("T", {"k": k}, i) for i, k in enumerate(keys)]
    compare(src, events, [4])
    compare(src, events, [3, 1])


# ------------------------------------------------------------------ functions


VALUES = {
    "int": lambda r, i: r.randint(-50, 50),
    "float": lambda r, i: (
        r.choice([-0.0, 0.0, 1e300, -1e300, 1e-300, math.inf])
        if i % 17 == 0
        else r.uniform(-1e6, 1e6) * 10 ** r.randint(-8, 8)
    ),
    "str": lambda r, i: r.choice(["x", "y", ""]),
    "bool": lambda r, i: r.random() < 0.5,
}


def rows(kind: str, n: int, seed: int = 5, *, key: str = "str") -> list[Event]:
    rnd = random.Random(seed)
    keys = ["p", "q", "r"] if key == "str" else [3, -1, 10**12]
    return [Event("T", {"k": rnd.choice(keys), "x": VALUES[kind](rnd, i)}, 10 * i)
            for i in range(n)]  # fmt: skip


def program(func: str, size: int, partitioned: bool) -> str:
    part = ".partition_by(k) " if partitioned else ""
    emit = "p: _partition, k: k, r: r" if partitioned else "r: r"
    arg = "" if func == "count()" else "(x)"
    return f"stream S = T {part}.window({size}) .aggregate(r: {func}{arg}) .emit({emit})"


@pytest.mark.parametrize("func", ["sum", "count", "count()", "avg", "min", "max", "first", "last"])
@pytest.mark.parametrize("size", [1, 2, 7, 100])
@pytest.mark.parametrize("partitioned", [False, True])
def test_each_function(func: str, size: int, partitioned: bool) -> None:
    kinds = ["int", "float"] + (["str", "bool"] if func in ("first", "last", "count") else [])
    for n, kind in enumerate(kinds):
        events = rows(kind, 700, seed=n)
        assert compare(program(func, size, partitioned), events, [1, 150, 7, 333, 100]) > 0


@pytest.mark.parametrize("size", [1, 3])
def test_int_partition_keys(size: int) -> None:
    src = program("sum", size, True)
    assert compare(src, rows("int", 300, key="int"), [50, 1, 77]) > 0


def test_sums_are_left_to_right() -> None:
    rnd = random.Random(11)
    values = [rnd.uniform(-1, 1) * 10 ** rnd.randint(-30, 30) for _ in range(5000)]
    values[0] = -0.0
    events = [Event("T", {"k": "p", "x": v}, i) for i, v in enumerate(values)]
    assert compare(program("sum", 100, False), events, [1000]) > 0
    assert compare(program("avg", 37, True), events, [999]) > 0
    big = [2**62 + rnd.randrange(2**20) for _ in range(300)] + [2**53 + 1] * 100
    events = [Event("T", {"k": "p", "x": v}, i) for i, v in enumerate(big)]
    assert compare(program("sum", 10, False), events, [400]) > 0


def test_item_arithmetic() -> None:
    src = (
        "stream S = T .partition_by(k) .window(5) .aggregate("
        "a: sum(x * y) / sum(y), b: count() / 2, c: -avg(x) + 1, d: max(x) / 0, e: 7,"
        " f: (min(y) - first(y)) * last(x), g: count(x) * 1.5, h: sum(x - y * 2), k: last(y))"
        " .where(b > 1 and e == 7) .select(k, a, b, c, d, e, f, g, h, n: b + 1)"
        " .emit(key: k, a: a, b: b, c: c, d: d, e: e, f: f, g: g, h: h, n: n, none: zz)"
    )
    rnd = random.Random(2)
    events = [Event("T", {"k": rnd.choice("ab"), "x": rnd.uniform(-9, 9), "y": rnd.randint(-3, 9)},
                    i) for i in range(600)]  # fmt: skip
    assert compare(src, events, [1, 64, 200]) > 0


@pytest.mark.parametrize(
    "item",
    ["first(null)", "count(null)", "sum(1)", 'first("a")', "last(true)", "count(1)", "min(-x)",
     "sum(K)", "avg(x / 2)", "sum(x / 2.0)", "max(x - y)", "count(zz)", "sum(1.5) * 2"],
)  # fmt: skip
def test_constant_and_expression_arguments(item: str) -> None:
    src = (
        "const K = 3\nstream S = T .partition_by(k) .window(3)"
        f" .aggregate(r: {item}, n: count()) .emit(p: _partition, r: r, n: n)"
    )
    rnd = random.Random(1)
    events = [Event("T", {"k": rnd.choice("ab"), "x": rnd.randint(-5, 5), "y": 1.5}, i)
              for i in range(200)]  # fmt: skip
    compare(src, events, [1, 50, 7])


def test_alias_replaces_partition_fields_in_place() -> None:
    src = (
        "stream S = T .partition_by(k) .window(3)"
        " .aggregate(n: count(), k: sum(x), _partition: last(x)) .emit(a: _partition, b: k)"
    )
    assert compare(src, rows("int", 100), [10, 33]) > 0
    src = "stream S = T .partition_by(k) .window(3) .aggregate(n: count())"  # no emit: no output
    assert compare(src, rows("int", 100), [10, 33]) > 0


def test_filters_before_the_window() -> None:
    src = (
        "stream S = T .where(x > 0.5) .partition_by(k) .having(y != 3) .window(4)"
        " .aggregate(s: sum(x), n: count()) .emit(k: _partition, s: s, n: n)"
    )
    rnd = random.Random(4)
    events = [Event("T", {"k": rnd.choice("abc"), "x": rnd.uniform(0, 1), "y": rnd.randint(0, 5)},
                    i) for i in range(900)]  # fmt: skip
    assert compare(src, events, [1, 40, 333, 7], per_event={3}) > 0
    events[500].fields["y"] = 3.5  # y mixes kinds in that block: per event
    assert compare(src, events, [1, 40, 333, 7]) > 0
    engine, kernel = kernel_of(src)
    none = [Event("T", {"k": "a", "x": 0.0, "y": 1}, i) for i in range(5)]
    assert kernel.run(Block.of_events(none)) == [] and kernel.carry is None
    assert engine.metrics()["streams"]["S"]["events_in"] == 5


# ------------------------------------------------------------------ declines


def declines(source: str, events: list[Event], state: list[Event] | None = None) -> None:
    """The kernel declines *events* (after running *state* as columns) changing nothing."""
    engine, kernel = kernel_of(source)
    if state:
        assert kernel.run(Block.of_events(state)) is not None
    before, carry, entry = engine.metrics(), kernel.carry, kernel.runner.entry
    codes = dict(kernel._codes)
    assert kernel.run(Block.of_events(events)) is None
    assert engine.metrics() == before
    assert kernel.carry is carry and kernel.runner.entry is entry
    assert kernel._codes == codes
    assert kernel.idle()


PRICED = "stream S = T .partition_by(k) .window(3) .aggregate(s: sum(x), f: first(y)) .emit(s: s)"


def ev(i: int, **fields: Any) -> Event:
    return Event("T", {"k": "a", "x": 1.5, "y": 1, **fields}, i)


@pytest.mark.parametrize(
    ("events", "why"),
    [
        ([ev(0), ev(1, x=2)], "int among floats"),
        ([ev(0), ev(1, x="2")], "a string to sum"),
        ([ev(0), ev(1, x=None)], "null to sum"),
        ([ev(0), ev(1, x=True)], "a bool to sum"),
        ([ev(0), ev(1, x=math.nan), ev(2), ev(3)], "NaN in a closed window"),
        ([ev(0), Event("T", {"k": "a", "y": 1}, 1)], "missing field"),
        ([ev(0), Event("T", {"x": 1.0, "y": 1}, 1)], "missing partition key"),
        ([ev(0, k="new"), ev(1, k=True)], "bool partition key"),
        ([ev(0, k=1.5), ev(1, k=1.5)], "float partition key"),
        ([ev(0, k="new"), ev(1, k=1)], "str and int partition keys"),
        ([ev(0, y=2**64)], "an int beyond int64"),
    ],
)
def test_declines_change_nothing(events: list[Event], why: str) -> None:
    declines(PRICED, events)
    declines(PRICED, events, state=[ev(-5), ev(-4, k="b")])
    compare(PRICED, [ev(-5), ev(-4, k="b")] + events * 3, [2, len(events)])


def test_declines_kind_change_against_carry() -> None:
    declines(PRICED, [ev(i, x=float(i)) for i in range(3)], state=[ev(-1, x=1)])
    declines(PRICED, [ev(0, y=2.5)], state=[ev(-1)])


def test_declines_inexact_expression() -> None:
    src = "stream S = T .window(2) .aggregate(s: sum(x * y), t: sum(y / x)) .emit(s: s, t: t)"
    declines(src, [ev(0, x=2**62, y=4), ev(1, x=1, y=1)])  # int64 overflow
    declines(src, [ev(0, x=0, y=4), ev(1, x=1, y=1)])  # int division
    events = [ev(i, x=[2**62, 0, 3][i % 3], y=[4, 1, 2][i % 3]) for i in range(30)]
    compare(src, events, [2, 5])


def test_declines_inexact_filter() -> None:
    src = "stream S = T .where(x * 2 > 1) .window(2) .aggregate(n: count()) .emit(n: n)"
    declines(src, [ev(0, x=2**62), ev(1, x=1)])
    compare(src, [ev(i, x=[2**62, 1, -3][i % 3]) for i in range(30)], [3, 7])


def test_declines_when_the_chain_declines() -> None:
    src = "stream S = T .window(2) .aggregate(d: sum(x) / 0) .where(d > 1) .emit(d: d)"
    declines(src, [ev(0), ev(1)])
    compare(src, [ev(i) for i in range(10)], [2, 4])


@pytest.mark.parametrize(
    "source",
    [
        "stream S = T .window(5s) .aggregate(n: count()) .emit(n: n)",
        "stream S = T .window(10, sliding: 2) .aggregate(n: count()) .emit(n: n)",
        "stream S = T .window(session: 5s) .aggregate(n: count()) .emit(n: n)",
        "stream S = T .partition_by(k) .window(5m) .aggregate(n: count()) .emit(n: n)",
        "stream S = T .window(5) .emit(x: x)",
        "stream S = T .aggregate(n: count()) .emit(n: n)",
        "stream S = T .where(abs(x) > 1) .window(5) .aggregate(n: count()) .emit(n: n)",
        "stream S = T .where(x > 1) .where(x > 2) .tap(x) .window(5) .aggregate(n: count())",
        "stream S = T .window(5) .aggregate(n: stddev(x)) .emit(n: n)",
        "stream S = T .window(5) .aggregate(n: ema(x, 3)) .emit(n: n)",
        "stream S = T .window(5) .aggregate(n: count_distinct(x)) .emit(n: n)",
        "stream S = T .window(5) .aggregate(n: count(distinct(x))) .emit(n: n)",
        "stream S = T .window(5) .aggregate(n: sum(abs(x))) .emit(n: n)",
        "stream S = T .window(5) .aggregate(n: sum(x % 2)) .emit(n: n)",
        "stream S = T .window(5) .aggregate(n: count()) .emit(n: n) .print()",
        "stream S = T .window(5) .aggregate(n: count()) .emit(n: n) .log()",
        "stream S = T .window(5) .aggregate(n: count()) .tap(n) .emit(n: n)",
        "stream S = T .window(5) .aggregate(n: count()) .emit(n: n, m: abs(n))",
        "stream S = T .window(5) .aggregate(n: count()) .distinct(n) .emit(n: n)",
        "stream S = T .window(5) .aggregate(n: count()) .window(2) .emit(n: n)",
        "connector Out = console()\nstream S = T .window(5) .aggregate(n: count()) .to(Out)",
        "stream S = T .window(5) .aggregate(n: count()) .emit(n: n)\nstream U = S .emit(n: n)",
        "stream S = T .window(5) .aggregate(n: count())\nstream U = T .emit(x: x)",
        "stream S = A as a -> B as b .window(5) .aggregate(n: count()) .emit(n: n)",
        "stream S = merge(A, B) .window(5) .aggregate(n: count()) .emit(n: n)",
    ],
)
def test_build_declines_ineligible_streams(source: str) -> None:
    engine = Engine(source)
    runner = next(r for r in engine.runners if r.name == "S")
    assert build(engine, runner) is None


# ------------------------------------------------------------------ property

_ITEMS = [
    "sum(x)", "sum(y)", "avg(x)", "min(x)", "max(y)", "first(k)", "last(y)", "count()",
    "count(x)", "sum(x * y)", "sum(y - 2)", "first(x) / last(y)", "sum(x) - count() * 2",
    "-max(x)", "avg(y) / 3", "count(null)", "sum(2)",
]  # fmt: skip
_KEYS = {"str": ["a", "b", "c", "d"], "int": [0, 1, -7, 10**9]}
_X = st.one_of(
    st.floats(allow_nan=False, width=64),
    st.sampled_from([0.0, -0.0, 1.5, 1e308, -1e308, 5e-324]),
)


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[str, list[Event], list[int], set[int]]:
    size = draw(st.sampled_from([1, 2, 3, 5, 8]))
    partitioned = draw(st.booleans())
    items = draw(st.lists(st.sampled_from(_ITEMS), min_size=1, max_size=4, unique=True))
    aliases = [f"a{i}" for i in range(len(items))]
    aggregate = ", ".join(f"{a}: {it}" for a, it in zip(aliases, items, strict=True))
    tail = draw(st.sampled_from(["", " .where(n >= 1)", " .where(a0 != 0)"]))
    head = draw(st.sampled_from(["", ".where(y > -3) ", ".where(x != 0) "]))
    emitted = ", ".join(f"{a}: {a}" for a in aliases)
    part = ".partition_by(k) " if partitioned else ""
    source = (f"stream S = T {head}{part}.window({size}) .aggregate(n: count(), {aggregate}){tail}"
              f" .emit({'p: _partition, ' if partitioned else ''}{emitted})")  # fmt: skip
    n = draw(st.integers(0, 60))
    keys = _KEYS[draw(st.sampled_from(["str", "int"]))]
    x_int = draw(st.booleans())
    events = []
    for i in range(n):
        x = draw(st.integers(-(2**40), 2**40)) if x_int else draw(_X)
        if draw(st.integers(0, 30)) == 0:
            x = draw(st.sampled_from([math.nan, "s", None, 3]))  # declined blocks
        events.append(Event("T", {"k": draw(st.sampled_from(keys)), "x": x,
                                  "y": draw(st.integers(-5, 5))}, i))  # fmt: skip
    sizes = draw(st.lists(st.integers(1, 25), min_size=1, max_size=6))
    per_event = set(draw(st.lists(st.integers(0, 10), max_size=3)))
    return source, events, sizes, per_event


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_property_equals_per_event(scenario: tuple[str, list[Event], list[int], set[int]]) -> None:
    source, events, sizes, per_event = scenario
    compare(source, events, sizes, per_event=per_event)
