"""Windows (vpl-spec §2.3, DESIGN §4.1.10): compile-time checks, exact batch
boundaries of every kind, partitions, flush, and property tests against
reference implementations that recompute the batches from the whole stream."""

from __future__ import annotations

import math
import pickle
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from varpulis.compiler.scope import Scope
from varpulis.compiler.values import MISSING
from varpulis.errors import VPLSemanticError
from varpulis.events import Event
from varpulis.lang import ast, parse
from varpulis.runtime.aggregates import compile_aggregate
from varpulis.runtime.windows import (
    CountWindow,
    PartitionedWindow,
    SessionWindow,
    SlidingCountWindow,
    SlidingTimeWindow,
    TimeWindow,
    WindowSpec,
    compile_window,
)

S = 10**9  # one second in ns


def ops_of(text: str) -> tuple[Scope, list[ast.Op]]:
    """Parse ``stream S = E`` followed by the operations *text*; return scope and ops."""
    source = f"stream S = E\n    {text}\n"
    return Scope(source=source), list(parse(source).decls[0].ops)


def spec(text: str) -> WindowSpec:
    """Compile the window in *text* (e.g. ``".window(3)"``)."""
    scope, ops = ops_of(text)
    return compile_window(ops[0], scope)


def ev(ts: int, v: Any = None, **fields: Any) -> Event:
    return Event("E", {"v": v, **fields}, ts)


def vs(batches: list[list[Event]]) -> list[list[Any]]:
    return [[e.fields["v"] for e in batch] for batch in batches]


def feed(window: Any, events: list[Event]) -> list[list[Any]]:
    """Add *events* one by one; the values of every released batch, in order."""
    out: list[list[Event]] = []
    for e in events:
        out.extend(window.add(e))
    return vs(out)


# ----------------------------------------------------------- compile


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (".window(3)", WindowSpec("count", 3)),
        (".window(3, sliding: 1)", WindowSpec("sliding_count", 3, 1)),
        (".window(2, sliding: 5)", WindowSpec("sliding_count", 2, 5)),
        (".window(5m)", WindowSpec("time", 300 * S)),
        (".window(1m, sliding: 30s)", WindowSpec("sliding_time", 60 * S, 30 * S)),
        (".window(session: 30s)", WindowSpec("session", 30 * S)),
        ('.window(100ms, policy: "drop")', WindowSpec("time", S // 10)),
    ],
)
def test_window_forms_compile(text: str, expected: WindowSpec) -> None:
    assert spec(text) == expected


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        (".window(x)", "got 'x'"),
        (".window(1.5)", "got '1.5'"),
        ('.window("big")', "got '\"big\"'"),
        (".window(true)", "got 'true'"),
        (".window(2 * 3)", "got 'a binary expression'"),
        (".window(0)", "window size must be a positive integer, got '0'"),
        (".window(-3)", "got '-3'"),
        (".window(0s)", "window size must be a positive duration"),
        (".window()", "takes one size, got 0"),
        (".window(3, sliding: 0)", "slide must be a positive integer, got '0'"),
        (".window(3, sliding: 1m)", "slides by a count, not '1m'"),
        (".window(5m, sliding: 3)", "slide must be a positive duration such as 30s or 5m, got '3'"),
        (".window(5m, sliding: x)", "got 'x'"),
        (".window(session: 5)", "session gap must be a positive duration"),
        (
            ".window(session: 0s)",
            "session gap must be a positive duration such as 30s or 5m, got '0s'",
        ),
        (".window(5m, session: 1m)", "takes no size and no sliding"),
        (".window(session: 1m, sliding: 1m)", "takes no size and no sliding"),
        (".window(3, bogus: 1)", "no parameter 'bogus' (valid: sliding, session, policy)"),
        (".window(3, sliding: 1, sliding: 2)", "got sliding: twice"),
    ],
)
def test_bad_windows_are_semantic_errors(text: str, fragment: str) -> None:
    with pytest.raises(VPLSemanticError) as info:
        spec(text)
    assert fragment in str(info.value)


def test_window_errors_point_at_the_argument_and_list_the_valid_forms() -> None:
    with pytest.raises(VPLSemanticError) as info:
        spec(".window(size)")
    err = info.value
    assert (err.line, err.column) == (2, 13)  # the 's' of size, not the stream
    assert err.hint is not None and ".window(session: 30s)" in err.hint
    assert ".window(5m, sliding: 1m)" in err.hint
    assert "^" in err.snippet


