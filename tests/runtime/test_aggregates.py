"""Aggregates (vpl-spec §2.4-2.6 under DESIGN §4.1.11): every function on empty,
missing, null and mixed inputs, arithmetic between aggregates, partition fields,
compile-time errors, the one-pass evaluation, and property tests against a
direct Python reference."""

from __future__ import annotations

import math
import statistics
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from varpulis.compiler.evalctx import EvalContext
from varpulis.compiler.exprs import compile_predicate
from varpulis.compiler.functions import compile_toplevel
from varpulis.compiler.scope import Scope
from varpulis.compiler.values import MISSING
from varpulis.errors import VPLRuntimeError, VPLSemanticError
from varpulis.events import Event
from varpulis.lang import parse
from varpulis.lang.signatures import AGGREGATES
from varpulis.runtime.aggregates import (
    AGGREGATE_FUNCTIONS,
    DEFAULT_EMA_PERIOD,
    compile_aggregate,
    distinct_key,
    partition_name,
)


def agg(items: str, partition: str | None = None, prelude: str = "") -> Any:
    """Compile ``.aggregate(items)`` of a stream after the declarations in *prelude*."""
    source = f"{prelude}stream S = M\n    .aggregate({items})\n"
    program = parse(source)
    scope = Scope(source=source)
    compile_toplevel([d for d in program.decls if d is not program.decls[-1]], scope)
    return compile_aggregate(program.decls[-1].ops[0], scope, partition)


def batch(*rows: dict[str, Any], kind: str = "M") -> list[Event]:
    return [Event(kind, dict(row), i) for i, row in enumerate(rows)]


def values(name: str, *vals: Any) -> list[Event]:
    """Events with field *name* = each of *vals* (MISSING: the field is absent)."""
    return batch(*({} if v is MISSING else {name: v} for v in vals))


def one(items: str, events: list[Event], **kw: Any) -> Any:
    """The single alias ``r`` of ``.aggregate(r: items)`` over *events*."""
    return agg(f"r: {items}", **kw)(events, None)["r"]


# ----------------------------------------------------------- spec examples


def test_spec_stats_example() -> None:
    fn = agg(
        "n: count(), total: sum(v), mean: avg(v), lo: min(v), hi: max(v), sd: stddev(v), "
        "f: first(v), l: last(v), d: count(distinct(k)), spread: max(v) - min(v)"
    )
    got = fn(batch({"v": 2, "k": "a"}, {"v": 4, "k": "b"}, {"v": 9, "k": "a"}), None)
    assert got == {"n": 3, "total": 15.0, "mean": 5.0, "lo": 2.0, "hi": 9.0,
                   "sd": 3.605551275463989, "f": 2, "l": 9, "d": 2, "spread": 7.0}  # fmt: skip
    assert list(got) == ["n", "total", "mean", "lo", "hi", "sd", "f", "l", "d", "spread"]
    assert [type(got[k]) for k in ("total", "lo", "hi", "f")] == [float, float, float, int]


def test_spec_partition_example_carries_partition_and_field() -> None:
    fn = agg("n: count(), total: sum(v), key: last(k)", partition="k")
    got = fn(batch({"k": "a", "v": 1}, {"k": "a", "v": 2}), "a")
    assert got == {"_partition": "a", "k": "a", "n": 2, "total": 3.0, "key": "a"}
    assert list(got) == ["_partition", "k", "n", "total", "key"]


def test_spec_having_example_with_an_int_literal() -> None:
    fn = agg("total: sum(amount), n: count()")
    results = [fn(values("amount", 60, 50), None), fn(values("amount", 30, 20), None)]
    assert results == [{"total": 110.0, "n": 2}, {"total": 50.0, "n": 2}]
    source = "let probe = total > 100\n"
    having = compile_predicate(parse(source).decls[0].value, Scope(source=source))
    assert [having(r, EvalContext(None)) for r in results] == [True, False]
    source = "let probe = total >= 110\n"  # our comparisons promote: float >= int works
    having = compile_predicate(parse(source).decls[0].value, Scope(source=source))
    assert having(results[0], EvalContext(None)) is True


# ----------------------------------------------------------- each function

EMPTY: dict[str, Any] = {
    "count()": 0, "count(v)": 0, "sum(v)": 0.0, "avg(v)": None, "min(v)": None,
    "max(v)": None, "stddev(v)": None, "first(v)": None, "last(v)": None,
    "count_distinct(v)": 0, "count(distinct(v))": 0, "ema(v)": None, "ema(v, 3)": None,
}  # fmt: skip


