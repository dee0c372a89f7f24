"""Batch filters and projections: typed expression trees evaluated over columns with numexpr.

A :class:`Node` is a typed expression over named columns: ``col`` (a column),
``const`` (a scalar), ``neg``/``not``, arithmetic ``+ - * /``, the six
comparisons and ``and``/``or``. Every node has a *kind*: ``"i"`` (int64),
``"f"`` (float64), ``"b"`` (bool), ``"s"`` (str, an object array of Python
strings) or ``"n"`` (the constant None). The builder of the tree (the
compiler) has already applied the source language's typing; this module
checks only that the kinds fit the operators: arithmetic on ``i``/``f``
(``i op i`` gives ``i``; ``/`` needs a float operand and gives ``f``),
comparisons of two numbers, two strings or (``==``/``!=``) two bools, logic on
bools.

:func:`compile_kernel` compiles a tree once into a :class:`Kernel`: the
numeric and boolean part becomes one ``numexpr.NumExpr`` program over
positional inputs ``v0, v1, ...`` (user names never reach numexpr; literals
are ``repr`` of checked ints and finite floats), string comparisons run in
numpy on the object arrays first and enter the program as bool inputs. The
results are those of Python's own operators on the same values (unbounded
ints, exact int/float comparisons, IEEE floats) whenever :meth:`Kernel.exact`
says so for the batch at hand: it returns False when int64 arithmetic could
overflow, when an int compared with a float could exceed 2**53 (numexpr
compares through float64) or when a column divisor holds a zero. Callers run
such a batch some other way.

numexpr runs on one thread per process (``set_num_threads(1)`` at import):
parallelism comes from running several processes. A kernel belongs to one
thread: :meth:`Kernel.mask` reuses an output buffer between calls.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numexpr
import numpy as np

__all__ = [
    "KINDS",
    "Kernel",
    "Node",
    "Unsupported",
    "col",
    "compile_kernel",
    "const",
    "divides",
    "kind_of",
]

numexpr.set_num_threads(1)

#: Kind → the numpy dtype of its columns.
KINDS: dict[str, Any] = {"i": np.int64, "f": np.float64, "b": np.bool_, "s": object, "n": object}
_SIGNATURE = {"i": np.int64, "f": np.float64, "b": bool}  # numexpr's names for the kinds
_INT64 = (-(2**63), 2**63 - 1)
_EXACT_INT = 2**53  # ints up to this magnitude convert to float64 exactly
_ARITH = frozenset("+-*/")
_COMPARE = frozenset({"==", "!=", "<", "<=", ">", ">="})
_NE_OPS = {"and": "&", "or": "|"}
_RUN = {"order": "K", "casting": "safe", "ex_uses_vml": False}
_STR_OPS = {
    "==": np.equal, "!=": np.not_equal, "<": np.less, "<=": np.less_equal,
    ">": np.greater, ">=": np.greater_equal,
}  # fmt: skip


class Unsupported(ValueError):
    """The tree cannot be compiled (a kind mismatch, a literal numexpr cannot hold)."""


@dataclass(frozen=True, slots=True)
class Node:
    """One typed expression node (see the module docstring).

    ``value`` is the column name of a ``col`` node and the Python value of a
    ``const`` node; ``args`` are the operands of the others.
    """

    op: str
    kind: str
    args: tuple[Node, ...] = ()
    value: Any = None


def col(name: str, kind: str) -> Node:
    """A column reference."""
    return Node("col", kind, value=name)


def const(value: Any) -> Node:
    """A constant; its kind follows the Python type of *value*."""
    return Node("const", kind_of(value), value=value)


def kind_of(value: Any) -> str:
    """The kind of a Python scalar (``bool`` is not a number); Unsupported otherwise."""
    kind = {int: "i", float: "f", bool: "b", str: "s", type(None): "n"}.get(type(value))
    if kind is None:
        message = f"no kind for a {type(value).__name__} value"
        raise Unsupported(message)
    return kind


def _check(node: Node) -> None:
    """Raise Unsupported unless the kinds of *node* and its operands fit its operator."""
    kinds = tuple(a.kind for a in node.args)
    op = node.op
    if op in ("col", "const"):
        if op == "const" and node.kind != kind_of(node.value):
            message = f"constant {node.value!r} is not of kind {node.kind!r}"
            raise Unsupported(message)
        return
    numeric = all(k in "if" for k in kinds)
    if op == "neg":
        ok = numeric and node.kind == kinds[0]
    elif op == "not":
        ok = kinds == ("b",) and node.kind == "b"
    elif op in ("and", "or"):
        ok = kinds == ("b", "b") and node.kind == "b"
    elif op == "/":
        ok = numeric and "f" in kinds and node.kind == "f"
    elif op in _ARITH:
        ok = numeric and node.kind == ("i" if kinds == ("i", "i") else "f")
    elif op in _COMPARE:
        same = kinds in (("s", "s"), ("b", "b")) and (kinds[0] == "s" or op in ("==", "!="))
        ok = node.kind == "b" and (numeric or same)
    else:
        ok = False
    if not ok or len(kinds) != (1 if op in ("neg", "not") else 2):
        message = f"operator {op!r} on kinds {kinds} giving {node.kind!r} is not supported"
        raise Unsupported(message)
    for arg in node.args:
        _check(arg)


_PY_OPS = {
    "+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv,
    "==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le,
    ">": operator.gt, ">=": operator.ge, "and": lambda a, b: a and b, "or": lambda a, b: a or b,
    "neg": operator.neg, "not": operator.not_,
}  # fmt: skip


def _fold(node: Node) -> Node:
    """*node* with every operator on constants replaced by Python's result (exact ints)."""
    if not node.args:
        return node
    args = tuple(_fold(a) for a in node.args)
    if all(a.op == "const" for a in args):
        try:
            value = _PY_OPS[node.op](*(a.value for a in args))
        except (ArithmeticError, ValueError) as exc:
            message = f"constant operation {node.op!r} fails: {exc}"
            raise Unsupported(message) from None
        return Node("const", node.kind, value=value)
    if node.op in ("and", "or"):  # a bool constant decides or drops out (numexpr has no `True &`)
        for i, arg in enumerate(args):
            if arg.op == "const":
                if arg.value is not (node.op == "or"):
                    return args[1 - i]
                if i == 1 and divides(args[0]):
                    # Python evaluates the left side first: its division may fail per row
                    message = f"{node.op!r} decided by its right side skips a division"
                    raise Unsupported(message)
                return arg
    return Node(node.op, node.kind, args, node.value)


