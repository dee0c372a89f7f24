"""The value model and operator helpers of varpulis.compiler.values."""

from __future__ import annotations

import math
import pickle

import pytest

from varpulis.compiler import values as V
from varpulis.compiler.values import MISSING, display, type_name
from varpulis.errors import VPLRuntimeError

NAN = float("nan")
INF = float("inf")


def same(a: object, b: object) -> bool:
    """Equal with the same type, NaN equal to NaN, and the sign of zero kept."""
    if type(a) is not type(b):
        return False
    if type(a) is float:
        return repr(a) == repr(b)
    return a == b


# ------------------------------------------------------------------ MISSING


def test_missing_is_a_singleton_that_survives_pickling() -> None:
    assert pickle.loads(pickle.dumps(MISSING)) is MISSING
    assert type(MISSING)() is MISSING
    assert repr(MISSING) == "MISSING"
    assert MISSING is not None


def test_missing_refuses_truth_testing() -> None:
    with pytest.raises(TypeError):
        bool(MISSING)


@pytest.mark.parametrize(
    ("value", "name"),
    [
        (1, "int"),
        (1.5, "float"),
        ("s", "string"),
        (True, "bool"),
        (None, "null"),
        ([1], "array"),
        ({"a": 1}, "map"),
        (MISSING, "missing"),
    ],
)
def test_type_names(value: object, name: str) -> None:
    assert type_name(value) == name


# ------------------------------------------------------------------ display


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (42, "42"),
        (-7, "-7"),
        (2.0, "2"),
        (-2.0, "-2"),
        (3.5, "3.5"),
        (0.1 + 0.2, "0.30000000000000004"),
        (1e21, "1000000000000000000000"),
        (1e-7, "0.0000001"),
        (1.5e-10, "0.00000000015"),
        (-0.0, "-0"),
        (NAN, "NaN"),
        (INF, "inf"),
        (-INF, "-inf"),
        ("plain", "plain"),
        ("", ""),
        (True, "true"),
        (False, "false"),
        (None, "null"),
        ([1, "a", 2.0, None, True], '[1, "a", 2, null, true]'),
        ([], "[]"),
        ({"k": "v", "n": [1.5]}, '{"k": "v", "n": [1.5]}'),
        ({}, "{}"),
        (['say "hi"\n'], '["say \\"hi\\"\\n"]'),
    ],
)
def test_display_form(value: object, text: str) -> None:
    assert display(value) == text


# ------------------------------------------------------------- arithmetic

ARITH = [
    # int with int stays int; / truncates toward zero; % takes the dividend's sign
    (V.op_add, 2, 3, 5),
    (V.op_sub, 2, 3, -1),
    (V.op_mul, 4, 3, 12),
    (V.op_div, 7, 2, 3),
    (V.op_div, -7, 2, -3),
    (V.op_div, 7, -2, -3),
    (V.op_div, -7, -2, 3),
    (V.op_div, 6, 3, 2),
    (V.op_mod, 7, 3, 1),
    (V.op_mod, -7, 3, -1),
    (V.op_mod, 7, -3, 1),
    (V.op_mod, -7, -3, -1),
    # any float makes a float
    (V.op_add, 1, 0.5, 1.5),
    (V.op_sub, 1.5, 1, 0.5),
    (V.op_mul, 2, 2.5, 5.0),
    (V.op_div, 7.0, 2, 3.5),
    (V.op_div, 7, 2.0, 3.5),
    (V.op_mod, 7.0, 2, 1.0),
    (V.op_mod, -7.5, 2, -1.5),
    (V.op_mod, INF, 2.0, NAN),
    # division or modulo by zero is null
    (V.op_div, 1, 0, None),
    (V.op_div, 1.0, 0, None),
    (V.op_div, 1, 0.0, None),
    (V.op_div, 1, -0.0, None),
    (V.op_mod, 1, 0, None),
    (V.op_mod, 1.5, 0.0, None),
    # powers
    (V.op_pow, 2, 10, 1024),
    (V.op_pow, -2, 3, -8),
    (V.op_pow, 2, 0, 1),
    (V.op_pow, 2, -1, 0.5),
    (V.op_pow, 2.0, 2, 4.0),
    (V.op_pow, 4, 0.5, 2.0),
    (V.op_pow, 0, -1, None),
    (V.op_pow, 0.0, -2.0, None),
    (V.op_pow, -8.0, 1 / 3, NAN),
    (V.op_pow, 10.0, 400, INF),
    (V.op_pow, -10.0, 401, -INF),
    # strings
    (V.op_add, "ab", "cd", "abcd"),
    # MISSING poisons arithmetic
    (V.op_add, MISSING, 1, MISSING),
    (V.op_add, "a", MISSING, MISSING),
    (V.op_div, MISSING, 0, MISSING),
    (V.op_pow, MISSING, MISSING, MISSING),
    (V.op_mul, None, MISSING, MISSING),
    # bitwise on ints
    (V.op_bitor, 12, 3, 15),
    (V.op_bitxor, 12, 10, 6),
    (V.op_bitand, 12, 10, 8),
    (V.op_shl, 1, 4, 16),
    (V.op_shr, -16, 2, -4),
    (V.op_bitand, MISSING, 1, MISSING),
]


