"""Compiled VPL functions: statements, locals, loops, emit, budget, top-level constants."""

from __future__ import annotations

import pytest

from tests.compiler import load
from tests.fixtures import CLASSIFY_AND_GEN, MANDELBROT_FNS, mandelbrot_py
from varpulis.compiler.evalctx import EvalContext
from varpulis.compiler.exprs import compile_expr
from varpulis.compiler.functions import (
    compile_functions,
    compile_toplevel,
    evaluate_toplevel,
    function_source,
)
from varpulis.compiler.scope import Scope
from varpulis.compiler.values import MISSING
from varpulis.errors import VPLRuntimeError, VPLSemanticError
from varpulis.events import Event
from varpulis.lang import parse
from varpulis.lang.ast import Binary, FnDecl, Name, Param, Return

MANDELBROT = MANDELBROT_FNS


@pytest.fixture(scope="module")
def mandel():  # noqa: ANN201
    return load(MANDELBROT)


# --------------------------------------------------------------- Mandelbrot


def test_t1_8_tile_00(mandel) -> None:  # noqa: ANN001
    _, pixels = mandel.call("compute_tile", 77, 497, 2, 50)
    assert [(p.event_type, p.fields, p.timestamp) for p in pixels] == [
        ("Pixel", {"x": 77, "y": 497, "iterations": 27, "diverged": True}, 1_000),
        ("Pixel", {"x": 77, "y": 498, "iterations": 31, "diverged": True}, 1_000),
        ("Pixel", {"x": 78, "y": 497, "iterations": 40, "diverged": True}, 1_000),
        ("Pixel", {"x": 78, "y": 498, "iterations": 50, "diverged": False}, 1_000),
    ]


@pytest.mark.parametrize(
    ("x", "y", "size", "max_iter", "iterations"),
    [(0, 0, 2, 256, 1), (250, 250, 2, 256, 3), (100, 600, 2, 20, 4), (250, 400, 3, 256, 10),
     (500, 500, 2, 256, 256)],
)  # fmt: skip
def test_t1_8_reference_tiles(mandel, x, y, size, max_iter, iterations) -> None:  # noqa: ANN001
    _, pixels = mandel.call("compute_tile", x, y, size, max_iter)
    assert [(p.fields["x"], p.fields["y"]) for p in pixels] == [
        (x + px, y + py) for px in range(size) for py in range(size)
    ]
    assert {p.fields["iterations"] for p in pixels} == {iterations}
    assert {p.fields["diverged"] for p in pixels} == {iterations < max_iter}


def test_a_100x100_tile_matches_plain_python(mandel) -> None:  # noqa: ANN001
    x_off, y_off, max_iter = 300, 400, 100
    _, pixels = mandel.call("compute_tile", x_off, y_off, 100, max_iter)
    expected = [
        mandelbrot_py(-2.0 + (x_off + px) * 3.0 / 1000.0, -1.5 + (y_off + py) * 3.0 / 1000.0, 100)
        for px in range(100)
        for py in range(100)
    ]
    got = [p.fields["iterations"] for p in pixels]
    assert got == expected
    assert 0 < sum(got) < 100 * 100 * max_iter  # a tile with both kinds of pixels


def test_mandelbrot_has_a_fast_typed_body_and_a_general_one(mandel) -> None:  # noqa: ANN001
    source = function_source(mandel.functions["mandelbrot"])
    assert "_type(v_cx) is _float and _type(v_cy) is _float and _type(v_max_iter) is _int" in source
    assert "v_r2 = (v_zr * v_zr)" in source
    assert "v_zi = (((2.0 * v_zr) * v_zi) + v_cy)" in source
    for args in [(0.25, 0.5, 50), (-2.0, 0.0, 50), (1.0, 1.0, 50), (0.3, -0.5, 80)]:
        fast = mandel.call("mandelbrot", *args)[0]
        assert fast == mandelbrot_py(*args)
        ints = tuple(int(a) if float(a).is_integer() else a for a in args[:2])
        general = mandel.call("mandelbrot", *ints, float(args[2]))[0]
        assert general == fast
        if fast == args[2]:
            assert type(general) is float  # max_iter as it was given
    assert mandel.call("mandelbrot", 0, 0, 7)[0] == 7
    with pytest.raises(VPLRuntimeError, match="'float' and 'string'"):
        mandel.call("mandelbrot", "a", 0.0, 5)


