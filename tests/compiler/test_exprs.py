"""Compiled VPL expressions: name lookup, member access, literals, operators, calls."""

from __future__ import annotations

import itertools

import pytest

from tests.compiler import ev, expr_of, load, pred
from varpulis.compiler import values as V
from varpulis.compiler.evalctx import EvalContext
from varpulis.compiler.exprs import compile_expr, compile_predicate
from varpulis.compiler.scope import Scope
from varpulis.compiler.values import MISSING
from varpulis.errors import VPLRuntimeError, VPLSemanticError
from varpulis.events import Event
from varpulis.lang.ast import (
    ArrayLit,
    Attr,
    Binary,
    Call,
    Literal,
    MapLit,
    Name,
)
from varpulis.lang.ast import Literal as Lit

# Generated code must compile cleanly: a SyntaxWarning is a compiler bug.
pytestmark = pytest.mark.filterwarnings("error::SyntaxWarning")

# ---------------------------------------------------------------- names


def test_a_name_reads_the_event_field() -> None:
    assert ev("price", {"price": 10.5}) == 10.5
    assert ev("price", {}) is MISSING
    assert ev("price", {"price": None}) is None


def test_top_level_constants_are_visible_and_shadow_fields() -> None:
    prog = load('const LIMIT = 10\nlet threshold = 50\nvar names = ["a", "b"]\n')
    assert prog.expr("LIMIT + 1", {}) == 11
    assert prog.expr("threshold", {"threshold": 5}) == 50
    assert prog.expr("names[1]", {}) == "b"
    assert prog.expr("v > threshold", {"v": 60}) is True
    assert prog.expr("v > threshold", {"v": 40, "threshold": 5}) is False


def test_constants_are_read_at_run_time_until_frozen() -> None:
    scope = Scope()
    scope.declare_constant("k")
    fn = compile_expr(expr_of("k * 2"), scope)
    assert fn({}, EvalContext()) is MISSING
    scope.set_constant("k", 21)
    assert fn({}, EvalContext()) == 42
    scope.freeze_constants()
    folded = compile_expr(expr_of("k * 2"), scope)
    assert "42" in folded.vpl_source
    assert folded({}, EvalContext()) == 42


# --------------------------------------------------------- member access


def order(fields: dict) -> Event:
    return Event("Order", fields, 0)


def test_member_of_a_sequence_capture() -> None:
    scope = Scope().with_aliases({"a", "b"})
    captures = {"a": order({"price": 5}), "b": [order({"price": 1}), order({"price": 2})]}
    assert ev("a.price", {"price": 99}, scope, captures=captures) == 5
    assert ev("b.price", {}, scope, captures=captures) == 2
    assert ev("len(b)", {}, scope, captures=captures) == 2
    assert ev("len(a)", {}, scope, captures=captures) == 1
    assert ev("a.missing", {}, scope, captures=captures) is MISSING
    assert ev("b.price", {}, scope, captures={"b": []}) is MISSING


def test_an_alias_not_yet_captured_falls_back_to_fields() -> None:
    scope = Scope().with_aliases({"o"})
    assert ev("o.id", {"o.id": 7}, scope) == 7
    assert ev("len(o)", {}, scope) is MISSING


def test_member_of_a_map_constant() -> None:
    prog = load('const CFG = {"limit": 5, "inner": {"deep": [1, 2]}}\n')
    assert prog.expr("CFG.limit", {}) == 5
    assert prog.expr("CFG.inner.deep[1]", {}) == 2
    assert prog.expr("CFG.nope", {"CFG.nope": 1}) is MISSING


def test_member_of_a_join_result_field() -> None:
    assert ev("Orders.id", {"Orders.id": 3, "id": 4}) == 3


def test_member_through_the_event_type_name() -> None:
    assert ev("Order.id", {"id": 4}, event=order({"id": 4})) == 4
    assert ev("Other.id", {"id": 4}, event=order({"id": 4})) is MISSING
    assert ev("Order.id", {"id": 4}) is MISSING  # no triggering event
    assert ev("o.id", {"id": 4}, event=order({"id": 4})) is MISSING  # alias, no sequence


def test_member_of_an_expression_reads_a_map_key() -> None:
    assert ev('{"a": {"b": 1}}.a.b') == 1
    assert ev("m.k", {"m": {"k": 2}}) is MISSING  # a field holding a map is not a local
    assert ev("[1, 2][0].k") is MISSING


# ---------------------------------------------------------------- literals


def test_literals_and_durations() -> None:
    assert ev("5s") == 5_000_000_000
    assert ev("100ms") == 100_000_000
    assert ev("1h") == 3_600_000_000_000
    assert ev('"a\\"b\\nc"') == 'a"b\nc'
    assert ev("null") is None
    assert ev('[1, 2.5, "x", true, null]') == [1, 2.5, "x", True, None]