@pytest.mark.parametrize(("item", "expected"), EMPTY.items())
def test_empty_batch(item: str, expected: Any) -> None:
    got = one(item, [])
    assert got == expected and type(got) is type(expected)


@pytest.mark.parametrize(("item", "expected"), EMPTY.items())
def test_batch_without_any_usable_value(item: str, expected: Any) -> None:
    # Missing fields everywhere: like an empty batch, except count() counts events.
    events = values("v", MISSING, MISSING)
    want = 2 if item == "count()" else expected
    got = one(item, events)
    assert got == want and type(got) is type(want)


def test_numeric_aggregates_skip_missing_null_bools_strings_and_nan() -> None:
    events = values("v", 1, MISSING, None, True, "7", math.nan, [3], 2.5, 4)
    assert one("sum(v)", events) == 7.5
    assert one("avg(v)", events) == 2.5
    assert one("min(v)", events) == 1.0 and one("max(v)", events) == 4.0
    assert one("stddev(v)", events) == pytest.approx(statistics.stdev([1, 2.5, 4]))
    assert one("count(v)", events) == 7  # present and not null: True, "7", NaN, [3] count


def test_sum_min_max_are_floats_even_for_ints() -> None:
    events = values("v", 3, -1, 10)
    got = agg("s: sum(v), lo: min(v), hi: max(v), a: avg(v)")(events, None)
    assert got == {"s": 12.0, "lo": -1.0, "hi": 10.0, "a": 4.0}
    assert all(type(v) is float for v in got.values())


def test_sum_is_plain_left_to_right_float_addition() -> None:
    vals = [0.1, 0.2, 0.3, 1e16, 1.0, -1e16, 0.7]
    expected = 0.0
    for x in vals:
        expected += x
    assert one("sum(v)", values("v", *vals)) == expected


def test_sum_of_an_expression_sums_it_per_event() -> None:
    events = batch({"price": 2.5, "qty": 4}, {"price": 10, "qty": 3}, {"price": 1})
    assert one("sum(price * qty)", events) == 40.0  # the qty-less event gives missing
    fn = agg("vwap: sum(price * qty) / sum(qty), n: count(qty)")
    assert fn(events, None) == {"vwap": 40.0 / 7, "n": 2}


def test_infinities_are_values() -> None:
    events = values("v", 1, math.inf, -math.inf)
    assert one("min(v)", events) == -math.inf and one("max(v)", events) == math.inf
    assert math.isnan(one("sum(v)", events))
    assert one("max(v)", values("v", math.inf)) == math.inf


def test_stddev_is_the_sample_deviation() -> None:
    assert one("stddev(v)", values("v", 5)) is None
    assert one("stddev(v)", values("v", 1, 3)) == pytest.approx(math.sqrt(2))
    assert one("stddev(v)", values("v", 4, 4, 4)) == 0.0


def test_count_counts_events_and_count_x_counts_present_non_null_values() -> None:
    events = values("v", 1, None, MISSING, "x", 0, False)
    assert one("count()", events) == 6
    assert one("count(v)", events) == 4


def test_first_and_last_are_raw_values_where_present_and_null_is_present() -> None:
    assert one("first(v)", values("v", MISSING, "a", 2)) == "a"
    assert one("last(v)", values("v", "a", 2, MISSING)) == 2
    assert one("last(v)", values("v", 5, None)) is None  # null is a present value
    assert one("first(v)", values("v", [1, 2], 3)) == [1, 2]
    got = one("last(v)", values("v", 1, 2.0))
    assert got == 2.0 and type(got) is float


def test_count_distinct_compares_vpl_values() -> None:
    events = values("v", 1, 1.0, True, "1", None, None, MISSING, [1, "a"], [1.0, "a"],
                    {"x": 1}, {"x": 1.0}, math.nan, math.nan, False, 0)  # fmt: skip
    # 1 = 1.0; true; "1"; null; [1, "a"]; {"x": 1}; NaN; false; 0
    assert one("count_distinct(v)", events) == 9
    assert one("count(distinct(v))", events) == 9


def test_ema_is_seeded_with_the_first_value() -> None:
    assert one("ema(v, 3)", values("v", MISSING, 10, "x", 20, 30)) == 22.5
    k = 2 / (DEFAULT_EMA_PERIOD + 1)
    expected = 10.0
    for x in (20, 30):
        expected = k * x + (1 - k) * expected
    assert one("ema(v)", values("v", 10, 20, 30)) == pytest.approx(expected)
    assert one("ema(v, 1)", values("v", 10, 20, 30)) == 30.0
    assert one("ema(v, 0.5)", values("v", 3, 6)) == pytest.approx(7.0)
    assert type(one("ema(v, 3)", values("v", 4))) is float