def test_spec_is_a_picklable_factory_of_independent_windows() -> None:
    factory = spec(".window(2)")
    assert pickle.loads(pickle.dumps(factory)) == factory
    a, b = factory(), factory()
    assert isinstance(a, CountWindow) and a is not b
    a.add(ev(0, 1))
    assert b.flush() == [] and vs(a.flush()) == [[1]]
    kinds = [spec(t)() for t in (".window(2, sliding: 1)", ".window(1s)",
                                 ".window(1s, sliding: 1s)", ".window(session: 1s)")]  # fmt: skip
    assert [type(w) for w in kinds] == [SlidingCountWindow, TimeWindow, SlidingTimeWindow,
                                        SessionWindow]  # fmt: skip


# ----------------------------------------------------------- spec §2.3 examples


def run_with_aggregate(window_text: str, events: list[Event]) -> list[dict]:
    """The §2.3 examples: the window followed by ``.aggregate(n: count(), total: sum(v))``."""
    scope, ops = ops_of(f"{window_text}\n    .aggregate(n: count(), total: sum(v))")
    window, aggregate = compile_window(ops[0], scope)(), compile_aggregate(ops[1], scope)
    return [aggregate(batch, None) for e in events for batch in window.add(e)]


def test_spec_count_window() -> None:
    got = run_with_aggregate(".window(3)", [ev(0, v) for v in range(1, 8)])
    assert got == [{"n": 3, "total": 6.0}, {"n": 3, "total": 15.0}]  # the 7th stays


def test_spec_sliding_count_windows() -> None:
    got = run_with_aggregate(".window(3, sliding: 1)", [ev(0, v) for v in range(1, 6)])
    assert got == [{"n": 3, "total": 6.0}, {"n": 3, "total": 9.0}, {"n": 3, "total": 12.0}]
    got = run_with_aggregate(".window(4, sliding: 2)", [ev(0, v) for v in range(1, 9)])
    assert got == [{"n": 4, "total": 10.0}, {"n": 4, "total": 18.0}, {"n": 4, "total": 26.0}]


def test_spec_tumbling_time_window() -> None:
    events = [ev(t * S, v) for t, v in [(0, 1), (30, 2), (59, 3), (60, 4), (70, 5), (150, 6)]]
    got = run_with_aggregate(".window(1m)", events)
    assert got == [{"n": 3, "total": 6.0}, {"n": 2, "total": 9.0}]


def test_spec_sliding_time_window() -> None:
    events = [ev(t * S, v) for t, v in [(0, 1), (10, 2), (35, 3), (70, 4), (100, 5)]]
    got = run_with_aggregate(".window(1m, sliding: 30s)", events)
    assert got == [{"n": 1, "total": 1.0}, {"n": 3, "total": 6.0}, {"n": 3, "total": 9.0},
                   {"n": 2, "total": 9.0}]  # fmt: skip


def test_spec_session_window() -> None:
    events = [ev(t * S, v) for t, v in [(0, 1), (5, 2), (20, 3), (22, 4), (40, 5)]]
    got = run_with_aggregate(".window(session: 10s)", events)
    assert got == [{"n": 2, "total": 3.0}, {"n": 2, "total": 7.0}]


# ----------------------------------------------------------- exact boundaries


def test_count_window_batches_and_flush() -> None:
    w = CountWindow(3)
    assert [w.add(ev(0, v)) for v in (1, 2)] == [[], []]
    (batch,) = w.add(ev(0, 3))
    assert vs([batch]) == [[1, 2, 3]]
    assert feed(w, [ev(0, v) for v in (4, 5, 6, 7)]) == [[4, 5, 6]]
    assert vs(w.flush()) == [[7]]
    assert w.flush() == []
    assert feed(w, [ev(0, v) for v in (8, 9, 10)]) == [[8, 9, 10]]  # starts over after flush


def test_count_window_of_one_releases_every_event() -> None:
    assert feed(CountWindow(1), [ev(0, v) for v in (1, 2, 3)]) == [[1], [2], [3]]


def test_sliding_count_window_with_slide_longer_than_size() -> None:
    # Emit when >= 2 are buffered and >= 5 arrived since the last batch.
    got = feed(SlidingCountWindow(2, 5), [ev(0, v) for v in range(1, 13)])
    assert got == [[4, 5], [9, 10]]