def divides(node: Node) -> bool:
    """Whether *node* divides by something that is not a constant (per event, such a
    division may give null, and an operation on null fails)."""
    if node.op == "/" and node.args[1].op != "const":
        return True
    return any(divides(a) for a in node.args)


def _literal(value: Any) -> str:
    if type(value) is bool:
        return repr(value)
    if type(value) is int:
        if not _INT64[0] <= value <= _INT64[1]:
            message = f"int literal {value!r} does not fit in int64"
            raise Unsupported(message)
        return f"({value!r})" if value < 0 else repr(value)
    if type(value) is float and value == 0.0 and math.copysign(1.0, value) < 0:
        # numexpr keeps one constant per value: -0.0 would merge with a 0 elsewhere
        message = "a -0.0 literal cannot keep its sign in a numexpr program"
        raise Unsupported(message)
    if type(value) is float and math.isfinite(value):
        text = repr(value)
        return f"({text})" if text.startswith("-") else text
    message = f"literal {value!r} cannot enter a numexpr program"
    raise Unsupported(message)


class _Program:
    """Builds the numexpr text: inputs numbered in order of first use."""

    def __init__(self) -> None:
        self.inputs: list[tuple[str, str]] = []  # (column name, kind) per numeric/bool input
        self.strings: list[Node] = []  # string comparisons, inputs after the columns
        self.int_guards: list[Node] = []  # int nodes whose range must fit (see Kernel.exact)
        self.exact_guards: list[Node] = []  # int nodes compared with floats
        self.nonzero: list[str] = []  # column divisors

    def text(self, node: Node) -> str:
        op = node.op
        if op == "col":
            key = (node.value, node.kind)
            if key not in self.inputs:
                self.inputs.append(key)
            return f"v{self.inputs.index(key)}"
        if op == "const":
            return _literal(node.value)
        if op in _COMPARE and node.args[0].kind == "s":
            self.strings.append(node)
            return f"s{len(self.strings) - 1}"
        args = [self.text(a) for a in node.args]
        if op == "neg":
            if node.kind == "i":
                self.int_guards.append(node)
            return f"(-{args[0]})"
        if op == "not":
            return f"(~{args[0]})"
        if op in _COMPARE and {a.kind for a in node.args} == {"i", "f"}:
            self.exact_guards.extend(a for a in node.args if a.kind == "i")
        if op == "/":
            divisor = node.args[1]
            if divisor.op == "col":
                self.nonzero.append(divisor.value)
            elif divisor.op != "const" or divisor.value == 0:
                message = "a divisor must be a non-zero constant or a column"
                raise Unsupported(message)
        elif op in _ARITH and node.kind == "i":
            self.int_guards.append(node)
        return f"({args[0]} {_NE_OPS.get(op, op)} {args[1]})"


