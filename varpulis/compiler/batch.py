"""Lower stream operations to column kernels when the batch gives the same results.

:func:`compile_chain` turns a stream's operations into :class:`BatchStep`
items when every operation is ``.where``/``.having``, ``.select`` or ``.emit``
(or one that does nothing per event) and every expression is built only from
literals, scalar constants, event fields, unary ``-``/``not``, ``+ - * /``,
the six comparisons and ``and``/``or``; otherwise it returns None and the
stream runs one event at a time.

Typing happens per batch, when the kinds of the fields are known
(:meth:`BatchExpr.kernel`, cached per kind signature): it follows the scalar
semantics of :mod:`varpulis.compiler.values` (DESIGN §4.1) and gives up —
returns None, so that batch runs per event — wherever numpy's would differ:
``/`` with two int operands (truncating division), a divisor that is neither a
non-zero constant nor a column, ``%``, ``**``, string concatenation,
arithmetic that could raise or give MISSING (a type mix), ``and``/``or`` on
non-bools, a field the batch does not have. Comparisons of unrelated kinds
fold to their constant result (``==`` false, ``!=`` true, ordering false), as
the scalar operators give; the kernel itself guards int overflow, inexact
int/float comparisons and zero divisors per batch (``Kernel.exact``). Field
names reach the kernel as column keys and literals as checked Python values:
no user text is ever compiled as code.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from kernels.predicates import Kernel, Node, Unsupported, col, compile_kernel, const, divides
from varpulis.compiler import values as V
from varpulis.compiler.scope import Scope
from varpulis.compiler.values import MISSING
from varpulis.errors import VPLRuntimeError
from varpulis.lang import ast

__all__ = ["NO_OP", "BatchExpr", "BatchStep", "compile_chain", "supported"]

#: Operations that do nothing per event on an inline stream (read elsewhere).
NO_OP = frozenset({"context", "from"})
_PROJECT = frozenset({"select", "emit"})
_ARITH = {"+": V.op_add, "-": V.op_sub, "*": V.op_mul, "/": V.op_div}
_COMPARE = {"==": V.op_eq, "!=": V.op_ne, "<": V.op_lt, "<=": V.op_le, ">": V.op_gt,
            ">=": V.op_ge}  # fmt: skip
_SCALARS = (int, float, str, bool, type(None))


class BatchExpr:
    """One expression of a chain, typed and compiled per kind signature.

    ``fields`` are the event fields it reads, in first-use order; ``predicate``
    tells whether it is a filter (a result that is not a bool filters
    everything out, as a non-True value does per event). Not thread-safe: the
    cache belongs to the engine's thread.
    """

    __slots__ = ("_cache", "fields", "node", "predicate", "scope")

    def __init__(self, node: Any, scope: Scope, *, predicate: bool = False) -> None:
        self.node = node
        self.scope = scope
        self.predicate = predicate
        names: dict[str, None] = {}
        _collect_fields(node, scope, names)
        self.fields = tuple(names)
        self._cache: dict[tuple[str, ...], Kernel | None] = {}

    def __repr__(self) -> str:
        return f"BatchExpr(fields={self.fields})"

    def kernel(self, kinds: Sequence[str]) -> Kernel | None:
        """The kernel for fields of these kinds (aligned with ``fields``), or None."""
        key = tuple(kinds)
        try:
            return self._cache[key]
        except KeyError:
            pass
        kernel = None
        typed = _typed(self.node, dict(zip(self.fields, key, strict=True)), self.scope)
        if typed is not None and self.predicate and typed.kind != "b":
            # only the bool True passes a filter; a division in it may still fail per event
            typed = None if divides(typed) else const(False)
        if typed is not None:
            try:
                kernel = compile_kernel(typed)
            except Unsupported:
                kernel = None
        self._cache[key] = kernel
        return kernel


class BatchStep:
    """One operation of a batchable chain.

    ``op`` is ``"where"``, ``"select"`` or ``"emit"``. A where step has
    ``expr``; a projection has ``items``: ``(key, value)`` pairs in output
    order, where a value is a field name (the field is copied as it is, any
    type, left out where missing) or a :class:`BatchExpr`. ``event_type`` is
    the type of an emit's outputs (None for select: the input type is kept).
    """

    __slots__ = ("event_type", "expr", "items", "op")

    def __init__(
        self,
        op: str,
        *,
        expr: BatchExpr | None = None,
        items: tuple[tuple[str, str | BatchExpr], ...] = (),
        event_type: str | None = None,
    ) -> None:
        self.op, self.expr, self.items, self.event_type = op, expr, items, event_type

    def __repr__(self) -> str:
        return f"BatchStep({self.op!r}, expr={self.expr!r}, items={self.items!r})"


def compile_chain(ops: Sequence[ast.Op], scope: Scope, stream: str) -> tuple[BatchStep, ...] | None:
    """The batch steps for a stream's *ops*, up to its one ``.emit``; None if not batchable.

    Steps after the emit are dropped: a batched stream forwards nothing and
    its steps cannot fail, so they cannot change its outputs. A stream without
    an emit has no outputs: its chain is empty.
    """
    steps: list[BatchStep] = []
    emits = 0
    for op in ops:
        if not isinstance(op, ast.Op):
            return None
        if op.name in NO_OP:
            continue
        if op.name in ("where", "having"):
            if len(op.args) != 1 or op.kwargs or not supported(op.args[0], scope):
                return None
            steps.append(BatchStep("where", expr=BatchExpr(op.args[0], scope, predicate=True)))
        elif op.name in _PROJECT:
            step = _projection(op, scope, stream)
            if step is None:
                return None
            emits += op.name == "emit"
            steps.append(step)
        else:
            return None
    if emits > 1:
        return None
    last = next((i for i, s in enumerate(steps) if s.op == "emit"), None)
    return tuple(steps[: last + 1]) if last is not None else ()


def _projection(op: ast.Op, scope: Scope, stream: str) -> BatchStep | None:
    pairs: list[tuple[str, Any]] = []
    event_type = None
    if op.name == "select":
        if not all(isinstance(a, ast.Name) for a in op.args):
            return None
        pairs.extend((a.id, ast.Name(a.id, a.span)) for a in op.args)
        pairs.extend(op.kwargs)
    else:
        if op.args:
            return None
        event_type = stream
        for key, value in op.kwargs:
            if key == "context" and isinstance(value, ast.Name):
                return None  # routes to another context: not a plain output
            if key == "event_type":
                typed = _typed(value, {}, scope) if supported(value, scope) else None
                if typed is None or typed.op != "const":
                    return None  # a per-event type
                event_type = typed.value if isinstance(typed.value, str) else stream
            else:
                pairs.append((key, value))
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        return None  # duplicate keys keep the last non-missing value: per event
    items: list[tuple[str, str | BatchExpr]] = []
    for key, value in pairs:
        if isinstance(value, ast.Name) and not scope.is_constant(value.id):
            items.append((key, value.id))
        elif supported(value, scope):
            items.append((key, BatchExpr(value, scope)))
        else:
            return None
    return BatchStep(op.name, items=tuple(items), event_type=event_type)


# ------------------------------------------------------------------ analysis


def supported(node: Any, scope: Scope) -> bool:
    """Whether *node* uses only what typing may lower (kinds decide the rest)."""
    if isinstance(node, (ast.Literal, ast.Duration)):
        return True
    if isinstance(node, ast.Name):
        if scope.is_constant(node.id):
            return scope.constants_frozen and type(scope.constant_value(node.id)) in _SCALARS
        return True
    if isinstance(node, ast.Unary):
        return node.op in ("-", "not") and supported(node.operand, scope)
    if isinstance(node, ast.Binary):
        op = " ".join(node.op.split())
        ok = op in _ARITH or op in _COMPARE or op in ("and", "or")
        return ok and supported(node.left, scope) and supported(node.right, scope)
    return False


def _collect_fields(node: Any, scope: Scope, out: dict[str, None]) -> None:
    if isinstance(node, ast.Name):
        if not scope.is_constant(node.id):
            out[node.id] = None
    elif isinstance(node, ast.Unary):
        _collect_fields(node.operand, scope, out)
    elif isinstance(node, ast.Binary):
        _collect_fields(node.left, scope, out)
        _collect_fields(node.right, scope, out)


def _fold(fn: Any, *values: Any) -> Node | None:
    try:
        value = fn(*values)
    except (VPLRuntimeError, ArithmeticError):
        return None
    if value is MISSING or type(value) not in _SCALARS:
        return None
    return const(value)


def _typed(node: Any, kinds: Mapping[str, str], scope: Scope) -> Node | None:
    """A kernel node computing what the scalar path computes for fields of *kinds*, or None."""
    if isinstance(node, ast.Literal):
        return const(node.value) if type(node.value) in _SCALARS else None
    if isinstance(node, ast.Duration):
        return const(node.nanos) if type(node.nanos) is int else None
    if isinstance(node, ast.Name):
        if scope.is_constant(node.id):
            value = scope.constant_value(node.id)
            return const(value) if type(value) in _SCALARS else None
        kind = kinds.get(node.id)
        return None if kind is None else col(node.id, kind)
    if isinstance(node, ast.Unary):
        arg = _typed(node.operand, kinds, scope)
        if arg is None:
            return None
        if arg.op == "const":
            return _fold(V.op_neg if node.op == "-" else V.op_not, arg.value)
        if node.op == "-" and arg.kind in "if":
            return Node("neg", arg.kind, (arg,))
        if node.op == "not" and arg.kind == "b":
            return Node("not", "b", (arg,))
        return None
    if isinstance(node, ast.Binary):
        return _binary(" ".join(node.op.split()), node, kinds, scope)
    return None


def _binary(op: str, node: ast.Binary, kinds: Mapping[str, str], scope: Scope) -> Node | None:
    left = _typed(node.left, kinds, scope)
    if left is None:
        return None
    if op in ("and", "or") and left.op == "const":
        if left.value is (op == "or"):
            return left  # short circuit: the right side is never evaluated
        if left.value is not (op == "and"):
            return None  # a non-bool left operand: the scalar path raises or gives MISSING
        right = _typed(node.right, kinds, scope)
        return right if right is not None and right.kind == "b" else None
    right = _typed(node.right, kinds, scope)
    if right is None:
        return None
    if left.op == right.op == "const":
        fn = _COMPARE.get(op) or _ARITH.get(op) or (V.op_and if op == "and" else V.op_or)
        return _fold(fn, left.value, right.value)
    lk, rk = left.kind, right.kind
    numeric = lk in "if" and rk in "if"
    if op in ("and", "or"):
        return Node(op, "b", (left, right)) if lk == rk == "b" else None
    if op in _COMPARE:
        if numeric or lk == rk == "s" or (lk == rk == "b" and op in ("==", "!=")):
            return Node(op, "b", (left, right))
        if divides(left) or divides(right):
            return None  # per event the operands run first, and a division may fail
        return const(op == "!=")  # unrelated kinds: == false, != true, ordering false
    if not numeric:
        return None  # string concatenation, or a type error per event
    if op == "/":
        if lk == rk == "i" or not (right.op == "col" or right.value != 0):
            return None  # truncating int division, or division by zero
        return Node("/", "f", (left, right))
    return Node(op, "i" if lk == rk == "i" else "f", (left, right))
