"""The builtin registry and every builtin, through compiled VPL calls."""

from __future__ import annotations

import math

import pytest

from tests.compiler import ev
from varpulis.compiler.builtins import BUILTINS, builtin
from varpulis.compiler.values import MISSING
from varpulis.errors import VPLRuntimeError
from varpulis.events import Event

NAN = float("nan")
INF = float("inf")

FIELDS = {
    "i": 7, "f": 2.5, "neg": -2.5, "s": "Alice", "xs": [3, 1, 2], "m": {"a": 1, "b": 2},
    "strs": ["b", "a"], "mixed": [1, "a"], "empty": [], "csv": "a,b", "nul": None, "t": True,
}  # fmt: skip

CASES = [
    ("abs(-3)", 3), ("abs(neg)", 2.5), ("abs(s)", MISSING),
    ("sqrt(16)", 4.0), ("sqrt(-1)", NAN), ("exp(0)", 1.0), ("exp(1000)", INF),
    ("log(1)", 0.0), ("log(0)", -INF), ("log(-1)", NAN), ("log10(1000)", 3.0),
    ("sin(0)", 0.0), ("cos(0)", 1.0), ("tan(0)", 0.0), ("sin(s)", MISSING),
    ("floor(-1.5)", -2), ("ceil(1.2)", 2), ("round(2.5)", 3), ("round(-2.5)", -3),
    ("round(0.49999999999999994)", 0), ("round(1.4)", 1), ("floor(i)", 7),
    ("floor(1.0 / 0.0)", MISSING), ("round(s)", MISSING),
    ("pow(2, 10)", 1024), ("pow(2, 0.5)", math.sqrt(2)), ("pow(2, -1)", 0.5),
    ("pow(s, 1)", MISSING),
    ("min(3, 1, 2)", 1), ("max(3, 1, 2)", 3), ("min(1, 2.5)", 1.0), ("max(3, 2.5)", 3.0),
    ("min(1, s)", MISSING), ("max(t, 1)", MISSING),
    ("clamp(5, 0, 3)", 3), ("clamp(-1, 0, 3)", 0), ("clamp(2, 0, 3)", 2), ("clamp(2, 0.0, 3)", 2.0),
    ("clamp(2, 3, 0)", MISSING),
    ("len(s)", 5), ('len("héllo")', 5), ("len(xs)", 3), ("len(m)", 2), ("len(i)", MISSING),
    ("first(xs)", 3), ("last(xs)", 2), ("first(empty)", MISSING), ("last(s)", MISSING),
    ("push(xs, 4)", [3, 1, 2, 4]), ("push(xs, nope)", MISSING), ("pop(xs)", [3, 1]),
    ("pop(empty)", MISSING), ("reverse(xs)", [2, 1, 3]), ("reverse(s)", "ecilA"),
    ("sort(xs)", [1, 2, 3]), ("sort(strs)", ["a", "b"]), ("sort(mixed)", MISSING),
    ("sort([2, 1.5])", [1.5, 2]),
    ("contains(xs, 1.0)", True), ('contains(s, "lic")', True), ('contains(m, "a")', True),
    ('contains(m, "z")', False), ("contains(i, 1)", MISSING), ("contains(m, 1)", MISSING),
    ("keys(m)", ["a", "b"]), ("values(m)", [1, 2]), ("keys(xs)", MISSING),
    ("get(xs, 0)", 3), ("get(xs, 5)", MISSING), ("get(xs, 5, 0)", 0), ('get(m, "b")', 2),
    ('get(m, "z", "d")', "d"), ("get(i, 0, 1)", MISSING),
    ("set(xs, 0, 9)", [9, 1, 2]), ('set(m, "c", 3)', {"a": 1, "b": 2, "c": 3}),
    ("set(xs, 5, 1)", MISSING), ("set(xs, 0, nope)", MISSING),
    ("range(3)", [0, 1, 2]), ("range(1, 3)", [1, 2]), ("range(5, 0, -2)", [5, 3, 1]),
    ("range(1, 3, 0)", MISSING), ("range(f)", MISSING),
    ("sum(xs)", 6), ("sum([1, 2.5])", 3.5), ("sum(empty)", 0), ("sum(mixed)", MISSING),
    ("avg(xs)", 2.0), ("avg(empty)", MISSING),
    ("to_string(2.0)", "2"), ("to_string(s)", "Alice"), ("to_string(i)", "7"),
    ("to_string(nul)", "null"), ("to_string(t)", "true"), ('to_string([1, "a"])', '[1, "a"]'),
    ("to_string(m)", '{"a": 1, "b": 2}'),
    ("to_int(3.9)", 3), ("to_int(-3.9)", -3), ('to_int(" 42 ")', 42), ('to_int("4.5")', MISSING),
    ("to_int(t)", 1), ("to_int(nul)", MISSING), ("to_int(1.0 / 0.0)", MISSING),
    ('to_float("4.5")', 4.5), ("to_float(i)", 7.0), ('to_float("x")', MISSING),
    ("to_float(t)", 1.0),
    ('trim("  a ")', "a"), ("lower(s)", "alice"), ("lowercase(s)", "alice"), ("upper(s)", "ALICE"),
    ("uppercase(s)", "ALICE"), ("upper(i)", MISSING),
    ('split(csv, ",")', ["a", "b"]), ('split(csv, "")', MISSING), ('join(strs, "-")', "b-a"),
    ('join([1, 2.0, "x", null], ",")', "1,2,x,null"), ("join(strs)", "ba"),
    ('replace(csv, ",", ";")', "a;b"), ('starts_with(s, "Al")', True), ('ends_with(s, "x")', False),
    ("substring(s, 1, 3)", "li"), ("substring(s, 2)", "ice"), ("substring(s, 3, 1)", MISSING),
    ("substring(s, 0, 99)", MISSING), ("substring(s, 5)", ""), ("substring(s, -1)", MISSING),
    ("type_of(i)", "int"), ("type_of(f)", "float"), ("type_of(s)", "string"),
    ("type_of(t)", "bool"), ("type_of(xs)", "array"), ("type_of(m)", "map"),
    ("type_of(nul)", "null"), ("type_of(nope)", MISSING),
    ("is_null(nul)", True), ("is_null(nope)", False), ("is_int(i)", True), ("is_int(t)", False),
    ("is_float(f)", True), ("is_number(i)", True), ("is_string(s)", True), ("is_bool(t)", True),
    ("is_array(xs)", True), ("is_map(m)", True), ("is_map(nope)", False),
    ("is_missing(nope)", True), ("is_missing(nul)", False),
    ("coalesce(nope, nul, 3)", 3), ("coalesce(nul, nope)", None), ("coalesce(nope)", MISSING),
    ('concat("a", 1, 2.0, nul)', "a12null"), ("concat(xs, [4])", [3, 1, 2, 4]),
    ('concat("a", nope)', MISSING),
]  # fmt: skip