def test_sliding_count_window_flush_releases_only_unreleased_events() -> None:
    w = SlidingCountWindow(3, 2)
    assert feed(w, [ev(0, v) for v in (1, 2)]) == []
    assert vs(w.flush()) == [[1, 2]]  # open but not yet full
    assert w.flush() == []
    assert feed(w, [ev(0, v) for v in (3, 4, 5)]) == [[3, 4, 5]]
    assert w.flush() == []  # nothing arrived since that batch; the window starts over
    assert feed(w, [ev(0, 6)]) == []
    assert vs(w.flush()) == [[6]]


def test_sliding_count_batches_are_copies_the_caller_owns() -> None:
    w = SlidingCountWindow(2, 1)
    feed(w, [ev(0, 1)])
    (first,) = w.add(ev(0, 2))
    first.clear()
    assert feed(w, [ev(0, 3)]) == [[2, 3]]


def test_tumbling_time_window_boundary_is_inclusive_and_restarts_at_the_event() -> None:
    w = TimeWindow(10)
    assert feed(w, [ev(5, "a"), ev(14, "b")]) == []
    assert feed(w, [ev(15, "c")]) == [["a", "b"]]  # 15 >= 5 + 10: c opens [15, 25)
    assert feed(w, [ev(24, "d"), ev(25, "e")]) == [["c", "d"]]
    assert feed(w, [ev(100, "f")]) == [["e"]]  # a long gap: one batch, no empty ones
    assert vs(w.flush()) == [["f"]]
    assert w.flush() == []
    assert feed(w, [ev(0, "g"), ev(9, "h"), ev(10, "i")]) == [["g", "h"]]  # a fresh start


def test_tumbling_time_window_late_event_joins_the_open_window() -> None:
    assert feed(TimeWindow(10), [ev(50, 1), ev(3, 2), ev(59, 3), ev(60, 4)]) == [[1, 2, 3]]


def test_sliding_time_window_evicts_strictly_older_than_size() -> None:
    w = SlidingTimeWindow(10, 5)
    assert feed(w, [ev(0, 1)]) == [[1]]  # the first event emits a batch of one
    assert feed(w, [ev(4, 2)]) == []  # 4 < 0 + 5
    assert feed(w, [ev(5, 3)]) == [[1, 2, 3]]  # 5 >= 0 + 5
    assert feed(w, [ev(10, 4)]) == [[1, 2, 3, 4]]  # ts 0 == 10 - 10 stays
    assert feed(w, [ev(11, 5)]) == []
    assert vs(w.flush()) == [[2, 3, 4, 5]]  # ts 0 < 11 - 10 was evicted
    assert w.flush() == []
    assert feed(w, [ev(1000, 6)]) == [[6]]  # after flush the next event is a first one


def test_sliding_time_window_flush_after_a_batch_is_empty() -> None:
    w = SlidingTimeWindow(10, 1)
    assert feed(w, [ev(0, 1), ev(1, 2)]) == [[1], [1, 2]]
    assert w.flush() == []


def test_sliding_time_window_with_a_late_event_evicts_by_time_not_position() -> None:
    w = SlidingTimeWindow(50, 1)
    feed(w, [ev(100, "a"), ev(10, "late")])
    assert feed(w, [ev(120, "b")]) == [["a", "b"]]  # 10 < 70 although it is not in front
    assert feed(w, [ev(200, "c")]) == [["c"]]


def test_session_window_gap_is_strict() -> None:
    w = SessionWindow(10)
    assert feed(w, [ev(0, 1), ev(10, 2), ev(20, 3)]) == []  # gaps of exactly 10
    assert feed(w, [ev(31, 4)]) == [[1, 2, 3]]
    assert vs(w.flush()) == [[4]]
    assert w.flush() == []
    assert feed(w, [ev(1000, 5), ev(1011, 6)]) == [[5]]


def test_session_window_late_event_does_not_move_the_session_end_back() -> None:
    assert feed(SessionWindow(10), [ev(100, 1), ev(50, 2), ev(108, 3)]) == []
    assert feed(SessionWindow(10), [ev(100, 1), ev(50, 2), ev(111, 3)]) == [[1, 2]]


# ----------------------------------------------------------- partitions


def by_k(event: Event) -> Any:
    return event.fields.get("k", MISSING)


