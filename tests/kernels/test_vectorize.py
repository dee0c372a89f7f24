"""The SIMT executor on hand-written IR: loop order, retirement, compaction, refusals."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kernels import ir
from kernels.vectorize import Fallback, Kernel

INT, FLT = "int", "float"


def var(name: str, t: str = INT) -> ir.Var:
    return ir.Var(name, t)


def const(value: object, t: str = INT) -> ir.Const:
    return ir.Const(value, t)  # type: ignore[arg-type]


def rows(kernel: Kernel, *args: object, budget: int = 10**6) -> list[tuple[str, dict]]:
    return [(b.event_type, r) for b in kernel.run(list(args), budget=budget) for r in b.to_dicts()]


HALF_K = ir.Bin("/", ir.Var("k", INT), ir.Const(2.0, FLT), FLT)


def loops_kernel(compact_below: float) -> Kernel:
    """for i in 0..n: k = 0; while k < i: k += 1; if k%2==0: continue; if k>5: break;
    emit W(i, k); then emit D(i, k)."""
    k_plus = ir.Assign("k", ir.Bin("+", var("k"), const(1), INT))
    even = ir.Cmp("==", ir.Bin("%", var("k"), const(2), INT), const(0))
    body = (
        k_plus,
        ir.If(((even, (ir.Continue(),)),)),
        ir.If(((ir.Cmp(">", var("k"), const(5)), (ir.Break(),)),)),
        ir.Emit(1, "W", (("i", var("i")), ("k", var("k")))),
    )
    loop = (
        ir.Assign("k", const(0)),
        ir.While(ir.Cmp("<", var("k"), var("i")), body, 0),
        ir.Emit(
            2,
            "D",
            (
                ("i", var("i")),
                ("k", var("k")),
                ("half", ir.Bin("/", var("k"), const(2.0, FLT), FLT)),
            ),
        ),  # noqa: E501
    )
    return Kernel([("n", INT)], [ir.For("i", const(0), var("n"), False, loop, 0)],
                  compact_below=compact_below)  # fmt: skip


def loops_python(n: int) -> list[tuple[str, dict]]:
    out: list[tuple[str, dict]] = []
    for i in range(n):
        k = 0
        while k < i:
            k += 1
            if k % 2 == 0:
                continue
            if k > 5:
                break
            out.append(("W", {"i": i, "k": k}))
        out.append(("D", {"i": i, "k": k, "half": k / 2.0}))
    return out


@pytest.mark.parametrize("compact_below", [0.0, 0.5, 1.01])
def test_while_break_continue_and_emit_order_match_sequential_python(compact_below: float) -> None:
    kernel = loops_kernel(compact_below)
    for n in (0, 1, 2, 9, 14):
        assert rows(kernel, n) == loops_python(n)


def test_batches_are_typed_columns_cut_into_runs_of_one_site() -> None:
    batches = loops_kernel(0.5).run([4], budget=100, timestamp=77)
    kinds = [kind for kind, _ in loops_python(4)]
    runs = [k for i, k in enumerate(kinds) if i == 0 or kinds[i - 1] != k]
    assert [b.event_type for b in batches] == runs and len(runs) < len(kinds)
    assert batches[0].columns["half"].dtype == np.float64 and batches[0].timestamp == 77
    assert batches[0].columns["i"].dtype == np.int64


@settings(max_examples=60, deadline=None)
@given(a=st.integers(-(2**62), 2**62), b=st.integers(-50, 50))
def test_int_division_truncates_and_modulo_takes_the_dividend_sign(a: int, b: int) -> None:
    q_expr = ir.Bin("/", var("a"), var("b"), INT)
    r_expr = ir.Bin("%", var("a"), var("b"), INT)
    kernel = Kernel([("a", INT), ("b", INT)], [ir.Emit(1, "Q", (("q", q_expr), ("r", r_expr)))])
    if b == 0:
        with pytest.raises(Fallback, match="division by zero"):
            kernel.run([a, b], budget=10)
        return
    q = abs(a) // abs(b) * (1 if (a < 0) == (b < 0) else -1)
    r = abs(a) % abs(b) * (-1 if a < 0 else 1)
    assert rows(kernel, a, b) == [("Q", {"q": q, "r": r})]


@pytest.mark.parametrize(
    ("expr", "args"),
    [
        (ir.Bin("+", var("a"), var("b"), INT), [2**62, 2**62]),
        (ir.Bin("-", var("a"), const(2), INT), [-(2**63) + 1, 0]),
        (ir.Bin("*", var("a"), var("b"), INT), [2**32, 2**31]),
        (ir.Neg(var("a"), INT), [-(2**63), 0]),
        (ir.Cmp("<", var("a"), ir.Bin("+", var("b"), const(0.5, FLT), FLT)), [2**53 + 1, 0]),
    ],
    ids=["add", "sub-const", "mul", "neg", "mixed-compare"],
)
def test_results_python_ints_would_give_differently_are_refused(expr: ir.Expr, args: list) -> None:
    kernel = Kernel([("a", INT), ("b", INT)], [ir.Emit(1, "X", (("v", expr),))])
    with pytest.raises(Fallback):
        kernel.run(args, budget=10)


def test_overflow_in_a_retired_lane_is_not_a_refusal() -> None:
    # lanes with i >= 2 have returned before the multiplication overflows for them
    body = (
        ir.If(((ir.Cmp(">=", var("i"), const(2)), (ir.Continue(),)),)),
        ir.Emit(1, "X", (("v", ir.Bin("*", var("i"), var("big"), INT)),)),
    )
    kernel = Kernel([("big", INT)], [ir.For("i", const(0), const(5), False, body, 0)])
    assert rows(kernel, 2**61) == [("X", {"v": 0}), ("X", {"v": 2**61})]


def test_budget_counts_while_iterations_across_for_iterations_of_one_frame() -> None:
    body = (ir.Assign("k", const(0)),
            ir.While(ir.Cmp("<", var("k"), const(10)),
                     (ir.Assign("k", ir.Bin("+", var("k"), const(1), INT)),), 0))  # fmt: skip
    kernel = Kernel([("n", INT)], [ir.For("i", const(0), var("n"), False, body, 0)])
    assert kernel.run([3], budget=30) == []
    with pytest.raises(Fallback, match="budget"):
        kernel.run([4], budget=30)
    with pytest.raises(Fallback, match="longer than the step budget"):
        kernel.run([31], budget=30)


def test_float_range_bounds_truncate_and_non_finite_ones_give_no_iteration() -> None:
    body = (ir.Emit(1, "INT", (("i", var("i")),)),)
    kernel = Kernel(
        [("a", FLT), ("b", FLT)], [ir.For("i", var("a", FLT), var("b", FLT), True, body, 0)]
    )
    assert [r["i"] for _, r in rows(kernel, -1.7, 2.9)] == [-1, 0, 1, 2]
    assert rows(kernel, 0.0, float("inf")) == []