def test_functions_from_a_hand_built_ast() -> None:
    decl = FnDecl(
        "add", (Param("a"), Param("b")), None, (Return(Binary("+", Name("a"), Name("b"))),)
    )
    fns = compile_functions([decl], Scope())
    assert fns["add"](EvalContext(), {}, 2, 3) == 5
    assert fns["add"](EvalContext(), {}, 2) is MISSING


# ------------------------------------------------------- T1-6 and T1-7

T1_6 = CLASSIFY_AND_GEN


def test_t1_6_functions_loops_and_emit() -> None:
    prog = load(T1_6)
    _, events = prog.call("gen", 4)
    assert [(e.event_type, e.fields) for e in events] == [
        ("Item", {"i": 0, "label": "small", "total": 0}),
        ("Item", {"i": 1, "label": "small", "total": 1}),
        ("Item", {"i": 3, "label": "big", "total": 4}),
        ("Done", {"total": 4, "avg": 1}),
    ]
    _, events = prog.call("gen")
    assert [(e.event_type, e.fields) for e in events] == [("Done", {"total": 0})]


def test_process_style_call_collects_emits() -> None:
    prog = load(T1_6)
    process = compile_expr(parse("let p = gen(n)\n").decls[0].value, prog.scope)
    out: list[Event] = []
    trigger = Event("Trigger", {"n": 2}, 77)
    process(trigger.fields, EvalContext(trigger, emitted=out))
    assert [(e.event_type, e.timestamp) for e in out] == [("Item", 77), ("Item", 77), ("Done", 77)]


SPIN = """
fn spin(n: int) -> int:
    var i = 0
    while i < n:
        i := i + 1
    return i

fn nested(n):
    var i = 0
    var total = 0
    while i < n:
        var j = 0
        while j < n:
            j := j + 1
            total := total + 1
        i := i + 1
    return total

fn breaker():
    var i = 0
    while true:
        i := i + 1
        if i == 5:
            break
    return i

fn forever():
    while true:
        continue

fn counted(n):
    var k = 0
    for i in 0..n:
        k := k + 1
    for j in n:
        k := k + 1
    return k
"""


def test_t1_7_while_has_no_silent_cap() -> None:
    prog = load(SPIN)
    assert prog.call("spin", 5)[0] == 5
    assert prog.call("spin", 20_000)[0] == 20_000


def test_the_step_budget_is_exact_and_per_call() -> None:
    prog = load(SPIN)
    assert prog.call("spin", 100, budget=100)[0] == 100
    with pytest.raises(VPLRuntimeError, match="step budget of 100 iterations exceeded in fn spin"):
        prog.call("spin", 101, budget=100)
    assert prog.call("nested", 10, budget=110)[0] == 100
    with pytest.raises(VPLRuntimeError, match="exceeded in fn nested"):
        prog.call("nested", 10, budget=109)
    assert prog.call("breaker", budget=5)[0] == 5
    with pytest.raises(VPLRuntimeError, match="exceeded in fn breaker"):
        prog.call("breaker", budget=4)
    with pytest.raises(VPLRuntimeError, match="step budget of 0 iterations"):
        prog.call("forever", budget=0)
    with pytest.raises(VPLRuntimeError, match="exceeded in fn forever"):
        prog.call("forever", budget=1000)


def test_for_loops_longer_than_the_budget_are_refused() -> None:
    prog = load(SPIN)
    assert prog.call("counted", 10, budget=10)[0] == 20
    with pytest.raises(VPLRuntimeError, match=r"exceeded in fn counted \(for loop over 0..11\)"):
        prog.call("counted", 11, budget=10)
    with pytest.raises(VPLRuntimeError, match="exceeded in fn counted"):
        prog.call("counted", 10**15)