def kev(k: Any, v: Any, ts: int = 0) -> Event:
    fields = {"v": v} if k is MISSING else {"k": k, "v": v}
    return Event("E", fields, ts)


def test_partitioned_window_keeps_one_window_per_key() -> None:
    w = PartitionedWindow(by_k, spec(".window(2)"))
    events = [kev("a", 1), kev("b", 10), kev("a", 2), kev("b", 20), kev("a", 3)]
    assert [vs(w.add(e)) for e in events] == [[], [], [[1, 2]], [[10, 20]], []]
    assert len(w) == 2


def test_partition_keys_compare_as_vpl_values() -> None:
    w = PartitionedWindow(by_k, spec(".window(2)"))
    # 1 and 1.0 are one partition; true, "1", null and a missing field are others.
    events = [kev(1, "i"), kev(True, "t"), kev("1", "s"), kev(None, "n"), kev(MISSING, "m"),
              kev(1.0, "f"), kev(MISSING, "m2"), kev(None, "n2"), kev(True, "t2")]  # fmt: skip
    assert feed(w, events) == [["i", "f"], ["m", "m2"], ["n", "n2"], ["t", "t2"]]
    assert len(w) == 5


def test_partition_keys_may_be_nan_or_structured() -> None:
    w = PartitionedWindow(by_k, spec(".window(2)"))
    events = [kev(math.nan, 1), kev([1, "a"], 2), kev({"x": 1, "y": 2}, 3),
              kev(math.nan, 4), kev([1.0, "a"], 5), kev({"y": 2, "x": 1.0}, 6)]  # fmt: skip
    assert feed(w, events) == [[1, 4], [2, 5], [3, 6]]


def test_partitioned_flush_is_in_first_seen_key_order() -> None:
    w = PartitionedWindow(by_k, spec(".window(3)"))
    feed(w, [kev("b", 1), kev(MISSING, 2), kev("a", 3), kev("b", 4), kev("c", 5)])
    assert vs(w.flush()) == [[1, 4], [2], [3], [5]]
    assert w.flush() == []


def test_partitioned_time_windows_use_each_partitions_own_clock() -> None:
    w = PartitionedWindow(by_k, spec(".window(10s)"))
    events = [kev("a", 1, 0), kev("b", 2, 5 * S), kev("a", 3, 10 * S), kev("b", 4, 14 * S),
              kev("b", 5, 15 * S)]  # fmt: skip
    assert feed(w, events) == [[1], [2, 4]]


# ----------------------------------------------------------- properties

# Small integer times (the unit does not matter) make exact boundaries frequent.
steps = st.lists(st.integers(0, 6), max_size=60)
sizes = st.integers(1, 12)


def timed(deltas: list[int]) -> list[Event]:
    """Events at the running sums of *deltas* (non-decreasing), values 0, 1, 2, ..."""
    out, ts = [], 0
    for i, d in enumerate(deltas):
        ts += d
        out.append(ev(ts, i))
    return out


def run_all(window: Any, events: list[Event]) -> tuple[list[list[Any]], list[list[Any]]]:
    return feed(window, events), vs(window.flush())


def ref_count(values: list[int], n: int) -> tuple[list[list[int]], list[list[int]]]:
    full = len(values) - len(values) % n
    rest = [values[full:]] if values[full:] else []
    return [values[i : i + n] for i in range(0, full, n)], rest


def ref_sliding_count(values: list[int], n: int, m: int) -> tuple[list, list]:
    # Batches close after the c-th event for c = max(n, m), then every m events.
    first = max(n, m)
    ends = [c for c in range(1, len(values) + 1) if c >= first and (c - first) % m == 0]
    last = ends[-1] if ends else 0
    rest = [values[max(0, len(values) - n) :]] if len(values) > last else []
    return [values[c - n : c] for c in ends], rest


def ref_time(events: list[Event], d: int) -> tuple[list, list]:
    groups: list[list[Event]] = []
    start = None
    for e in events:
        if start is None or e.timestamp >= start + d:
            groups.append([])
            start = e.timestamp
        groups[-1].append(e)
    return vs(groups[:-1]), vs(groups[-1:])


