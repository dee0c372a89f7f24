"""Kernels: numexpr results equal Python's operators on the same values whenever exact()."""

from __future__ import annotations

import math
import operator
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kernels.predicates import Node, Unsupported, col, compile_kernel, const

PY = {
    "+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv,
    "==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le,
    ">": operator.gt, ">=": operator.ge,
}  # fmt: skip


def reference(node: Node, row: dict[str, Any]) -> Any:
    """The node's value on one row, by Python's own operators."""
    if node.op == "col":
        return row[node.value]
    if node.op == "const":
        return node.value
    args = [reference(a, row) for a in node.args]
    if node.op == "neg":
        return -args[0]
    if node.op == "not":
        return not args[0]
    if node.op == "and":
        return args[0] and args[1]
    if node.op == "or":
        return args[0] or args[1]
    return PY[node.op](*args)


def same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    return type(a) is type(b) and a == b


def columns(rows: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    out = {
        "x": np.array([r["x"] for r in rows], dtype=np.int64),
        "y": np.array([r["y"] for r in rows], dtype=np.float64),
        "b": np.array([r["b"] for r in rows], dtype=np.bool_),
        "s": np.empty(len(rows), dtype=object),
    }
    out["s"][:] = [r["s"] for r in rows]
    return out


def check(node: Node, rows: list[dict[str, Any]]) -> bool:
    """Compare the kernel with the reference; return whether the kernel ran (and was exact)."""
    try:
        kernel = compile_kernel(node)
    except Unsupported as exc:  # a division, or constants folding to a non-finite literal
        assert "/" in repr(node) or "literal" in str(exc), (node, exc)
        return False
    cols = columns(rows)
    if not kernel.exact(cols):
        return False
    got = kernel(cols, len(rows)).tolist()
    try:
        expected = [reference(node, r) for r in rows]
    except ZeroDivisionError:
        # Python's operators have no answer where the kernel folded the division away
        # (``x / 0.0 == 1 and False``); the engine-level differential tests compare those
        # with VPL's own semantics (tests/runtime/test_batch.py).
        return False
    assert all(same(g, e) for g, e in zip(got, expected, strict=True)), (node, got, expected)
    if node.kind == "b":
        assert kernel.mask(cols, len(rows)).tolist() == expected
    return True


# ----------------------------------------------------------------- strategies

INT_VALUES = st.one_of(st.integers(-100, 100), st.integers(-(2**63), 2**63 - 1))
FLOAT_VALUES = st.one_of(
    st.floats(-1e6, 1e6, width=64), st.sampled_from([0.0, -0.0, math.nan, math.inf, 1e308])
)
ROWS = st.lists(
    st.fixed_dictionaries(
        {
            "x": INT_VALUES,
            "y": FLOAT_VALUES,
            "b": st.booleans(),
            "s": st.sampled_from(["", "a", "ab", "b", "Z", "é"]),
        }
    ),  # fmt: skip
    min_size=1,
    max_size=30,
)


DIVISORS = [col("y", "f"), const(0.25), const(-1.5), const(3)]


def numbers() -> st.SearchStrategy[Node]:
    leaves = st.one_of(
        st.just(col("x", "i")),
        st.just(col("y", "f")),
        st.integers(-5, 5).map(const),
        st.sampled_from([0.5, -2.0, 3.25, 1e300]).map(const),
    )

    def extend(sub: st.SearchStrategy[Node]) -> st.SearchStrategy[Node]:
        def arith(t: tuple[Node, str, Node]) -> Node:
            a, op, b = t
            if op == "/":
                return Node("/", "f", (a, b))
            return Node(op, "i" if a.kind == b.kind == "i" else "f", (a, b))

        return st.one_of(
            st.tuples(sub, st.sampled_from(list("+-*")), sub).map(arith),
            st.tuples(sub, st.just("/"), st.sampled_from(DIVISORS)).map(arith),
            sub.map(lambda a: Node("neg", a.kind, (a,))),
        )

    return st.recursive(leaves, extend, max_leaves=5)


def predicates() -> st.SearchStrategy[Node]:
    ops = ["==", "!=", "<", "<=", ">", ">="]
    atoms = st.one_of(
        st.tuples(numbers(), st.sampled_from(ops), numbers()).map(
            lambda t: Node(t[1], "b", (t[0], t[2]))
        ),
        st.tuples(st.sampled_from(ops), st.sampled_from(["a", "b", ""])).map(
            lambda t: Node(t[0], "b", (col("s", "s"), const(t[1])))
        ),
        st.just(col("b", "b")),
        st.just(Node("==", "b", (col("b", "b"), const(True)))),
    )

    def extend(sub: st.SearchStrategy[Node]) -> st.SearchStrategy[Node]:
        return st.one_of(
            st.tuples(sub, st.sampled_from(["and", "or"]), sub).map(
                lambda t: Node(t[1], "b", (t[0], t[2]))
            ),
            sub.map(lambda a: Node("not", "b", (a,))),
        )

    return st.recursive(atoms, extend, max_leaves=4)


@settings(max_examples=300, deadline=None)
@given(node=numbers(), rows=ROWS)
def test_arithmetic_matches_python(node: Node, rows: list[dict[str, Any]]) -> None:
    check(node, rows)


@settings(max_examples=300, deadline=None)
@given(node=predicates(), rows=ROWS)
def test_predicates_match_python(node: Node, rows: list[dict[str, Any]]) -> None:
    check(node, rows)


# ----------------------------------------------------------------- guards


def rows_of(**cols: list[Any]) -> list[dict[str, Any]]:
    n = len(next(iter(cols.values())))
    base = {"x": [0] * n, "y": [0.0] * n, "b": [False] * n, "s": [""] * n}
    base.update(cols)
    return [{k: v[i] for k, v in base.items()} for i in range(n)]


def test_int64_overflow_is_not_exact() -> None:
    node = Node("*", "i", (col("x", "i"), const(4)))
    assert not check(node, rows_of(x=[2**62, 1]))
    assert check(node, rows_of(x=[2**60, -(2**60)]))


def test_int_float_compare_beyond_2_53_is_not_exact() -> None:
    node = Node("==", "b", (col("x", "i"), col("y", "f")))
    assert not check(node, rows_of(x=[2**53 + 1], y=[2.0**53]))
    assert check(node, rows_of(x=[2**53, 3], y=[2.0**53, 3.0]))


def test_zero_divisor_column_is_not_exact() -> None:
    node = Node("/", "f", (col("x", "i"), col("y", "f")))
    assert not check(node, rows_of(x=[1, 2], y=[2.0, -0.0]))
    assert check(node, rows_of(x=[1, 2], y=[2.0, math.nan]))


@pytest.mark.parametrize(
    "node",
    [
        Node("+", "i", (col("x", "i"), col("y", "f"))),  # int + float is a float
        Node("/", "f", (col("x", "i"), const(2))),  # int / int: truncating, not numpy's
        Node("/", "f", (col("y", "f"), const(0.0))),  # division by zero
        Node("/", "f", (col("y", "f"), Node("neg", "f", (col("y", "f"),)))),
        Node("<", "b", (col("b", "b"), col("b", "b"))),  # bools have no order
        Node("==", "b", (col("s", "s"), col("x", "i"))),  # unrelated kinds
        Node("and", "b", (col("x", "i"), col("b", "b"))),
        const(2**64),
        Node(">", "b", (col("y", "f"), const(math.inf))),
    ],
)
def test_unsupported_trees_are_refused(node: Node) -> None:
    with pytest.raises(Unsupported):
        compile_kernel(node)


def test_mask_reuses_its_buffer_and_inputs_are_positional() -> None:
    node = Node(">", "b", (col("temperature", "f"), const(100)))
    kernel = compile_kernel(node)
    assert kernel.inputs == (("temperature", "f"),)
    first = kernel.mask({"temperature": np.array([101.0, 99.0, 150.0])}, 3)
    assert first.tolist() == [True, False, True]
    second = kernel.mask({"temperature": np.array([1.0, 200.0])}, 2)
    assert second.tolist() == [False, True]
    assert np.shares_memory(first, second)


def test_a_decisive_constant_after_a_division_is_not_folded_away() -> None:
    # Python evaluates ``x / y > 0`` first: a zero y fails per row, so no kernel
    divides = Node(">", "b", (Node("/", "f", (col("x", "f"), col("y", "f"))), const(0.0)))
    with pytest.raises(Unsupported):
        compile_kernel(Node("and", "b", (divides, const(False))))
    with pytest.raises(Unsupported):
        compile_kernel(Node("or", "b", (divides, const(True))))
    # a constant on the left decides before the division runs: folding is exact
    assert compile_kernel(Node("and", "b", (const(False), divides))).node == const(False)
    kept = compile_kernel(Node("and", "b", (divides, const(True))))
    assert kept.node.op == ">"


def test_a_negative_zero_literal_is_not_merged_with_zero() -> None:
    # numexpr keeps one constant per value, so -0.0 next to a 0 would lose its sign
    node = Node("*", "f", (Node("+", "f", (col("b", "f"), const(0))), const(-0.0)))
    with pytest.raises(Unsupported):
        compile_kernel(node)