def same(a: object, b: object) -> bool:
    if type(a) is float and type(b) is float:
        return repr(a) == repr(b) or a == b
    return type(a) is type(b) and a == b


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_builtin(text: str, expected: object) -> None:
    result = ev(text, FIELDS)
    if expected is MISSING:
        assert result is MISSING
    else:
        assert same(result, expected), result


def test_spec_text_example_adjusted() -> None:
    fields = {"name": "Alice", "csv": "a,b", "n": 2.0}
    expected = {
        "upper(name)": "ALICE", "len(name)": 5, "substring(name, 1, 3)": "li",
        'split(csv, ",")': ["a", "b"], 'join(split(csv, ","), "-")': "a-b",
        "to_string(n)": "2", 'starts_with(name, "Al")': True, "round(2.5)": 3, "floor(-1.5)": -2,
    }  # fmt: skip
    for text, value in expected.items():
        assert ev(text, fields) == value, text


@pytest.mark.parametrize("name", sorted(BUILTINS))
def test_missing_arguments_give_missing(name: str) -> None:
    spec = BUILTINS[name]
    if spec.needs_ctx:
        return
    args = [MISSING] * max(spec.min_args, 1)
    result = spec.func(*args)
    if name.startswith("is_"):
        assert result is (name == "is_missing")
    else:
        assert result is MISSING, name


@pytest.mark.parametrize("name", sorted(BUILTINS))
def test_wrong_argument_types_give_missing_not_errors(name: str) -> None:
    spec = BUILTINS[name]
    if spec.needs_ctx:
        return
    for weird in ({"x": [1]}, True, None, -1.5, "", []):
        spec.func(*[weird] * max(spec.min_args, 1))  # must not raise


def test_builtins_never_mutate_arguments() -> None:
    fields = {"xs": [3, 1, 2], "m": {"a": 1}}
    for text in ("push(xs, 1)", "pop(xs)", "sort(xs)", "reverse(xs)", "set(xs, 0, 9)",
                 'set(m, "b", 2)', "concat(xs, xs)"):  # fmt: skip
        ev(text, fields)
    assert fields == {"xs": [3, 1, 2], "m": {"a": 1}}


def test_now_is_the_trigger_time_in_milliseconds() -> None:
    assert ev("now()", event=Event("T", {}, 1_700_000_000_123_456_789)) == 1_700_000_000_123
    assert ev("now()") is MISSING


def test_range_has_a_size_limit() -> None:
    with pytest.raises(VPLRuntimeError, match="longer than"):
        ev("range(n)", {"n": 10**12})
    with pytest.raises(VPLRuntimeError, match="longer than"):
        ev("range(n)", {"n": 10**20})


def test_the_registry_is_a_dict_filled_by_a_decorator() -> None:
    @builtin("probe_twice_test")
    def twice(x: object, y: object = 1, *rest: object) -> object:
        return x

    try:
        spec = BUILTINS["probe_twice_test"]
        assert (spec.min_args, spec.max_args, spec.pure) == (1, None, True)
        assert ev("probe_twice_test(5, 6, 7)") == 5
    finally:
        del BUILTINS["probe_twice_test"]
    assert BUILTINS["substring"].max_args == 3
    assert BUILTINS["lower"].func is BUILTINS["lowercase"].func