def ref_sliding_time(events: list[Event], size: int, slide: int) -> tuple[list, list]:
    # An event is in the batch at arrival i unless some arrival k in its lifetime
    # (from its own up to i) was more than *size* after it.
    out, last, pending = [], None, False
    for i, e in enumerate(events):
        batch = [
            x for j, x in enumerate(events[: i + 1])
            if all(x.timestamp >= y.timestamp - size for y in events[j : i + 1])
        ]  # fmt: skip
        if last is None or e.timestamp >= last + slide:
            out.append(batch)
            last, pending = e.timestamp, False
        else:
            pending = True
    return vs(out), vs([batch]) if pending else []


def ref_session(events: list[Event], gap: int) -> tuple[list, list]:
    groups: list[list[Event]] = []
    for e in events:
        if groups and e.timestamp - max(x.timestamp for x in groups[-1]) > gap:
            groups.append([e])
        elif groups:
            groups[-1].append(e)
        else:
            groups.append([e])
    return vs(groups[:-1]), vs(groups[-1:])


@given(count=st.integers(0, 60), n=sizes)
def test_count_window_matches_reference(count: int, n: int) -> None:
    values = list(range(count))
    assert run_all(CountWindow(n), [ev(0, v) for v in values]) == ref_count(values, n)


@given(count=st.integers(0, 60), n=sizes, m=sizes)
def test_sliding_count_window_matches_reference(count: int, n: int, m: int) -> None:
    values = list(range(count))
    got = run_all(SlidingCountWindow(n, m), [ev(0, v) for v in values])
    assert got == ref_sliding_count(values, n, m)


@given(deltas=steps, d=sizes)
def test_tumbling_time_window_matches_reference(deltas: list[int], d: int) -> None:
    events = timed(deltas)
    assert run_all(TimeWindow(d), events) == ref_time(events, d)


@given(deltas=steps, size=sizes, slide=sizes)
def test_sliding_time_window_matches_reference(deltas: list[int], size: int, slide: int) -> None:
    events = timed(deltas)
    assert run_all(SlidingTimeWindow(size, slide), events) == ref_sliding_time(events, size, slide)


@given(deltas=steps, gap=st.integers(0, 8))
def test_session_window_matches_reference(deltas: list[int], gap: int) -> None:
    events = timed(deltas)
    assert run_all(SessionWindow(gap), events) == ref_session(events, gap)


unordered = st.lists(st.integers(0, 40), max_size=40)


@given(stamps=unordered, size=sizes, slide=sizes)
def test_sliding_time_window_matches_reference_out_of_order(
    stamps: list[int], size: int, slide: int
) -> None:
    events = [ev(t, i) for i, t in enumerate(stamps)]
    assert run_all(SlidingTimeWindow(size, slide), events) == ref_sliding_time(events, size, slide)


@given(stamps=unordered, gap=st.integers(0, 8), d=sizes)
def test_time_and_session_windows_match_reference_out_of_order(
    stamps: list[int], gap: int, d: int
) -> None:
    events = [ev(t, i) for i, t in enumerate(stamps)]
    assert run_all(SessionWindow(gap), events) == ref_session(events, gap)
    assert run_all(TimeWindow(d), events) == ref_time(events, d)


KEYS = ["a", "b", 1, 1.0, True, None, MISSING]
KINDS = [
    ".window(3)", ".window(2, sliding: 1)", ".window(5ns)", ".window(6ns, sliding: 2ns)",
    ".window(session: 3ns)",
]  # fmt: skip


def ref_key(value: Any) -> tuple:
    if value is MISSING:
        return ("missing",)
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, (int, float)):
        return ("number", float(value))
    return ("str", value) if isinstance(value, str) else ("null",)


@settings(max_examples=60)
@given(
    kind=st.sampled_from(KINDS),
    stream=st.lists(st.tuples(st.sampled_from(KEYS), st.integers(0, 3)), max_size=50),
)
def test_partitioned_window_matches_one_window_per_reference_key(
    kind: str, stream: list[tuple[Any, int]]
) -> None:
    factory = spec(kind)
    events, ts = [], 0
    for i, (key, delta) in enumerate(stream):
        ts += delta
        events.append(kev(key, i, ts))
    windows: dict[tuple, Any] = {}
    expected = []
    for e in events:
        window = windows.setdefault(ref_key(by_k(e)), factory())
        expected.append(vs(window.add(e)))
    expected_flush = [b for w in windows.values() for b in vs(w.flush())]
    w = PartitionedWindow(by_k, factory)
    assert [vs(w.add(e)) for e in events] == expected
    assert vs(w.flush()) == expected_flush
    assert len(w) == len(windows)