# ---------------------------------------------------------- return values

RETURNS = """
fn bare(x):
    x > 1

fn branches(x):
    if x > 1:
        "big"
    elif x > 0:
        "small"
    else:
        if x == 0:
            "zero"

fn trailing_let(x):
    x + 1
    let y = 2

fn no_value():
    return

fn loop_last(x):
    for i in 0..x:
        i

fn middle(x):
    record(x)
    7

fn record(x):
    emit Seen(x: x)
"""


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        (("bare", 2), True), (("bare", 0), False), (("bare",), False),
        (("branches", 2), "big"), (("branches", 1), "small"), (("branches", 0), "zero"),
        (("branches", -1), MISSING), (("trailing_let", 1), MISSING), (("no_value",), MISSING),
        (("loop_last", 3), MISSING), (("middle", 1), 7),
    ],
)  # fmt: skip
def test_function_values(call: tuple, expected: object) -> None:
    value, _ = load(RETURNS).call(*call)
    assert value is expected if expected in (MISSING, True, False) else value == expected


def test_an_expression_statement_in_the_middle_runs() -> None:
    _, events = load(RETURNS).call("middle", 3)
    assert [(e.event_type, e.fields) for e in events] == [("Seen", {"x": 3})]


# ---------------------------------------------------------------- locals

LOCALS = """
const K = 2

fn maybe(flag):
    if flag:
        let y = 1.5
    return y * 2.0

fn flat():
    for i in 0..3:
        let last = i * 10
    return [i, last]

fn rebinding():
    let x = 1
    x := nope
    return x

fn reads():
    return [K, price, K.nothing]

fn shadowed():
    let a = K
    K := 5
    return [a, K]

fn param_wins(K):
    return K

fn mixed(n: int):
    var x = 0
    for i in 0..n:
        x := x + i / 2
    return x

fn numbers(a: float, b: float):
    return [a / b, a % b, b / 0.0]

fn ints(a: int, b: int):
    return [a / b, a % b, a * a * a]
"""


@pytest.mark.parametrize(
    ("call", "fields", "expected"),
    [
        (("maybe", True), {}, 3.0), (("maybe", False), {}, MISSING),
        (("flat",), {}, [2, 20]), (("rebinding",), {}, MISSING),
        (("reads",), {"price": 3, "K": 99}, [2, 3]), (("shadowed",), {}, [5]),
        (("param_wins", "p"), {}, "p"), (("param_wins",), {"K": 1}, MISSING),
        (("mixed", 5), {}, 4), (("mixed", 5.0), {}, 4),
        (("numbers", 7.5, 2.0), {}, [3.75, 1.5, None]),
        (("numbers", 1.0, 0.0), {}, [None, None, None]),
        (("ints", -7, 2), {}, [-3, -1, -343]),
        (("ints", 10**20, 3), {}, [33333333333333333333, 1, 10**60]),
    ],
)  # fmt: skip
def test_locals_and_name_resolution(call: tuple, fields: dict, expected: object) -> None:
    value, _ = load(LOCALS).call(*call, fields=fields)
    assert value is expected if expected is MISSING else value == expected


LOOPS = """
fn collect(it):
    var out = []
    for v in it:
        out := push(out, v)
    return out

fn ranges(a, b):
    var out = []
    for i in a..b:
        out := push(out, i)
    for i in a..=b:
        out := push(out, -i)
    return out

fn control():
    var out = []
    for i in 0..10:
        if i == 1:
            continue
        if i == 4:
            break
        out := push(out, i)
    return out
"""


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        (("collect", [1, "a"]), [1, "a"]),
        (("collect", {"k": 1, "j": [2]}), [["k", 1], ["j", [2]]]),
        (("collect", 3), [0, 1, 2]), (("collect", "ab"), ["a", "b"]), (("collect",), []),
        (("collect", None), []), (("collect", -2), []), (("collect", True), []),
        (("ranges", 0, 2), [0, 1, 0, -1, -2]), (("ranges", 0.5, 2.7), [0, 1, 0, -1, -2]),
        (("ranges", 3, 1), []), (("ranges", 0), []), (("ranges", 0, "x"), []),
        (("control",), [0, 2, 3]),
    ],
)  # fmt: skip
def test_for_loops(call: tuple, expected: list) -> None:
    assert load(LOOPS).call(*call)[0] == expected


