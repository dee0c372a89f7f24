"""Lanes and expression closures: the data half of the SIMT executor.

A :class:`Lanes` holds one array per variable with one element per lane and
which lanes still run; :func:`compile_expr` turns a :mod:`kernels.ir`
expression into a closure evaluating it over every lane (retired ones too:
their values are garbage nobody reads, and only running lanes are checked).
Arithmetic follows VPL on int64/float64/bool; where Python's unbounded ints or
VPL's ``null`` would give another result, :class:`Fallback` is raised (see
:mod:`kernels.vectorize`). Closures and lanes belong to one run on one thread.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from kernels import ir

__all__ = ["DTYPES", "Fallback", "Fn", "Lanes", "check", "compile_expr", "full", "hidden"]

_MAX, _MIN = 2**63 - 1, -(2**63)
_EXACT = 2**53  # ints beyond this do not compare exactly with floats in numpy
_BOUND = 2**62
DTYPES = {"int": np.int64, "float": np.float64, "bool": np.bool_}

Fn = Callable[["Lanes"], Any]


class Fallback(Exception):  # noqa: N818 - a signal to the caller, not an error
    """This call cannot be represented exactly by the kernel: run the scalar path."""


class Lanes:
    """Variables (name → array over lanes) and which lanes still run.

    ``active`` is None when every lane runs, else a bool mask (``alive`` counts
    it); ``protect`` means a lane was retired by break/continue in the current
    iteration, so assignments must keep retired lanes' values; ``depth`` is the
    number of enclosing ``for`` expansions (order-key prefixes ``$p0..``).
    """

    __slots__ = ("active", "alive", "depth", "n", "protect", "vars")

    def __init__(self, variables: dict[str, np.ndarray], n: int, depth: int) -> None:
        self.vars, self.n, self.depth = variables, n, depth
        self.active: np.ndarray | None = None
        self.alive, self.protect = n, False

    def take(self, index: np.ndarray) -> Lanes:
        return Lanes({k: v[index] for k, v in self.vars.items()}, len(index), self.depth)

    def live(self) -> np.ndarray | None:
        return None if self.active is None else np.flatnonzero(self.active)

    def set_active(self, mask: np.ndarray | None) -> None:
        if mask is None:
            self.active, self.alive = None, self.n
            return
        self.alive = int(np.count_nonzero(mask))
        self.active = None if self.alive == self.n else mask

    def kill(self, rows: np.ndarray, code: int) -> None:
        """Retire the running lanes at positions *rows* with exit *code*.

        The active mask is replaced, never written in place (others may hold it);
        an all-retired set keeps an all-false mask so blocks stop.
        """
        ex = self.vars.get("$exit")
        if ex is None:
            ex = self.vars["$exit"] = np.zeros(self.n, np.int16)
        ex[rows] = code
        act = np.ones(self.n, np.bool_) if self.active is None else self.active.copy()
        act[rows] = False
        self.active, self.alive = act, self.alive - len(rows)


def full(value: Any, n: int) -> np.ndarray:
    return np.full(n, value, dtype=np.asarray(value).dtype)


def check(bad: Any, lanes: Lanes, why: str) -> None:
    if np.any(bad):
        act = lanes.active
        if act is None or np.any(bad & act):
            raise Fallback(why)


def hidden(name: str) -> bool:
    return name.startswith("$") and not name.startswith("$p")


# ---------------------------------------------------------------- expressions


def _int_add(op: str, node: ir.Bin, left: Fn, right: Fn) -> Fn:
    sign = 1 if op == "+" else -1
    if isinstance(node.right, ir.Const) and abs(int(node.right.value)) < _BOUND:
        b = int(node.right.value) * sign
        limit = np.int64(_MAX - b) if b >= 0 else np.int64(_MIN - b)
        delta = np.int64(b)

        def add_const(lanes: Lanes) -> Any:
            a = left(lanes)
            if (np.max(a) > limit) if b >= 0 else (np.min(a) < limit):
                check(a > limit if b >= 0 else a < limit, lanes, "int overflow")
            return a + delta

        return add_const

    def add(lanes: Lanes) -> Any:
        a, b = left(lanes), right(lanes)
        r = a + b if sign > 0 else a - b
        bad = ((a ^ r) & (b ^ r)) < 0 if sign > 0 else ((a ^ b) & (a ^ r)) < 0
        check(bad, lanes, "int overflow")
        return r

    return add


def _int_mul(left: Fn, right: Fn) -> Fn:
    def mul(lanes: Lanes) -> Any:
        a, b = left(lanes), right(lanes)
        estimate = np.abs(np.multiply(a, b, dtype=np.float64))
        check(estimate >= _BOUND, lanes, "int overflow")
        return a * b

    return mul


def _int_divmod(op: str, left: Fn, right: Fn) -> Fn:
    def divmod_(lanes: Lanes) -> Any:
        a, b = left(lanes), right(lanes)
        check(b == 0, lanes, "division by zero gives null")
        check((a == _MIN) & (b == -1), lanes, "int overflow")
        if op == "%":
            return np.fmod(a, b)
        q = a // b
        return q + ((q < 0) & (q * b != a))

    return divmod_


def _float_divmod(op: str, left: Fn, right: Fn) -> Fn:
    ufunc = np.true_divide if op == "/" else np.fmod

    def divmod_(lanes: Lanes) -> Any:
        a, b = left(lanes), right(lanes)
        check(b == 0, lanes, "division by zero gives null")
        return ufunc(a, b)

    return divmod_


_UFUNCS = {"+": np.add, "-": np.subtract, "*": np.multiply, "&": np.bitwise_and,
           "|": np.bitwise_or, "^": np.bitwise_xor, "==": np.equal, "!=": np.not_equal,
           "<": np.less, "<=": np.less_equal, ">": np.greater, ">=": np.greater_equal,
           "and": np.logical_and, "or": np.logical_or}  # fmt: skip


def _compare(node: ir.Cmp, left: Fn, right: Fn) -> Fn:
    ufunc = _UFUNCS[node.op]
    types = {node.left.type, node.right.type}
    if types != {"int", "float"}:
        return lambda lanes: ufunc(left(lanes), right(lanes))
    int_left = node.left.type == "int"

    def mixed(lanes: Lanes) -> Any:
        a, b = left(lanes), right(lanes)
        check(np.abs(a if int_left else b) > _EXACT, lanes, "int/float comparison beyond 2**53")
        return ufunc(a, b)

    return mixed


def compile_expr(node: ir.Expr) -> Fn:
    """A closure evaluating *node* over all lanes (retired ones included)."""
    if isinstance(node, ir.Const):
        value = DTYPES[node.type](node.value)
        return lambda lanes: value
    if isinstance(node, ir.Var):
        name = node.name
        return lambda lanes: lanes.vars[name]
    if isinstance(node, ir.Cmp):
        return _compare(node, compile_expr(node.left), compile_expr(node.right))
    if isinstance(node, ir.Logic):
        ufunc, left, right = _UFUNCS[node.op], compile_expr(node.left), compile_expr(node.right)
        return lambda lanes: ufunc(left(lanes), right(lanes))
    if isinstance(node, ir.Not):
        operand = compile_expr(node.operand)
        return lambda lanes: np.logical_not(operand(lanes))
    if isinstance(node, ir.Neg):
        operand = compile_expr(node.operand)
        if node.type == "float":
            return lambda lanes: np.negative(operand(lanes))

        def neg(lanes: Lanes) -> Any:
            a = operand(lanes)
            check(a == _MIN, lanes, "int overflow")
            return np.negative(a)

        return neg
    if isinstance(node, ir.Select):
        cond, then, orelse = (
            compile_expr(node.cond),
            compile_expr(node.then),
            compile_expr(node.orelse),
        )
        return lambda lanes: np.where(cond(lanes), then(lanes), orelse(lanes))
    if isinstance(node, ir.Bin):
        return _binary(node)
    message = f"not a kernel expression: {node!r}"
    raise TypeError(message)


def _binary(node: ir.Bin) -> Fn:
    left, right, op = compile_expr(node.left), compile_expr(node.right), node.op
    ints = node.left.type == node.right.type == "int"
    if ints and op in "+-":
        return _int_add(op, node, left, right)
    if ints and op == "*":
        return _int_mul(left, right)
    if op in "/%":
        return _int_divmod(op, left, right) if ints else _float_divmod(op, left, right)
    ufunc = _UFUNCS[op]
    return lambda lanes: ufunc(left(lanes), right(lanes))