def test_missing_array_elements_and_map_entries_are_dropped() -> None:
    assert ev("[1, nope, 3]", {}) == [1, 3]
    assert ev("[1, nope, 3]", {"nope": None}) == [1, None, 3]
    assert ev('{"a": 1, b: nope, c: 3}', {}) == {"a": 1, "c": 3}
    assert ev('{"a": 1, "a": 2}') == {"a": 2}


def test_range_expressions_build_int_lists() -> None:
    assert ev("0..4") == [0, 1, 2, 3]
    assert ev("1..=3") == [1, 2, 3]
    assert ev("3..1") == []
    assert ev("n..3", {"n": 0.9}) == [0, 1, 2]
    assert ev("0..n", {}) is MISSING
    assert ev("0..n", {"n": "x"}) is MISSING
    with pytest.raises(VPLRuntimeError, match="longer than"):
        ev("0..n", {"n": 10**9})


def test_if_then_else() -> None:
    for cond, expected in [(True, "a"), (False, "b"), (1, "b"), (None, "b"), ("true", "b")]:
        assert ev('if c then "a" else "b"', {"c": cond}) == expected
    assert ev('if c then "a" else "b"', {}) is MISSING
    assert ev("if x > 1 then x else -x", {"x": -3}) == 3


def test_index_and_slice() -> None:
    fields = {"xs": [1, 2, 3, 4], "s": "hello", "m": {"k": "v"}}
    assert ev("xs[-1]", fields) == 4
    assert ev("xs[9]", fields) is MISSING
    assert ev('m["k"]', fields) == "v"
    assert ev("s[1]", fields) == "e"
    assert ev("xs[1:3]", fields) == [2, 3]
    assert ev("xs[:2]", fields) == [1, 2]
    assert ev("xs[2:]", fields) == [3, 4]
    assert ev("s[3:1]", fields) == ""
    assert ev("s[1:99]", fields) == "ello"
    assert ev("xs[i]", fields) is MISSING


# --------------------------------------------------------------- operators


def test_not_is_a_real_operator() -> None:
    assert ev("not (x > 1)", {"x": 0}) is True
    assert ev("not (x > 1)", {"x": 5}) is False
    assert ev("not flag", {}) is MISSING
    with pytest.raises(VPLRuntimeError, match="must be a bool"):
        ev("not x", {"x": 1})


def test_logic_short_circuits_and_is_three_valued() -> None:
    fields = {"t": True, "f": False, "one": 1}
    assert ev('f and (one + "a")', fields) is False
    assert ev('t or (one + "a")', fields) is True
    assert ev("t and nope", fields) is MISSING
    assert ev("nope and f", fields) is False
    assert ev("nope or t", fields) is True
    assert ev("f or nope", fields) is MISSING
    with pytest.raises(VPLRuntimeError, match="must be a bool"):
        ev("t and one", fields)
    with pytest.raises(VPLRuntimeError, match="must be a bool"):
        ev("one or t", fields)


def test_bitwise_operators() -> None:
    assert ev("a | b", {"a": 12, "b": 3}) == 15
    assert ev("a ^ b", {"a": 12, "b": 10}) == 6
    assert ev("a & b", {"a": 12, "b": 10}) == 8
    assert ev("a << 2", {"a": 3}) == 12
    assert ev("a >> 1", {"a": 8}) == 4
    assert ev("~a", {"a": 0}) == -1
    with pytest.raises(VPLRuntimeError, match="unsupported"):
        ev("a | 1", {"a": 1.0})


def test_runtime_type_errors_name_the_types() -> None:
    with pytest.raises(
        VPLRuntimeError, match=r"unsupported operand types for \*: 'string' and 'float'"
    ):
        ev("s * 2.5", {"s": "a"})
    with pytest.raises(VPLRuntimeError, match="'string' and 'int'"):
        ev('"a" + 1')
    with pytest.raises(VPLRuntimeError, match="'bool' and 'int'"):
        ev("b + 1", {"b": True})


# Inlined comparisons (a constant against an unknown value) must agree with the helpers.
CONSTANTS = [Lit(1), Lit(1.5), Lit(-0.0), Lit("b"), Lit(True), Lit(False), Lit(None)]
VALUES = [1, 1.0, 2, 1.5, 0.0, "a", "b", True, False, None, [1], {"b": 1}, MISSING]
HELPERS = {"==": V.op_eq, "!=": V.op_ne, "<": V.op_lt, "<=": V.op_le, ">": V.op_gt, ">=": V.op_ge}