def _interval(node: Node, bounds: Mapping[str, tuple[int, int]]) -> tuple[int, int]:
    """The range of an int-kind *node* given the columns' (min, max)."""
    if node.op == "col":
        return bounds[node.value]
    if node.op == "const":
        return node.value, node.value
    if node.op == "neg":
        lo, hi = _interval(node.args[0], bounds)
        return -hi, -lo
    (alo, ahi), (blo, bhi) = (_interval(a, bounds) for a in node.args)
    if node.op == "+":
        return alo + blo, ahi + bhi
    if node.op == "-":
        return alo - bhi, ahi - blo
    corners = (alo * blo, alo * bhi, ahi * blo, ahi * bhi)
    return min(corners), max(corners)


def _int_columns(node: Node, out: set[str]) -> set[str]:
    if node.op == "col" and node.kind == "i":
        out.add(node.value)
    for arg in node.args:
        _int_columns(arg, out)
    return out


class Kernel:
    """A compiled :class:`Node`: call it on columns of equal length.

    ``inputs`` are the ``(column name, kind)`` pairs it reads; ``kind`` the
    kind of its result. Columns are passed as a mapping name → 1-D array; the
    arrays are never modified. Call :meth:`exact` first on each batch (see
    the module docstring).
    """

    __slots__ = ("_buffer", "_int_cols", "_program", "_run", "inputs", "kind", "node")

    def __init__(self, node: Node) -> None:
        _check(node)
        node = _fold(node)
        _check(node)
        if node.op == "const" and node.kind in "if":
            _literal(node.value)  # an int beyond int64 or a non-finite float has no column
        self.node = node
        self.kind = node.kind
        program = _Program()
        self._program = program
        self._buffer = np.empty(0, dtype=np.bool_)
        self._run = None
        if node.op not in ("col", "const"):
            text = program.text(node)
            signature = [(f"v{i}", _SIGNATURE[k]) for i, (_, k) in enumerate(program.inputs)]
            signature += [(f"s{i}", bool) for i in range(len(program.strings))]
            # numexpr's default optimisation turns ``x / c`` into ``x * (1 / c)``: not exact
            self._run = numexpr.NumExpr(text, signature=signature, optimization="none")
        names = {name: kind for name, kind in program.inputs}
        for string_cmp in program.strings:
            for arg in string_cmp.args:
                if arg.op == "col":
                    names[arg.value] = "s"
        if node.op == "col":
            names[node.value] = node.kind
        self.inputs = tuple(names.items())
        guarded = set()
        for guard in program.int_guards + program.exact_guards:
            _int_columns(guard, guarded)
        self._int_cols = tuple(sorted(guarded))

    def __repr__(self) -> str:
        return f"Kernel({self.node!r})"

    def exact(self, columns: Mapping[str, np.ndarray]) -> bool:
        """True when evaluating on *columns* gives exactly Python's results."""
        program = self._program
        for name in program.nonzero:
            if not columns[name].all():  # a zero (or -0.0) divisor: Python's rules differ
                return False
        if not self._int_cols:
            return True
        bounds = {n: (int(columns[n].min()), int(columns[n].max())) for n in self._int_cols}
        lo, hi = _INT64
        for node in program.int_guards:
            low, high = _interval(node, bounds)
            if low < lo or high > hi:
                return False
        for node in program.exact_guards:
            low, high = _interval(node, bounds)
            if low < -_EXACT_INT or high > _EXACT_INT:
                return False
        return True

    def _args(self, columns: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        program = self._program
        args = [columns[name] for name, _ in program.inputs]
        for node in program.strings:
            a, b = (columns[x.value] if x.op == "col" else x.value for x in node.args)
            args.append(np.asarray(_STR_OPS[node.op](a, b), dtype=np.bool_))
        return args

    def __call__(self, columns: Mapping[str, np.ndarray], n: int) -> np.ndarray:
        """The result for *n* rows as a new array (a column node returns the column)."""
        node = self.node
        if node.op == "col":
            return columns[node.value]
        if node.op == "const":
            return np.full(n, node.value, dtype=KINDS[node.kind])
        return self._run(*self._args(columns), out=None, **_RUN)  # type: ignore[misc]

    def mask(self, columns: Mapping[str, np.ndarray], n: int) -> np.ndarray:
        """A bool result for *n* rows, in a buffer reused by the next call of this kernel."""
        node = self.node
        if node.kind != "b":
            message = f"a mask needs a bool expression, not kind {node.kind!r}"
            raise Unsupported(message)
        if node.op != "const":
            if node.op == "col":
                return columns[node.value]
            if len(self._buffer) < n:
                self._buffer = np.empty(max(n, 2 * len(self._buffer)), dtype=np.bool_)
            out = self._buffer[:n]
            return self._run(*self._args(columns), out=out, **_RUN)  # type: ignore[misc]
        if len(self._buffer) < n:
            self._buffer = np.empty(max(n, 2 * len(self._buffer)), dtype=np.bool_)
        out = self._buffer[:n]
        out.fill(node.value)
        return out


def compile_kernel(node: Node) -> Kernel:
    """Compile *node* (raises :class:`Unsupported` when it cannot run here)."""
    return Kernel(node)