def test_two_emas_of_one_field_keep_separate_state() -> None:
    got = agg("a: ema(v, 1), b: ema(v, 3), c: ema(v, 3)")(values("v", 10, 20, 30), None)
    assert got == {"a": 30.0, "b": 22.5, "c": 22.5}


# ----------------------------------------------------------- arithmetic


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        ("max(v) - min(v)", 7.0),
        ("avg(v) * 2", 10.0),
        ("2 * avg(v) + 1", 11.0),
        ("count() / 2", 1),  # int / int truncates
        ("count() * 1.5", 4.5),
        ("count() - count(v)", 0),
        ("sum(v) / count()", 5.0),
        ("count() / 0", None),
        ("sum(v) / 0", None),
        ("-min(v)", -2.0),
        ("(max(v) + min(v)) / 2", 5.5),
        ("7", 7),
        ("first(s) + 1", None),  # a string is not a number here
        ("stddev(w) * 2", None),  # None operands give None
        ("min(w) - max(v)", None),
    ],
)
def test_arithmetic_between_aggregates(item: str, expected: Any) -> None:
    events = batch({"v": 2, "s": "a"}, {"v": 4}, {"v": 9})
    got = one(item, events)
    assert got == expected and type(got) is type(expected)


# ----------------------------------------------------------- partitions


@pytest.mark.parametrize(
    ("key", "name"),
    [("a", "a"), (42, "42"), (-7, "-7"), (True, "true"), (False, "false"), (2.5, "2.5"),
     (2.0, "2.0"), (None, "null"), ([1, "a"], '[1, "a"]'), (MISSING, "default")],
)  # fmt: skip
def test_partition_names(key: Any, name: str) -> None:
    assert partition_name(key) == name


def test_partitioned_result_with_a_missing_key_has_no_field() -> None:
    fn = agg("n: count()", partition="k")
    assert fn(batch({}, {}), MISSING) == {"_partition": "default", "n": 2}
    assert fn(batch({"k": None}), None) == {"_partition": "null", "k": None, "n": 1}
    assert fn(batch({"k": 3}), 3) == {"_partition": "3", "k": 3, "n": 1}


def test_unpartitioned_result_ignores_the_key() -> None:
    assert agg("n: count()")(batch({}), "whatever") == {"n": 1}


def test_an_alias_named_like_the_partition_field_replaces_it_in_place() -> None:
    got = agg("k: count(), n: count()", partition="k")(batch({"k": "a"}), "a")
    assert list(got.items()) == [("_partition", "a"), ("k", 1), ("n", 1)]


def test_distinct_key_identity() -> None:
    assert distinct_key(1) == distinct_key(1.0) and hash(distinct_key(1)) == hash(1.0)
    assert distinct_key(True) != distinct_key(1)
    assert distinct_key(math.nan) == distinct_key(float("nan"))
    assert distinct_key({"a": [1, 2]}) == distinct_key({"a": [1.0, 2]})
    assert distinct_key([1]) != distinct_key([True])
    assert distinct_key(None) != distinct_key(MISSING)


# ----------------------------------------------------------- evaluation


class CountingFields(dict):
    """A fields dict that counts ``get`` calls (how generated code reads fields)."""

    gets = 0

    def get(self, *args: Any) -> Any:
        CountingFields.gets += 1
        return super().get(*args)


class CountingBatch(list):
    """A batch that counts how often it is iterated."""

    passes = 0

    def __iter__(self) -> Any:
        CountingBatch.passes += 1
        return super().__iter__()


def test_one_pass_and_one_evaluation_per_argument_and_event() -> None:
    fn = agg("a: sum(v), b: avg(v), c: min(v), d: max(v), e: stddev(v), f: first(v), "
             "g: last(v), h: count(v), i: count_distinct(v), j: ema(v), k: max(v) - min(v), "
             "l: sum(v * 2), m: avg(v * 2)")  # fmt: skip
    events = CountingBatch(Event("M", CountingFields(v=i), i) for i in range(10))
    CountingFields.gets = CountingBatch.passes = 0
    got = fn(events, None)
    assert CountingBatch.passes == 1
    assert CountingFields.gets == 20  # v, and v * 2: once each per event
    assert got["a"] == 45.0 and got["l"] == 90.0 and got["m"] == 9.0


