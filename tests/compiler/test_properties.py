"""Property tests: compiled code against a small reference interpreter of the rules.

The reference below is written from the semantics table (DESIGN §4.1 and the
compiler brief), independently of ``varpulis.compiler.values``: a recursive
walk that is slow but obviously right. Random expression trees (and small
function bodies) must give the same value, or both raise VPLRuntimeError.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from varpulis.compiler.evalctx import EvalContext
from varpulis.compiler.exprs import compile_expr, compile_predicate
from varpulis.compiler.functions import compile_functions
from varpulis.compiler.scope import Scope
from varpulis.compiler.values import MAX_INT_BITS, MISSING
from varpulis.errors import VPLRuntimeError
from varpulis.lang.ast import (
    ArrayLit,
    Assign,
    Binary,
    FnDecl,
    For,
    If,
    IfExpr,
    Index,
    Let,
    Literal,
    Name,
    Param,
    Range,
    Return,
    Unary,
    While,
)

# Generated code must compile cleanly: a SyntaxWarning is a compiler bug.
pytestmark = pytest.mark.filterwarnings("error::SyntaxWarning")


class Fail(Exception):
    """The reference says: VPLRuntimeError."""


def is_num(v: Any) -> bool:
    return type(v) in (int, float)


def is_logical(v: Any) -> bool:
    return v is True or v is False or v is MISSING


def ref_eq(a: Any, b: Any) -> bool:
    if is_num(a) and is_num(b):
        return a == b
    if type(a) is not type(b):
        return False
    if type(a) is list:
        return len(a) == len(b) and all(ref_eq(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def ref_is(a: Any, b: Any) -> bool:
    """Same type and equal, element by element for lists (so ``[nan] is [nan]`` is
    false, as ``nan is nan`` is)."""
    if type(a) is not type(b):
        return False
    if type(a) is list:
        return len(a) == len(b) and all(ref_is(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def ref_pow(a: Any, b: Any) -> Any:
    if type(a) is int and type(b) is int and b >= 0:
        if abs(a) > 1 and b * (abs(a).bit_length() - 1) > MAX_INT_BITS:
            raise Fail
        return a**b
    if a == 0 and b < 0:
        return None
    try:
        x, y = float(a), float(b)
    except OverflowError:
        raise Fail from None
    try:
        return math.pow(x, y)
    except OverflowError:
        return -math.inf if x < 0 and y.is_integer() and int(y) % 2 else math.inf
    except ValueError:
        return math.nan


def ref_arith(op: str, a: Any, b: Any) -> Any:
    if a is MISSING or b is MISSING:
        return MISSING
    if op in ("|", "^", "&", "<<", ">>"):
        if type(a) is not int or type(b) is not int:
            raise Fail
        if op in ("<<", ">>") and (
            b < 0 or (op == "<<" and a and a.bit_length() + b > MAX_INT_BITS)
        ):
            raise Fail
        return (
            {"|": a | b, "^": a ^ b, "&": a & b}[op]
            if op in "|^&"
            else (a << b if op == "<<" else a >> b)
        )
    if op == "+" and type(a) is str and type(b) is str:
        return a + b
    if not (is_num(a) and is_num(b)):
        raise Fail
    try:
        if op == "+":
            return a + b
        if op == "-":
            return a - b
        if op == "*":
            return a * b
        if op == "**":
            return ref_pow(a, b)
        if b == 0:
            return None
        if type(a) is int and type(b) is int:
            q, r = abs(a) // abs(b), abs(a) % abs(b)
            if op == "/":
                return -q if (a < 0) != (b < 0) else q
            return -r if a < 0 else r
        if op == "/":
            return a / b
        try:
            return math.fmod(a, b)
        except ValueError:
            return math.nan
    except OverflowError:
        raise Fail from None


def ref_compare(op: str, a: Any, b: Any) -> bool:
    if a is MISSING or b is MISSING:
        return False
    if op == "==":
        return ref_eq(a, b)
    if op == "!=":
        return not ref_eq(a, b)
    if op == "is":
        return ref_is(a, b)
    if op in ("in", "not in"):
        if type(b) is list:
            found = any(ref_eq(a, x) for x in b)
        elif type(b) is str and type(a) is str:
            found = a in b
        else:
            return False
        return found if op == "in" else not found
    ordered = (is_num(a) and is_num(b)) or (type(a) is str and type(b) is str)
    if not ordered:
        return False
    return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]


def ref(node: Any, env: dict) -> Any:
    """Evaluate *node*; names come from *env* (missing key → MISSING)."""
    if isinstance(node, Literal):
        return node.value
    if isinstance(node, Name):
        return env.get(node.id, MISSING)
    if isinstance(node, Unary):
        v = ref(node.operand, env)
        if v is MISSING:
            return MISSING
        if node.op == "-" and is_num(v):
            return -v
        if node.op == "~" and type(v) is int:
            return ~v
        if node.op == "not" and type(v) is bool:
            return not v
        raise Fail
    if isinstance(node, IfExpr):
        c = ref(node.cond, env)
        if c is True:
            return ref(node.then, env)
        return MISSING if c is MISSING else ref(node.orelse, env)
    if isinstance(node, ArrayLit):
        return [v for v in (ref(item, env) for item in node.items) if v is not MISSING]
    if isinstance(node, Index):
        obj, i = ref(node.obj, env), ref(node.index, env)
        if type(obj) in (list, str) and type(i) is int and -len(obj) <= i < len(obj):
            return obj[i]
        return MISSING
    assert isinstance(node, Binary)
    a = ref(node.left, env)
    if node.op in ("and", "or"):
        stop = node.op == "or"  # the value that decides alone
        if a is stop:
            return stop
        b = ref(node.right, env)
        if not (is_logical(a) and is_logical(b)):
            raise Fail
        if a is not MISSING:  # a is the neutral value
            return b
        return stop if b is stop else MISSING
    b = ref(node.right, env)
    if node.op in ("==", "!=", "<", "<=", ">", ">=", "in", "not in", "is"):
        return ref_compare(node.op, a, b)
    return ref_arith(node.op, a, b)


def outcome(run: Any) -> Any:
    """A comparable form of what *run()* gives: its value, or an error marker."""
    try:
        value = run()
    except (VPLRuntimeError, Fail):
        return "error"
    return canonical(value)


def canonical(value: Any) -> Any:
    if type(value) is float:
        return ("float", repr(value))
    if type(value) is list:
        return ("list", tuple(canonical(v) for v in value))
    if value is MISSING:
        return "MISSING"
    return (type(value).__name__, value)


# ------------------------------------------------------------- strategies

SCALARS = st.one_of(
    st.integers(-6, 6),
    st.sampled_from([10**30, -(2**70)]),
    st.sampled_from([0.0, -0.0, 0.5, -2.5, 3.0, 1e308, -1e-300, math.inf, math.nan]),
    st.sampled_from(["", "a", "ab", "b"]),
    st.booleans(),
    st.none(),
)
BINARY_OPS = [
    "+", "-", "*", "/", "%", "**", "==", "!=", "<", "<=", ">", ">=",
    "in", "not in", "is", "and", "or", "|", "^", "&", "<<", ">>",
]  # fmt: skip


def expressions(names: list[str]) -> st.SearchStrategy:
    leaves = st.one_of(SCALARS.map(Literal), st.sampled_from([*names, "nope"]).map(Name))

    def extend(inner: st.SearchStrategy) -> st.SearchStrategy:
        return st.one_of(
            st.builds(Unary, st.sampled_from(["-", "~", "not"]), inner),
            st.builds(Binary, st.sampled_from(BINARY_OPS), inner, inner),
            st.builds(IfExpr, inner, inner, inner),
            st.builds(lambda items: ArrayLit(tuple(items)), st.lists(inner, max_size=3)),
            st.builds(Index, inner, inner),
        )

    return st.recursive(leaves, extend, max_leaves=12)


FIELD_NAMES = ["x0", "x1", "x2"]
FIELDS = st.fixed_dictionaries({}, optional={name: SCALARS for name in FIELD_NAMES})


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(expressions(FIELD_NAMES), FIELDS)
@example(Binary("is", ArrayLit((Literal(math.nan),)), ArrayLit((Literal(math.nan),))), {})
def test_compiled_expressions_match_the_reference(expr: Any, fields: dict) -> None:
    scope = Scope()
    compiled = compile_expr(expr, scope)
    predicate = compile_predicate(expr, scope)
    expected = outcome(lambda: ref(expr, fields))
    assert outcome(lambda: compiled(fields, EvalContext())) == expected, compiled.vpl_source
    got = outcome(lambda: predicate(fields, EvalContext()))
    wanted = "error" if expected == "error" else ("bool", expected == ("bool", True))
    assert got == wanted, predicate.vpl_source


# ------------------------------------------------------------- functions

LOCAL_NAMES = ["a", "b", "x", "y", "i", "j"]


def ref_function(body: tuple, a: Any, b: Any) -> Any:
    """Interpret the fixed-shape body built by :func:`function_bodies`."""
    env = {"a": a, "b": b}
    for stmt in body:
        if isinstance(stmt, (Let, Assign)):
            env[stmt.name] = ref(stmt.value, env)
        elif isinstance(stmt, While):
            while ref(stmt.cond, env) is True:
                for inner in stmt.body:
                    if isinstance(inner, If):
                        ((cond, then),) = inner.branches
                        if ref(cond, env) is True:
                            env[then[0].name] = ref(then[0].value, env)
                    else:
                        env[inner.name] = ref(inner.value, env)
        elif isinstance(stmt, For):
            for j in range(stmt.iter.start.value, stmt.iter.stop.value):
                env["j"] = j
                env[stmt.body[0].name] = ref(stmt.body[0].value, env)
        else:
            return ref(stmt.value, env)
    raise AssertionError("the body ends with return")


@st.composite
def function_bodies(draw: Any) -> tuple:
    e = expressions(LOCAL_NAMES)
    i = Name("i")
    return (
        Let("let", "x", draw(e)),
        Let("var", "y", draw(e)),
        Let("var", "i", Literal(0)),
        While(Binary("<", i, Literal(3)), (
            If(((draw(e), (Assign("y", draw(e)),)),)),
            Assign("i", Binary("+", i, Literal(1))),
        )),
        For("j", Range(Literal(0), Literal(2)), (Assign("x", draw(e)),)),
        Return(draw(e)),
    )  # fmt: skip


ARGS = st.one_of(SCALARS, st.just(MISSING), st.floats(-3, 3), st.integers(-3, 3))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(function_bodies(), ARGS, ARGS)
def test_compiled_functions_match_the_reference(body: tuple, a: Any, b: Any) -> None:
    decl = FnDecl("f", (Param("a", "float"), Param("b", "int")), None, body)
    fn = compile_functions([decl], Scope())["f"]
    # A field named like a local must not leak in, even before the local is assigned.
    fields = {"x": 100, "y": 200, "j": 300}
    got = outcome(lambda: fn(EvalContext(), fields, a, b))
    assert got == outcome(lambda: ref_function(body, a, b)), fn.vpl_source