@pytest.mark.parametrize(("op", "a", "b", "expected"), ARITH)
def test_arithmetic(op, a, b, expected) -> None:
    assert same(op(a, b), expected)


@pytest.mark.parametrize(
    ("op", "a", "b", "message"),
    [
        (V.op_mul, "a", 2.5, "unsupported operand types for *: 'string' and 'float'"),
        (V.op_add, "a", 1, "unsupported operand types for +: 'string' and 'int'"),
        (V.op_add, True, 1, "unsupported operand types for +: 'bool' and 'int'"),
        (V.op_sub, None, 1, "unsupported operand types for -: 'null' and 'int'"),
        (V.op_mul, "a", 2, "'string' and 'int'"),
        (V.op_div, [1], 2, "'array' and 'int'"),
        (V.op_mod, 1, {"a": 1}, "'int' and 'map'"),
        (V.op_pow, 2, True, "'int' and 'bool'"),
        (V.op_add, [1], [2], "'array' and 'array'"),
        (V.op_bitor, 1.0, 1, "'float' and 'int'"),
        (V.op_shl, True, 1, "'bool' and 'int'"),
        (V.op_shl, 1, -1, "negative shift count"),
        (V.op_shr, 1, -1, "negative shift count"),
        (V.op_pow, 3, 10**7, "too large"),
        (V.op_shl, 1, 10**7, "too large"),
    ],
)
def test_arithmetic_type_errors(op, a, b, message) -> None:
    with pytest.raises(VPLRuntimeError, match=message.replace("*", r"\*").replace("+", r"\+")):
        op(a, b)


@pytest.mark.parametrize(
    ("op", "a", "expected"),
    [
        (V.op_neg, 3, -3),
        (V.op_neg, -2.5, 2.5),
        (V.op_neg, MISSING, MISSING),
        (V.op_invert, 5, -6),
        (V.op_invert, MISSING, MISSING),
        (V.op_not, True, False),
        (V.op_not, False, True),
        (V.op_not, MISSING, MISSING),
    ],
)
def test_unary(op, a, expected) -> None:
    assert same(op(a), expected)


@pytest.mark.parametrize(
    ("op", "a"),
    [(V.op_neg, "s"), (V.op_neg, True), (V.op_neg, None), (V.op_invert, 1.0), (V.op_invert, True)]
    + [(V.op_not, v) for v in (0, 1, "true", None, [], 1.0)],
)
def test_unary_type_errors(op, a) -> None:
    with pytest.raises(VPLRuntimeError, match="unary|must be a bool"):
        op(a)


# --------------------------------------------------------------- comparisons

EQUAL = [
    (1, 1.0, True),
    (1, 1, True),
    (1.5, 1.5, True),
    (True, 1, False),
    (False, 0, False),
    (True, True, True),
    (None, None, True),
    (None, 0, False),
    ("a", "a", True),
    ("1", 1, False),
    ([1, 2.0], [1.0, 2], True),
    ([1, 2], [1, 2, 3], False),
    ([True], [1], False),
    ({"a": 1, "b": [2]}, {"b": [2.0], "a": 1.0}, True),
    ({"a": 1}, {"a": 1, "b": 2}, False),
    (NAN, NAN, False),
    (0.0, -0.0, True),
]


@pytest.mark.parametrize(("a", "b", "expected"), EQUAL)
def test_equality_promotes_numbers_only(a, b, expected) -> None:
    assert V.op_eq(a, b) is expected
    assert V.op_eq(b, a) is expected
    assert V.op_ne(a, b) is (not expected)


@pytest.mark.parametrize("other", [1, None, "a", MISSING, [], True])
def test_every_comparison_with_missing_is_false(other) -> None:
    for op in (V.op_eq, V.op_ne, V.op_lt, V.op_le, V.op_gt, V.op_ge, V.op_is):
        assert op(MISSING, other) is False
        assert op(other, MISSING) is False
    assert V.op_in(MISSING, [MISSING]) is False
    assert V.op_not_in(MISSING, [1]) is False


@pytest.mark.parametrize(
    ("a", "b", "lt", "le", "gt", "ge"),
    [
        (1, 2, True, True, False, False),
        (2, 2.0, False, True, False, True),
        (105.5, 100, False, False, True, True),
        (100, 100.0, False, True, False, True),
        (2**53 + 1, 2.0**53, False, False, True, True),  # exact, not rounded to a double
        ("abc", "abd", True, True, False, False),
        ("b", "abc", False, False, True, True),
        ("1", 2, False, False, False, False),
        (True, False, False, False, False, False),
        (None, None, False, False, False, False),
        ([1], [2], False, False, False, False),
        (NAN, 1.0, False, False, False, False),
    ],
)
def test_ordering(a, b, lt, le, gt, ge) -> None:
    assert (V.op_lt(a, b), V.op_le(a, b), V.op_gt(a, b), V.op_ge(a, b)) == (lt, le, gt, ge)