def test_arguments_see_constants_functions_and_the_event() -> None:
    prelude = "const factor = 3\nfn double(x):\n    return x * 2\n"
    fn = agg("c: sum(factor), d: sum(double(v)), t: sum(M.v), o: sum(Other.v)", prelude=prelude)
    got = fn(batch({"v": 1, "factor": 100}, {"v": 2, "factor": 100}), None)
    assert got == {"c": 6.0, "d": 6.0, "t": 3.0, "o": 0.0}


def test_each_call_returns_a_new_dict() -> None:
    fn = agg("n: count()")
    a, b = fn(batch({}), None), fn(batch({}), None)
    assert a == b and a is not b


def test_runtime_errors_in_arguments_propagate() -> None:
    with pytest.raises(VPLRuntimeError):
        one("sum(s + 1)", batch({"s": "a"}))


def test_an_int_too_large_for_a_float_is_a_runtime_error() -> None:
    with pytest.raises(VPLRuntimeError, match="overflow"):
        one("sum(v)", values("v", 10**400))
    assert one("max(v)", values("v", 1, 2)) == 2.0
    with pytest.raises(VPLRuntimeError, match="overflow"):
        one("max(v)", values("v", 10**400, 1))


def test_generated_source_is_kept() -> None:
    fn = agg("n: count(), s: sum(v)")
    assert "for ev in events" in fn.vpl_source
    assert "for ev in events" not in agg("n: count()").vpl_source  # nothing to read


# ----------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("items", "fragment", "hint"),
    [
        ("t: summ(v)", "unknown aggregate function 'summ'", "did you mean 'sum'?"),
        ("t: average(v)", "unknown aggregate function 'average'", None),
        ("t: len(v)", "unknown aggregate function 'len'", "count()"),
        ("t: distinct(v)", "only works inside count(distinct(x))", "count_distinct(x)"),
        ("t: count(distinct(a, b))", "distinct() takes one expression, got 2", None),
        ("t: v", "not the bare name 'v'", "last(v)"),
        ('t: "x"', 'not the literal "x"', "number literals"),
        ("t: true", "not the literal true", None),
        ("t: null", "not the literal null", None),
        ("t: sum(v) > 3", "not a Binary expression", None),
        ("t: sum()", "sum() takes 1 argument, got 0", None),
        ("t: avg(a, b)", "avg() takes 1 argument, got 2", None),
        ("t: count(a, b)", "count() takes 0 or 1 arguments, got 2", None),
        ("t: ema()", "ema() takes 1 or 2 arguments, got 0", None),
        ("t: ema(v, 0)", "period must be a positive number", None),
        ("t: ema(v, p)", "period must be a positive number", None),
        ("t: sum(v, x: 1)", "takes no keyword arguments", None),
        ("t: count(), t: sum(v)", "alias 't' is used twice", None),
        ("count()", "takes alias: function(...) items", None),
        ("", "takes alias: function(...) items", None),
    ],
)
def test_bad_aggregates_are_semantic_errors(items: str, fragment: str, hint: str | None) -> None:
    with pytest.raises(VPLSemanticError) as info:
        agg(items)
    assert fragment in str(info.value)
    if hint is not None:
        assert info.value.hint is not None and hint in info.value.hint


def test_every_aggregate_the_validator_accepts_compiles() -> None:
    assert set(AGGREGATES) == set(AGGREGATE_FUNCTIONS)
    for name, (low, high) in AGGREGATES.items():
        for n in range(low, high + 1):
            args = ", ".join(["v", "3"][:n])
            assert "r" in agg(f"r: {name}({args})")(values("v", 1, 2), None)


def test_aggregate_errors_point_at_the_item() -> None:
    with pytest.raises(VPLSemanticError) as info:
        agg("n: count(), t: summ(v)")
    assert (info.value.line, info.value.column) == (2, 31)
    assert "summ" in info.value.snippet


# ----------------------------------------------------------- properties

values_st = st.one_of(
    st.just(MISSING),
    st.none(),
    st.booleans(),
    st.integers(-1000, 1000),
    st.floats(-1e6, 1e6, allow_nan=False),
    st.just(math.nan),
    st.sampled_from(["a", "b", "1"]),
    st.lists(st.integers(0, 2), max_size=2),
)
batches = st.lists(values_st, max_size=30)


def ref_numbers(vals: list[Any]) -> list[int | float]:
    return [x for x in vals if type(x) in (int, float) and not (type(x) is float and x != x)]