def test_break_outside_a_loop_is_a_semantic_error() -> None:
    source = "fn f():\n    if true:\n        break\n"
    with pytest.raises(VPLSemanticError, match="'break' outside a loop in fn f") as err:
        load(source)
    assert err.value.line == 3


# ------------------------------------------------------------------- emit

EMITS = """
fn pulse(v):
    emit Pulse(a: v, b: nope, c: v + 1, a2: [v, nope])
    return 1

fn lazy(v):
    emit Never(bad: v + "x")
    return 2
"""


def test_emit_drops_missing_fields_and_keeps_order() -> None:
    value, events = load(EMITS).call("pulse", 5)
    assert value == 1
    assert [(e.event_type, list(e.fields.items())) for e in events] == [
        ("Pulse", [("a", 5), ("c", 6), ("a2", [5])])
    ]


def test_emit_outside_process_is_dropped_without_evaluating_fields() -> None:
    prog = load(EMITS)
    fn = prog.functions["lazy"]
    assert fn(EvalContext(Event("T", {}, 0)), {}, 1) == 2
    with pytest.raises(VPLRuntimeError):
        prog.call("lazy", 1)


# -------------------------------------------------------------- recursion

RECURSION = """
fn fib(n: int) -> int:
    if n < 2:
        return n
    return fib(n - 1) + fib(n - 2)

fn is_even(n):
    if n == 0:
        return true
    return is_odd(n - 1)

fn is_odd(n):
    if n == 0:
        return false
    return is_even(n - 1)
"""


def test_recursion_and_mutual_recursion() -> None:
    prog = load(RECURSION)
    assert prog.call("fib", 15)[0] == 610
    assert prog.call("fib", 15.0)[0] == 610.0
    assert prog.call("is_even", 10)[0] is True
    assert prog.call("is_odd", 7)[0] is True


# ------------------------------------------------------------- top level

TOPLEVEL = """
let base = 10
let a = twice(2)
const B = a + 1
var c = [a, B]
c := push(c, 9)

fn twice(x):
    return x * 2 + base
"""


def test_top_level_constants_are_evaluated_in_order() -> None:
    prog = load(TOPLEVEL)
    assert [prog.scope.constant_value(n) for n in ("base", "a", "B", "c")] == [
        10, 14, 15, [14, 15, 9]
    ]  # fmt: skip
    assert prog.call("twice", 1)[0] == 12
    assert prog.expr("c[2] + B") == 24


@pytest.mark.parametrize(
    ("source", "message", "line"),
    [
        ("let a = 1\nlet x = y\n", "top-level 'x' has no value", 2),
        ("const A = 1\nA := 2\n", "cannot assign to constant 'A'", 2),
        ('let s = "a" + 1\n', "cannot evaluate top-level 's'", 1),
        ("let x = f()\nfn f():\n    while true:\n        continue\n", "step budget", 1),
    ],
)
def test_top_level_errors(source: str, message: str, line: int) -> None:
    with pytest.raises(VPLSemanticError, match=message) as err:
        compile_toplevel(parse(source).decls, Scope(source=source), step_budget=1000)
    assert err.value.line == line


def test_evaluate_toplevel_returns_and_freezes_the_constants() -> None:
    scope = Scope()
    values = evaluate_toplevel(parse("let a = 1\nlet b = a + 1\n").decls, scope)
    assert values == {"a": 1, "b": 2}
    assert scope.constants_frozen
    with pytest.raises(RuntimeError):
        scope.set_constant("a", 5)
