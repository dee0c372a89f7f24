"""SIMT kernels against the compiled scalar functions: same rows, same types, same order.

Random programs of the vectorisable shape (nested ranges, int division and
modulo with negative numbers, ``while`` with step bounds, ``if``/``elif``/
``else``, ``continue``/``break``, ``return`` from an inlined helper, ``emit``)
run both ways on random inputs; a call the kernel refuses (:class:`Fallback`,
e.g. a division by zero) is skipped here and covered through the engine in
``tests/runtime/test_chunks.py``.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from kernels.vectorize import Fallback
from tests.fixtures import MANDELBROT_FNS, mandelbrot_py
from varpulis.compiler.evalctx import EvalContext
from varpulis.compiler.functions import compile_toplevel
from varpulis.compiler.scope import Scope
from varpulis.compiler.simt import Unsupported, lower_function
from varpulis.lang import parse


def load(src: str) -> tuple[Scope, dict[str, Any]]:
    scope = Scope(source=src)
    return scope, compile_toplevel(parse(src).decls, scope)


def canon(rows: list[tuple[str, dict]]) -> list[tuple[str, tuple]]:
    return [(t, tuple((k, type(v).__name__, repr(v)) for k, v in f.items())) for t, f in rows]


def scalar_rows(fns: dict, name: str, args: list[Any], budget: int = 10**6) -> list:
    ctx = EvalContext(None, emitted=[], step_budget=budget)
    fns[name](ctx, {}, *args)
    return canon([(e.event_type, e.fields) for e in ctx.emitted])


def kernel_rows(scope: Scope, name: str, args: list[Any], budget: int = 10**6) -> list | None:
    types = tuple({int: "int", float: "float", bool: "bool"}[type(a)] for a in args)
    kernel = lower_function(scope.function_decl(name), scope, types)
    try:
        batches = kernel.run(args, budget=budget)
    except Fallback:
        return None
    return canon([(b.event_type, row) for b in batches for row in b.to_dicts()])


# ---------------------------------------------------------------- fixed programs


def test_int_division_and_modulo_follow_vpl_not_python() -> None:
    src = """
fn f(a: int):
    for b in -3..4:
        if b != 0:
            emit D(a: a, b: b, q: a / b, r: a % b, fq: a / (b * 1.0), fr: a % (b * 1.0))
"""
    scope, fns = load(src)
    for a in (-7, -6, -1, 0, 1, 5, 7):
        assert kernel_rows(scope, "f", [a]) == scalar_rows(fns, "f", [a])


def test_emit_order_interleaves_sites_and_nested_loops_like_the_scalar_path() -> None:
    src = """
fn f(n: int):
    emit Start(n: n)
    for i in 0..n:
        emit A(i: i)
        for j in 0..i:
            if (i + j) % 2 == 0:
                emit B(i: i, j: j)
            else:
                emit C(s: i * 10 + j, half: (i + j) / 2.0)
        var k = 0
        while k < i:
            k := k + 1
            emit W(i: i, k: k)
    emit End(n: n)