@pytest.mark.parametrize(("op", "const"), list(itertools.product(HELPERS, CONSTANTS)))
def test_inlined_comparisons_agree_with_the_helpers(op: str, const: Literal) -> None:
    scope = Scope()
    right = compile_predicate(Binary(op, Name("x"), const), scope)
    left = compile_predicate(Binary(op, const, Name("x")), scope)
    for value in VALUES:
        fields = {} if value is MISSING else {"x": value}
        assert right(fields, EvalContext()) is HELPERS[op](value, const.value), (value, op)
        assert left(fields, EvalContext()) is HELPERS[op](const.value, value), (value, op)


def test_comparisons_promote_numbers() -> None:
    assert pred("a == 1", {"a": 1.0})
    assert pred("a >= 100", {"a": 105.5})
    assert not pred("a == 1", {"a": True})
    assert pred("a != b", {}) is False
    assert pred('a < "b"', {"a": "a"})
    assert not pred("a < 1", {"a": "a"})
    assert pred("x in [1, 2]", {"x": 2.0})
    assert pred('"k" in m', {"m": {"k": 1}})
    assert pred('"ell" in s', {"s": "hello"})
    assert not pred("x not in [1, 2]", {})
    assert pred("x is null", {"x": None})
    assert not pred("x is 1", {"x": 1.0})


# ------------------------------------------------------ spec examples (adjusted)

T1_3 = {
    "q": "a / b", "r": "a % b", "f": "a / 2.0", "p": "a ** 2", "m": "-a",
    "c": "a + b * 2", "s": '"lit"', "w": "w",
}  # fmt: skip


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"a": 7, "b": 2, "w": "x"},
         {"q": 3, "r": 1, "f": 3.5, "p": 49, "m": -7, "c": 11, "s": "lit", "w": "x"}),
        ({"a": -7, "b": 2},
         {"q": -3, "r": -1, "f": -3.5, "p": 49, "m": 7, "c": -3, "s": "lit", "w": MISSING}),
        ({"a": 7, "b": 0},
         {"q": None, "r": None, "f": 3.5, "p": 49, "m": -7, "c": 7, "s": "lit", "w": MISSING}),
        ({"a": 7.0, "b": 2},
         {"q": 3.5, "r": 1.0, "f": 3.5, "p": 49.0, "m": -7.0, "c": 11.0, "s": "lit",
          "w": MISSING}),
    ],
)  # fmt: skip
def test_t1_3_expression_emit(fields: dict, expected: dict) -> None:
    for name, text in T1_3.items():
        value = ev(text, fields)
        assert (
            value is expected[name]
            if expected[name] in (None, MISSING)
            else (value == expected[name] and type(value) is type(expected[name]))
        ), name


@pytest.mark.parametrize(
    ("fields", "passes", "eq", "lt"),
    [
        ({"a": 1, "b": -1}, True, True, True),
        ({"a": 1.0, "b": -1}, True, True, True),  # 1.0 == 1 is true here
        ({"a": 1}, True, True, True),  # b > 0 is false, not missing: kept
        ({"a": -1, "b": -1}, False, False, True),
        ({"b": -1}, False, False, False),  # comparisons with missing are false
    ],
)
def test_t1_4_logic_and_comparisons(fields: dict, passes: bool, eq: bool, lt: bool) -> None:
    assert pred("a > 0 or b > 0", fields) is passes
    assert ev("a == 1", fields) is eq
    assert ev("a < 1.5", fields) is lt


@pytest.mark.parametrize(
    ("temperature", "gt", "ge"),
    [(105.5, True, True), (100, False, True), (101, True, True), (100.0, False, True),
     ("hot", False, False), (MISSING, False, False), (None, False, False),
     (100.0000001, True, True)],
)  # fmt: skip
def test_t1_2_filter(temperature: object, gt: bool, ge: bool) -> None:
    fields = {} if temperature is MISSING else {"temperature": temperature}
    assert pred("temperature > 100", fields) is gt
    assert pred("temperature >= 100", fields) is ge


# ------------------------------------------------------------------- calls


def test_unknown_function_is_a_compile_error_with_did_you_mean() -> None:
    source = "stream S = A\n    .where(lenn(name) > 3)\n"
    prog = load(source)
    where = prog.program.decls[0].ops[0].args[0]
    with pytest.raises(
        VPLSemanticError, match="unknown function 'lenn'; did you mean 'len'"
    ) as err:
        compile_expr(where, prog.scope)
    assert (err.value.line, err.value.column) == (2, 12)
    assert err.value.hint == "did you mean 'len'?"