@pytest.mark.parametrize(
    ("item", "container", "inside", "outside"),
    [
        (1, [1.0, 2], True, False),
        (3, [1, 2], False, True),
        (True, [1], False, True),
        ([1], [[1.0]], True, False),
        ("k", {"k": 1}, True, False),
        ("x", {"k": 1}, False, True),
        (1, {"1": 1}, False, False),
        ("ell", "hello", True, False),
        ("z", "hello", False, True),
        (1, "1", False, False),
        (1, 1, False, False),
        (1, None, False, False),
        (1, MISSING, False, False),
    ],
)
def test_in_and_not_in(item, container, inside, outside) -> None:
    assert V.op_in(item, container) is inside
    assert V.op_not_in(item, container) is outside


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        (None, None, True),
        (1, 1, True),
        (1, 1.0, False),
        (True, 1, False),
        ("a", "a", True),
        ([1, 2], [1, 2], True),
        ([1], [1.0], False),
        ({"a": 1}, {"a": 1}, True),
        (None, 0, False),
    ],
)
def test_is_means_same_type_and_equal(a, b, expected) -> None:
    assert V.op_is(a, b) is expected


# ---------------------------------------------------------------------- logic

BOOLS = [True, False, MISSING]
AND_TABLE = {
    (True, True): True,
    (True, False): False,
    (True, MISSING): MISSING,
    (False, True): False,
    (False, False): False,
    (False, MISSING): False,
    (MISSING, True): MISSING,
    (MISSING, False): False,
    (MISSING, MISSING): MISSING,
}
OR_TABLE = {
    (True, True): True,
    (True, False): True,
    (True, MISSING): True,
    (False, True): True,
    (False, False): False,
    (False, MISSING): MISSING,
    (MISSING, True): True,
    (MISSING, False): MISSING,
    (MISSING, MISSING): MISSING,
}


@pytest.mark.parametrize(("a", "b"), list(AND_TABLE))
def test_three_valued_and_or(a, b) -> None:
    assert V.op_and(a, b) is AND_TABLE[a, b]
    assert V.op_or(a, b) is OR_TABLE[a, b]


@pytest.mark.parametrize(("a", "b"), [(1, True), (True, 1), (MISSING, "x"), (None, False)])
def test_logic_rejects_non_bools(a, b) -> None:
    with pytest.raises(VPLRuntimeError, match="must be a bool"):
        V.op_and(a, b)
    with pytest.raises(VPLRuntimeError, match="must be a bool"):
        V.op_or(a, b)


# ------------------------------------------------------------ index, slice


@pytest.mark.parametrize(
    ("obj", "index", "expected"),
    [
        ([10, 20, 30], 0, 10),
        ([10, 20, 30], -1, 30),
        ([10, 20, 30], 3, MISSING),
        ([10, 20, 30], -4, MISSING),
        ([10, 20, 30], 1.0, MISSING),
        ([10, 20, 30], True, MISSING),
        ({"k": 1}, "k", 1),
        ({"k": 1}, "z", MISSING),
        ({"k": None}, "k", None),
        ("héllo", 1, "é"),
        ("abc", -1, "c"),
        ("abc", 5, MISSING),
        (5, 0, MISSING),
        (None, 0, MISSING),
        (MISSING, 0, MISSING),
        ([1], MISSING, MISSING),
    ],
)
def test_index(obj, index, expected) -> None:
    assert same(V.op_index(obj, index), expected) or V.op_index(obj, index) is expected


@pytest.mark.parametrize(
    ("obj", "start", "stop", "expected"),
    [
        ([1, 2, 3, 4], 1, 3, [2, 3]),
        ([1, 2, 3, 4], None, 2, [1, 2]),
        ([1, 2, 3, 4], 2, None, [3, 4]),
        ([1, 2, 3, 4], 1, 99, [2, 3, 4]),
        ([1, 2, 3, 4], 3, 1, []),
        ([1, 2, 3, 4], -2, None, [3, 4]),
        ("hello", 1, 3, "el"),
        ("hello", 4, 2, ""),
        ("hello", MISSING, 2, MISSING),
        ("hello", 1.0, 2, MISSING),
        ({"a": 1}, 0, 1, MISSING),
        (MISSING, 0, 1, MISSING),
    ],
)
def test_slice(obj, start, stop, expected) -> None:
    result = V.op_slice(obj, start, stop)
    assert result is expected if expected is MISSING else result == expected


def test_helpers_never_mutate_their_arguments() -> None:
    xs = [3, 1, 2]
    assert V.op_slice(xs, 0, 2) is not xs
    assert xs == [3, 1, 2]
    assert math.isnan(V.op_mod(INF, 1.0))