def ref_key(x: Any) -> Any:
    if isinstance(x, bool):
        return ("bool", x)
    if isinstance(x, float) and x != x:
        return ("nan",)
    if isinstance(x, (int, float)):
        return ("number", x)  # tuple equality and hashing make 1 and 1.0 one key
    if isinstance(x, list):
        return ("list", tuple(ref_key(i) for i in x))
    return ("str", x) if isinstance(x, str) else ("null",)


ALL = ("n: count(), c: count(v), s: sum(v), a: avg(v), lo: min(v), hi: max(v), "
       "sd: stddev(v), f: first(v), l: last(v), d: count_distinct(v)")  # fmt: skip
ALL_FN = agg(ALL)


@given(vals=batches)
def test_aggregates_match_a_direct_reference(vals: list[Any]) -> None:
    got = ALL_FN(values("v", *vals), None)
    present = [x for x in vals if x is not MISSING]
    nums = ref_numbers(vals)
    total = 0.0
    for x in nums:
        total += x
    assert got["n"] == len(vals)
    assert got["c"] == sum(1 for x in present if x is not None)
    assert got["s"] == total and type(got["s"]) is float
    assert got["a"] == (pytest.approx(total / len(nums)) if nums else None)
    assert got["lo"] == (float(min(nums)) if nums else None)
    assert got["hi"] == (float(max(nums)) if nums else None)
    if len(nums) > 1:
        assert got["sd"] == pytest.approx(statistics.stdev(nums), rel=1e-6, abs=1e-6)
    else:
        assert got["sd"] is None
    first, last = (present[0], present[-1]) if present else (None, None)
    assert ref_key(got["f"]) == ref_key(first) and type(got["f"]) is type(first)
    assert ref_key(got["l"]) == ref_key(last) and type(got["l"]) is type(last)
    assert got["d"] == len({ref_key(x) for x in present})


ALONE = {item.split(": ")[0]: agg(item) for item in ALL.split(", ")}


@given(vals=batches)
def test_shared_pass_equals_each_aggregate_alone(vals: list[Any]) -> None:
    events = values("v", *vals)
    together = ALL_FN(events, None)
    for alias, fn in ALONE.items():
        assert ref_key(fn(events, None)[alias]) == ref_key(together[alias])


@given(vals=st.lists(st.one_of(st.integers(-50, 50), st.floats(-50, 50)), max_size=20),
       period=st.integers(1, 30))  # fmt: skip
def test_ema_matches_a_direct_reference(vals: list[float], period: int) -> None:
    got = one(f"ema(v, {period})", values("v", *vals))
    if not vals:
        assert got is None
        return
    k = 2 / (period + 1)
    expected = float(vals[0])
    for x in vals[1:]:
        expected = k * x + (1 - k) * expected
    assert got == pytest.approx(expected)


INLINE_VALUES = st.one_of(
    st.integers(-5, 5),
    st.floats(allow_infinity=True, allow_nan=True),
    st.sampled_from([10**400, -(10**400), True, None, "s", 2.5, -0.0]),
)


@given(
    st.sampled_from(["*", "+", "-"]),
    st.lists(
        st.dictionaries(st.sampled_from(["a", "b"]), INLINE_VALUES, max_size=2),
        min_size=1,
        max_size=12,
    ),
)
def test_inlined_field_arithmetic_matches_the_compiled_expression(
    op: str, rows: list[dict[str, Any]]
) -> None:
    """``sum(a * b)`` reads the two fields inline; results and errors are the compiled ones."""
    import varpulis.runtime.aggregates as aggregates

    program = parse(
        f"stream S = T .window(3) .aggregate(s: sum(a {op} b), m: max(a {op} b), n: count())"
        " .emit(s: s, m: m, n: n)"
    )
    decl = program.decls[0]
    op_node = next(o for o in decl.ops if o.name == "aggregate")

    def run(inline: frozenset[str]) -> list[Any]:
        original = aggregates._INLINE
        aggregates._INLINE = inline
        try:
            aggregate = compile_aggregate(op_node, Scope(), None)
        finally:
            aggregates._INLINE = original
        events = [Event("T", row, i) for i, row in enumerate(rows)]
        out: list[Any] = []
        for start in range(0, len(events), 3):
            try:
                result = aggregate(events[start : start + 3], None)
            except VPLRuntimeError as exc:
                out.append(("error", str(exc)))
            else:
                out.append({k: ("nan",) if v != v else (type(v), v) for k, v in result.items()})
        return out

    assert run(aggregates._INLINE) == run(frozenset())