def test_builtin_arity_and_keywords_are_checked_at_compile_time() -> None:
    with pytest.raises(VPLSemanticError, match="'abs' takes 1 arguments, got 2"):
        ev("abs(1, 2)")
    with pytest.raises(VPLSemanticError, match="'min' takes at least 2 arguments, got 1"):
        ev("min(1)")
    with pytest.raises(VPLSemanticError, match="'substring' takes 2 to 3 arguments, got 1"):
        ev('substring("a")')
    with pytest.raises(VPLSemanticError, match="no keyword arguments"):
        ev(Call("abs", (), (("x", Literal(1)),)))


def test_user_function_arguments_bind_by_position_and_name() -> None:
    prog = load("fn f(a, b, c):\n    return [a, b, c]\n")
    assert prog.expr("f(1, c: 3, b: 2)") == [1, 2, 3]
    assert prog.expr("f(1)") == [1]  # omitted parameters are MISSING
    assert prog.expr("f(nope, 2, 3)") == [2, 3]  # no argument shifting
    with pytest.raises(VPLSemanticError, match=r"f\(\) has no parameter 'bb'"):
        prog.expr("f(1, bb: 2)")
    with pytest.raises(VPLSemanticError, match="two values for parameter 'a'"):
        prog.expr("f(1, a: 2)")
    with pytest.raises(VPLSemanticError, match=r"f\(\) takes 3 arguments, got 4"):
        prog.expr("f(1, 2, 3, 4)")


def test_user_functions_shadow_builtins() -> None:
    prog = load("fn len(x):\n    return 42\n")
    assert prog.expr('len("abc")') == 42


def test_constant_folding_of_pure_operations() -> None:
    fn = compile_expr(expr_of('-2.0 + len("abc") * 2 ** 3'), Scope())
    assert "return 22.0" in fn.vpl_source
    bad = compile_expr(expr_of('"a" + 1'), Scope())  # not folded: fails when run
    with pytest.raises(VPLRuntimeError):
        bad({}, EvalContext())
    now = compile_expr(expr_of("now()"), Scope())
    assert now({}, EvalContext(Event("T", {}, 5_000_000))) == 5


def test_predicate_is_true_only_for_true() -> None:
    for value in (1, "true", None, [True], 1.0):
        assert pred("x", {"x": value}) is False
    assert pred("x", {}) is False
    assert pred("x", {"x": True}) is True


# ------------------------------------------------------------------ safety


def test_user_text_never_reaches_python_raw() -> None:
    nasty = "__import__('os').system('false') \" ' \n\\ }"
    scope = Scope()
    fn = compile_expr(MapLit(((nasty, Name("x")), ("k", Literal(nasty)))), scope)
    assert fn({"x": 1}, EvalContext()) == {nasty: 1, "k": nasty}
    assert "__import__" not in fn.vpl_source
    assert scope.namespace["__builtins__"] == {}
    field = compile_expr(Attr(Name("a"), "b"), scope)
    assert field({"a.b": nasty}, EvalContext()) == nasty


@pytest.mark.parametrize(
    "node",
    [
        Name("x; import os"),
        Name("a.b"),
        Name("é"),
        Attr(Name("a"), "b c"),
        Call("f()", ()),
        Literal(object()),  # type: ignore[arg-type]
        Literal([1]),  # type: ignore[arg-type]
        Binary("//", Literal(1), Literal(2)),
        ArrayLit((Name("ok"), Name("not ok"))),
    ],
)
def test_invalid_names_and_nodes_are_semantic_errors(node: object) -> None:
    with pytest.raises(VPLSemanticError):
        compile_expr(node, Scope())


def test_generated_code_has_no_builtins() -> None:
    scope = Scope()
    compile_expr(expr_of("1 + x"), scope)
    namespace = scope.namespace
    assert namespace["__builtins__"] == {}
    assert not any(name in namespace for name in ("open", "eval", "exec", "__import__"))
    assert all(name.startswith("_") or name[:2] in ("c_", "u_") for name in namespace)


def test_a_constant_left_operand_of_and_compiles_cleanly() -> None:
    # Once generated ``(_t := 0) is False``: a SyntaxWarning (an error in this module).
    with pytest.raises(VPLRuntimeError, match="must be a bool"):
        ev(Binary("and", Literal(0), Name("x")), {"x": True})
    assert ev(Binary("or", Literal(MISSING), Name("x")), {"x": True}) is True


def test_an_expression_too_deep_for_python_is_a_semantic_error() -> None:
    node = Name("x")
    for _ in range(250):
        node = Binary("+", Name("x"), node)
    with pytest.raises(VPLSemanticError, match="too complex to compile"):
        compile_expr(node, Scope())


def test_deep_recursion_becomes_a_runtime_error() -> None:
    prog = load("fn down(n):\n    return down(n + 1)\n")
    with pytest.raises(VPLRuntimeError, match="recursion too deep"):
        prog.expr("down(0)")