"""
    scope, fns = load(src)
    for n in (0, 1, 4, 7):
        assert kernel_rows(scope, "f", [n]) == scalar_rows(fns, "f", [n])


def test_division_by_zero_is_refused_not_misrepresented() -> None:
    scope, fns = load("fn f(a: int):\n    for i in -1..2:\n        emit Q(q: a / i)\n")
    assert kernel_rows(scope, "f", [3]) is None
    assert scalar_rows(fns, "f", [3])[1] == ("Q", (("q", "NoneType", "None"),))


def test_int_overflow_is_refused() -> None:
    scope, _ = load("fn f(a: int):\n    for i in 0..3:\n        emit Q(q: a * a * i)\n")
    assert kernel_rows(scope, "f", [2**40]) is None
    assert kernel_rows(scope, "f", [2**20]) is not None


def test_while_budget_is_refused_so_the_scalar_error_happens() -> None:
    src = "fn f(n: int):\n    for i in 0..n:\n        var k = 0\n        while k < 10:\n" \
          "            k := k + 1\n        emit K(k: k)\n"  # fmt: skip
    scope, _ = load(src)
    assert kernel_rows(scope, "f", [3], budget=30) is not None
    assert kernel_rows(scope, "f", [4], budget=30) is None


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ('    var s = ""\n    for i in 0..n:\n        s := s + "x"\n    emit S(s: s)\n', "literal"),
        ("    var t = 0\n    for i in 0..n:\n        t := t + i\n    emit S(t: t)\n", "unassigned"),
        ("    for i in 0..n:\n        if i > 2:\n            break\n", "breaks out of a for"),
        ("    for i in 0..n:\n        emit S(v: abs(i))\n", "builtin abs"),
        ("    for i in 0..n:\n        emit S(v: temperature)\n", "event field"),
        ("    for i in 0..n:\n        return\n", "inside a for"),
    ],
)
def test_unsupported_shapes_name_the_reason(body: str, reason: str) -> None:
    scope, _ = load(f"fn f(n: int):\n{body}")
    with pytest.raises(Unsupported, match=reason):
        lower_function(scope.function_decl("f"), scope, ("int",))


def test_recursion_is_refused() -> None:
    src = "fn g(n: int) -> int:\n    if n < 1:\n        return 0\n    return g(n - 1)\n" \
          "fn f(n: int):\n    emit R(v: g(n))\n"  # fmt: skip
    scope, _ = load(src)
    with pytest.raises(Unsupported, match="recursive"):
        lower_function(scope.function_decl("f"), scope, ("int",))


@settings(max_examples=25, deadline=None)
@given(x=st.integers(0, 990), y=st.integers(0, 990), w=st.integers(1, 12), it=st.integers(1, 300))
def test_mandelbrot_tiles_match_the_reference(x: int, y: int, w: int, it: int) -> None:
    scope, _ = load(MANDELBROT_FNS)
    rows = kernel_rows(scope, "compute_tile", [x, y, w, it])
    assert rows is not None
    want = [
        mandelbrot_py(-2.0 + (x + px) * 3.0 / 1000.0, -1.5 + (y + py) * 3.0 / 1000.0, it)
        for px in range(w)
        for py in range(w)
    ]
    got = [int(dict((k, v) for k, _, v in fields)["iterations"]) for _, fields in rows]
    assert got == want and sum(got) == sum(want)


# ---------------------------------------------------------------- random programs

INT_LEAVES = ["0", "1", "2", "3", "-1", "-2", "-5", "7"]
FLOAT_LEAVES = ["0.5", "-2.5", "3.0", "1.25"]


@st.composite
def int_expr(draw: st.DrawFn, names: list[str], depth: int = 2) -> str:
    if depth == 0 or draw(st.booleans()):
        return draw(st.sampled_from(names + INT_LEAVES))
    op = draw(st.sampled_from(["+", "-", "*", "/", "%"]))
    return f"({draw(int_expr(names, depth - 1))} {op} {draw(int_expr(names, depth - 1))})"


@st.composite
def float_expr(draw: st.DrawFn, ints: list[str], floats: list[str], depth: int = 2) -> str:
    if depth == 0 or draw(st.booleans()):
        return draw(st.sampled_from(floats + FLOAT_LEAVES + ints))
    op = draw(st.sampled_from(["+", "-", "*", "/"]))
    left = draw(float_expr(ints, floats, depth - 1))
    return f"({left} {op} {draw(float_expr(ints, floats, depth - 1))})"


@st.composite
def bool_expr(draw: st.DrawFn, ints: list[str], floats: list[str], depth: int = 1) -> str:
    kind = draw(st.integers(0, 3 if depth else 1))
    op = draw(st.sampled_from(["<", "<=", ">", ">=", "==", "!="]))
    if kind == 0:
        return f"{draw(int_expr(ints, 1))} {op} {draw(int_expr(ints, 1))}"
    if kind == 1:
        return f"{draw(float_expr(ints, floats, 1))} {op} {draw(int_expr(ints, 1))}"
    if kind == 2:
        return f"not ({draw(bool_expr(ints, floats, depth - 1))})"
    word = draw(st.sampled_from(["and", "or"]))
    left = draw(bool_expr(ints, floats, depth - 1))
    return f"({left}) {word} ({draw(bool_expr(ints, floats, depth - 1))})"


class _Gen:
    """Writes a random body; names are unique per program."""

    def __init__(self, draw: st.DrawFn) -> None:
        self.draw, self.count, self.sites = draw, 0, 0

    def fresh(self, prefix: str) -> str:
        self.count += 1
        return f"{prefix}{self.count}"

    def block(self, ints: list[str], floats: list[str], indent: int, depth: int,
              loop: str | None) -> list[str]:  # fmt: skip
        draw, pad = self.draw, "    " * indent
        ints, floats = list(ints), list(floats)
        lines: list[str] = []
        for _ in range(draw(st.integers(1, 4))):
            kind = draw(st.sampled_from(["let", "let", "emit", "emit", "if", "for", "while",
                                         "skip", "call"]))  # fmt: skip
            if kind == "let":
                if draw(st.booleans()):
                    name = self.fresh("v")
                    lines.append(f"{pad}let {name} = {draw(int_expr(ints))}")
                    ints.append(name)
                else:
                    name = self.fresh("f")
                    lines.append(f"{pad}let {name} = {draw(float_expr(ints, floats))}")
                    floats.append(name)
            elif kind == "emit":
                fields = [f"a: {draw(int_expr(ints))}"]
                if draw(st.booleans()):
                    fields.append(f"b: {draw(float_expr(ints, floats))}")
                if draw(st.booleans()):
                    fields.append(f"c: {draw(bool_expr(ints, floats))}")
                kind_name = draw(st.sampled_from(["A", "B"]))
                lines.append(f"{pad}emit {kind_name}({', '.join(fields)})")
            elif kind == "call":
                lines.append(f"{pad}emit H(h: helper({draw(int_expr(ints, 1))}, "
                             f"{draw(float_expr(ints, floats, 1))}))")  # fmt: skip
            elif kind == "skip" and loop is not None:
                word = "continue" if loop == "for" or draw(st.booleans()) else "break"
                lines.append(f"{pad}if {draw(bool_expr(ints, floats))}:")
                lines.append(f"{pad}    {word}")
            elif kind == "if" and depth:
                lines.append(f"{pad}if {draw(bool_expr(ints, floats))}:")
                lines += self.block(ints, floats, indent + 1, depth - 1, loop)
                if draw(st.booleans()):
                    lines.append(f"{pad}elif {draw(bool_expr(ints, floats))}:")
                    lines += self.block(ints, floats, indent + 1, depth - 1, loop)
                if draw(st.booleans()):
                    lines.append(f"{pad}else:")
                    lines += self.block(ints, floats, indent + 1, depth - 1, loop)
            elif kind == "for" and depth:
                var = self.fresh("i")
                lo, hi = draw(st.sampled_from(["-2", "0", "1"] + ints)), draw(int_expr(ints, 1))
                dots = draw(st.sampled_from(["..", "..="]))
                lines.append(f"{pad}for {var} in {lo}{dots}{hi}:")
                lines += self.block([*ints, var], floats, indent + 1, depth - 1, "for")
            elif kind == "while" and depth:
                var = self.fresh("w")
                lines.append(f"{pad}var {var} = 0")
                lines.append(f"{pad}while {var} < {draw(st.sampled_from(['3', '5'] + ints))}:")
                lines.append(f"{pad}    {var} := {var} + 1")
                lines += self.block([*ints, var], floats, indent + 1, depth - 1, "while")
        return lines or [f"{pad}emit E(n: {draw(int_expr(ints, 1))})"]


HELPER = """
fn helper(a: int, b: float) -> int:
    var k = 0
    while k < 6:
        if k * b > a:
            return k
        k := k + 1
    return -a
"""


@st.composite
def programs(draw: st.DrawFn) -> str:
    gen = _Gen(draw)
    body = gen.block(["n", "m"], ["x"], 1, 3, None)
    return HELPER + "fn main(n: int, m: int, x: float):\n" + "\n".join(body) + "\n"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    src=programs(),
    n=st.integers(-3, 6),
    m=st.integers(-9, 9),
    x=st.floats(-4, 4, allow_nan=False).map(lambda v: round(v, 2)),
)
def test_random_programs_match_the_scalar_path(src: str, n: int, m: int, x: float) -> None:
    scope, fns = load(src)
    try:
        got = kernel_rows(scope, "main", [n, m, x])
    except Unsupported as exc:
        event(f"unsupported: {str(exc).split(' ')[0]}")
        return
    if got is None:
        event("fallback at run time")
        return
    event("vectorised")
    assert got == scalar_rows(fns, "main", [n, m, x]), src
