"""Lower a VPL ``fn`` to a SIMT kernel (:mod:`kernels.ir`), or say why it cannot be.

:func:`lower_function` turns a :class:`~varpulis.lang.ast.FnDecl` called with
arguments of known scalar types (``int``/``float``/``bool``) into a
:class:`kernels.vectorize.Kernel` whose emitted rows equal, value for value and
in order, what the compiled scalar function (:mod:`varpulis.compiler.functions`)
emits. Calls to other user functions are inlined (recursion is refused). What is
accepted: ``let``/``var``/``const``/``:=``, ``for v in a..b`` / ``a..=b`` whose
iterations are independent (a variable assigned in the body is read neither
before its assignment in the same iteration nor after the loop), ``while``,
``if``/``elif``/``else``, ``return``, ``continue``, ``break`` out of a ``while``,
``emit``, ``if … then … else``, arithmetic, comparisons, ``and``/``or``/``not``,
``& | ^`` on ints, literals and scalar top-level constants. Everything else
raises :class:`Unsupported` with a reason: strings, null, arrays, maps, builtins,
event fields, ``**``/shifts/``in``/``is``, a variable whose type changes, a read
of a possibly unassigned variable, ``return`` or ``break`` inside a ``for``, a
call in a condition that is not always evaluated. Type errors the scalar path
would raise at run time are refused here too, so the fallback raises them.

:class:`ProcessKernel` is what ``.process(f(args))`` uses: it evaluates the
arguments like the scalar call does, picks (and caches) the kernel for their
types, and reports each call as vectorised or fallen back with the reason.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from kernels import ir
from kernels.columnar import ColumnarBatch
from kernels.vectorize import Fallback, Kernel
from varpulis.compiler.evalctx import EvalContext
from varpulis.compiler.exprs import compile_expr
from varpulis.compiler.scope import Scope, check_identifier
from varpulis.compiler.values import MISSING
from varpulis.errors import VPLRuntimeError
from varpulis.lang import ast

__all__ = ["ProcessKernel", "Unsupported", "lower_function"]

logger = logging.getLogger("varpulis.compiler.simt")

_NUMBERS = ("int", "float")
_ARITH = frozenset({"+", "-", "*", "/", "%"})
_BITS = frozenset({"&", "|", "^"})
_ORDER = frozenset({"<", "<=", ">", ">="})
_PYTYPES = {int: "int", float: "float", bool: "bool"}
_MAX_INLINE = 64


class Unsupported(Exception):  # noqa: N818 - a decision, reported as a reason
    """The function cannot run as a kernel; ``str(exc)`` is the reason."""


def _bound_names(stmts: tuple[Any, ...], out: set[str]) -> set[str]:
    for s in stmts:
        if isinstance(s, (ast.Let, ast.Assign)):
            out.add(s.name)
        elif isinstance(s, ast.For):
            out.add(s.var)
            _bound_names(s.body, out)
        elif isinstance(s, ast.While):
            _bound_names(s.body, out)
        elif isinstance(s, ast.If):
            for _, body in s.branches:
                _bound_names(body, out)
            _bound_names(s.orelse, out)
    return out


def _calls_user_fn(node: Any, scope: Scope) -> bool:
    if isinstance(node, ast.Call) and scope.function_decl(node.func) is not None:
        return True
    if isinstance(node, tuple):
        return any(_calls_user_fn(x, scope) for x in node)
    if hasattr(node, "__dataclass_fields__"):
        return any(_calls_user_fn(getattr(node, f), scope) for f in node.__dataclass_fields__)
    return False


class _Frame:
    """One function body being lowered (the called one or an inlined callee)."""

    def __init__(self, fid: int, decl: ast.FnDecl, top: bool) -> None:
        self.id, self.decl, self.top = fid, decl, top
        params = {p.name for p in decl.params}
        self.locals = _bound_names(decl.body, set(params))
        self.defined: set[str] = set(params)
        self.loops: list[str] = []
        self.ret_type: str | None = None

    def name(self, local: str) -> str:
        return f"{local}@{self.id}"  # '@' never occurs in a VPL identifier


class _Lowerer:
    def __init__(self, scope: Scope) -> None:
        self.scope = scope
        self.types: dict[str, str] = {}
        self.frames = 0
        self.sites = 0
        self.stack: list[str] = []
        self.ends = False

    # ------------------------------------------------------------ variables

    def bind(self, fr: _Frame, local: str, value: ir.Expr) -> str:
        name = fr.name(local)
        known = self.types.setdefault(name, value.type)
        if known != value.type:
            message = (
                f"variable {local!r} of fn {fr.decl.name} changes type ({known} → {value.type})"
            )
            raise Unsupported(message)
        fr.defined.add(local)
        return name

    def const(self, value: Any, what: str) -> ir.Const:
        t = type(value)
        if t is bool:
            return ir.Const(value, "bool")
        if t is int and -(2**63) <= value < 2**63:
            return ir.Const(value, "int")
        if t is float and math.isfinite(value):
            return ir.Const(value, "float")
        message = f"{what} {value!r} is not an int64, finite float or bool"
        raise Unsupported(message)

    # ------------------------------------------------------------ expressions

    def expr(self, fr: _Frame, node: Any, pre: list[ir.Stmt], calls: bool) -> ir.Expr:
        """Lower *node*; calls to user functions are inlined into *pre* when *calls*."""
        if isinstance(node, ast.Literal):
            return self.const(node.value, "literal")
        if isinstance(node, ast.Duration):
            return self.const(node.nanos, "duration")
        if isinstance(node, ast.Name):
            return self.name(fr, node.id)
        if isinstance(node, ast.Unary):
            return self.unary(fr, node, pre, calls)
        if isinstance(node, ast.Binary):
            return self.binary(fr, node, pre, calls)
        if isinstance(node, ast.IfExpr):
            cond = self.expr(fr, node.cond, pre, calls)
            then = self.expr(fr, node.then, pre, False)
            orelse = self.expr(fr, node.orelse, pre, False)
            if cond.type != "bool":
                return orelse
            if then.type != orelse.type:
                message = f"'if … then … else' arms of types {then.type} and {orelse.type}"
                raise Unsupported(message)
            return ir.Select(cond, then, orelse, then.type)
        if isinstance(node, ast.Call):
            if self.scope.function_decl(node.func) is None:
                message = f"calls builtin {node.func}()"
                raise Unsupported(message)
            if not calls:
                message = f"calls {node.func}() where it is not always evaluated"
                raise Unsupported(message)
            return self.call(fr, node, pre, used=True)
        message = f"uses {type(node).__name__.lower()} expressions"
        raise Unsupported(message)

    def name(self, fr: _Frame, local: str) -> ir.Expr:
        if local in fr.locals:
            if local not in fr.defined:
                message = (
                    f"fn {fr.decl.name} reads {local!r} where it may be unassigned "
                    "or carried from an earlier for iteration"
                )
                raise Unsupported(message)
            name = fr.name(local)
            return ir.Var(name, self.types[name])
        if self.scope.is_constant(local):
            return self.const(self.scope.constant_value(local), f"constant {local!r} =")
        message = f"fn {fr.decl.name} reads event field {local!r}"
        raise Unsupported(message)

    def unary(self, fr: _Frame, node: ast.Unary, pre: list[ir.Stmt], calls: bool) -> ir.Expr:
        arg = self.expr(fr, node.operand, pre, calls)
        if node.op == "-" and arg.type in _NUMBERS:
            return ir.Neg(arg, arg.type)
        if node.op == "not" and arg.type == "bool":
            return ir.Not(arg)
        message = f"unary {node.op!r} on {arg.type}"
        raise Unsupported(message)

    def binary(self, fr: _Frame, node: ast.Binary, pre: list[ir.Stmt], calls: bool) -> ir.Expr:
        op = " ".join(node.op.split())
        left = self.expr(fr, node.left, pre, calls)
        right = self.expr(fr, node.right, pre, calls and op not in ("and", "or"))
        lt, rt = left.type, right.type
        if op in ("and", "or"):
            if lt == rt == "bool":
                return ir.Logic(op, left, right)
        elif op in _ARITH:
            if lt in _NUMBERS and rt in _NUMBERS:
                return ir.Bin(op, left, right, "int" if lt == rt == "int" else "float")
        elif op in _BITS:
            if lt == rt == "int":
                return ir.Bin(op, left, right, "int")
        elif op in _ORDER or op in ("==", "!="):
            if lt in _NUMBERS and rt in _NUMBERS:
                return ir.Cmp(op, left, right)
            if lt == rt == "bool" and op in ("==", "!="):
                return ir.Cmp(op, left, right)
            return ir.Const(op == "!=", "bool")  # bool vs number, or bools ordered
        message = f"operator {op!r} on {lt} and {rt}"
        raise Unsupported(message)

    def call(self, fr: _Frame, node: ast.Call, pre: list[ir.Stmt], used: bool) -> ir.Expr:
        decl = self.scope.function_decl(node.func)
        assert decl is not None
        if decl.name in self.stack or len(self.stack) >= _MAX_INLINE:
            message = f"fn {decl.name} is recursive"
            raise Unsupported(message)
        names = [p.name for p in decl.params]
        slots: list[Any] = list(node.args) + [None] * (len(names) - len(node.args))
        for key, value in node.kwargs:
            slots[names.index(key)] = value
        if any(s is None for s in slots):
            message = f"call of {decl.name}() leaves a parameter missing"
            raise Unsupported(message)
        args = [self.expr(fr, s, pre, True) for s in slots]  # parameter order, as the scalar call
        self.frames += 1
        callee = _Frame(self.frames, decl, top=False)
        for pname, arg in zip(names, args, strict=True):
            pre.append(ir.Assign(self.bind(callee, pname, arg), arg))
        self.stack.append(decl.name)
        body = self.block(callee, decl.body, tail=True)
        self.stack.pop()
        if not used:
            pre.append(ir.Frame(callee.id, body))
            return ir.Const(False, "bool")
        if callee.ret_type is None:
            message = f"fn {decl.name} returns no value"
            raise Unsupported(message)
        result = f"result@{callee.id}"
        self.types[result] = callee.ret_type
        pre.append(ir.Frame(callee.id, body, result, callee.ret_type))
        return ir.Var(result, callee.ret_type)

    def cond(self, fr: _Frame, node: Any, pre: list[ir.Stmt], calls: bool) -> ir.Expr:
        value = self.expr(fr, node, pre, calls)
        return value if value.type == "bool" else ir.Const(False, "bool")

    # ------------------------------------------------------------ statements

    def block(self, fr: _Frame, stmts: tuple[Any, ...], tail: bool) -> tuple[ir.Stmt, ...]:
        """Lower a body; ``self.ends`` tells whether control never falls off its end."""
        out: list[ir.Stmt] = []
        ends = False
        for i, stmt in enumerate(stmts):
            if self.stmt(fr, stmt, out, tail and i == len(stmts) - 1):
                ends = True
                fr.defined = set(fr.locals)  # what follows is unreachable
        self.ends = ends
        return tuple(out)

    def stmt(self, fr: _Frame, s: Any, out: list[ir.Stmt], tail: bool) -> bool:
        """Lower *s* into *out*; True when control never falls off its end."""
        if isinstance(s, (ast.Let, ast.Assign)):
            value = self.expr(fr, s.value, out, True)
            out.append(ir.Assign(self.bind(fr, s.name, value), value))
            return False
        if isinstance(s, ast.ExprStmt):
            e = s.expr
            discard = fr.top or not tail
            if isinstance(e, ast.Call) and self.scope.function_decl(e.func) and discard:
                self.call(fr, e, out, used=False)
                return False
            value = self.expr(fr, e, out, True)
            if tail and not fr.top:
                self.returns(fr, value)
                out.append(ir.Return(fr.id, value))
                return True
            return False
        if isinstance(s, ast.Return):
            if "for" in fr.loops:
                message = f"fn {fr.decl.name} returns from inside a for loop"
                raise Unsupported(message)
            value = None if s.value is None else self.expr(fr, s.value, out, True)
            if value is not None and not fr.top:
                self.returns(fr, value)
                out.append(ir.Return(fr.id, value))
            else:
                out.append(ir.Return(fr.id))
            return True
        if isinstance(s, (ast.Break, ast.Continue)):
            if isinstance(s, ast.Break) and fr.loops[-1] == "for":
                message = f"fn {fr.decl.name} breaks out of a for loop"
                raise Unsupported(message)
            out.append(ir.Break() if isinstance(s, ast.Break) else ir.Continue())
            return True
        if isinstance(s, ast.If):
            return self.if_(fr, s, out, tail)
        if isinstance(s, ast.While):
            entry = set(fr.defined)
            cond = self.cond(fr, s.cond, out, False)
            fr.loops.append("while")
            body = self.block(fr, s.body, tail=False)
            fr.loops.pop()
            fr.defined = entry
            private = frozenset(fr.name(local) for local in fr.locals)
            out.append(ir.While(cond, body, fr.id, private))
            return False
        if isinstance(s, ast.For):
            return self.for_(fr, s, out)
        if isinstance(s, ast.Emit):
            if not check_identifier(s.event_type):
                message = f"invalid event type {s.event_type!r}"
                raise Unsupported(message)
            fields = tuple((k, self.expr(fr, v, out, True)) for k, v in s.fields)
            self.sites += 1
            out.append(ir.Emit(self.sites, s.event_type, fields))
            return False
        message = f"uses {type(s).__name__.lower()} statements"
        raise Unsupported(message)

    def returns(self, fr: _Frame, value: ir.Expr) -> None:
        if fr.ret_type not in (None, value.type):
            message = f"fn {fr.decl.name} returns both {fr.ret_type} and {value.type}"
            raise Unsupported(message)
        fr.ret_type = value.type

    def if_(self, fr: _Frame, s: ast.If, out: list[ir.Stmt], tail: bool) -> bool:
        entry = set(fr.defined)
        exits: list[set[str]] = []
        branches = []
        for i, (cond, body) in enumerate(s.branches):
            fr.defined = set(entry)
            test = self.cond(fr, cond, out, i == 0)
            lowered = self.block(fr, body, tail)
            if not self.ends:
                exits.append(fr.defined)
            branches.append((test, lowered))
        orelse: tuple[ir.Stmt, ...] = ()
        if s.orelse:
            fr.defined = set(entry)
            orelse = self.block(fr, s.orelse, tail)
            if not self.ends:
                exits.append(fr.defined)
        else:
            exits.append(entry)
        fr.defined = set.intersection(*exits) if exits else set(fr.locals)
        out.append(ir.If(tuple(branches), orelse))
        return not exits

    def for_(self, fr: _Frame, s: ast.For, out: list[ir.Stmt]) -> bool:
        if not isinstance(s.iter, ast.Range):
            message = f"fn {fr.decl.name} loops over something other than a range"
            raise Unsupported(message)
        start = self.expr(fr, s.iter.start, out, True)
        stop = self.expr(fr, s.iter.stop, out, True)
        if start.type not in _NUMBERS or stop.type not in _NUMBERS:
            message = f"range bounds of types {start.type} and {stop.type}"
            raise Unsupported(message)
        entry = set(fr.defined)
        private = _bound_names(s.body, {s.var})
        fr.defined = entry - private
        var = self.bind(fr, s.var, ir.Var("", "int"))
        fr.loops.append("for")
        body = self.block(fr, s.body, tail=False)
        fr.loops.pop()
        fr.defined = entry - private
        out.append(ir.For(var, start, stop, s.iter.inclusive, body, fr.id))
        return False


def lower_function(
    decl: ast.FnDecl, scope: Scope, arg_types: tuple[str, ...], *, compact_below: float = 0.7
) -> Kernel:
    """The kernel of *decl* called with arguments of *arg_types*; raises :class:`Unsupported`.

    *scope* must hold the program's functions and frozen constants (constants
    are inlined). The kernel's parameters are the function's, in order.
    """
    if len(arg_types) != len(decl.params):
        message = f"fn {decl.name} takes {len(decl.params)} arguments, got {len(arg_types)}"
        raise Unsupported(message)
    low = _Lowerer(scope)
    fr = _Frame(0, decl, top=True)
    params = []
    for p, t in zip(decl.params, arg_types, strict=True):
        params.append((low.bind(fr, p.name, ir.Var("", t)), t))
    low.stack.append(decl.name)
    body = low.block(fr, decl.body, tail=True)
    return Kernel(params, body, compact_below=compact_below)


class ProcessKernel:
    """``.process(f(args))`` with *f* a user function: kernels per argument types.

    :meth:`run` returns the call's emitted rows as batches, or None when the
    call must take the scalar path (then :meth:`scalar` runs it with the very
    argument values already computed, so arguments are evaluated once).
    Counters ``vectorised``/``fallback`` count calls; ``reason`` is the latest
    fallback reason (also logged at debug level, once per distinct reason).
    Belongs to the engine's thread.
    """

    def __init__(self, call: ast.Call, scope: Scope, *, compact_below: float = 0.7) -> None:
        decl = scope.function_decl(call.func)
        assert decl is not None
        self.decl, self.scope, self.compact_below = decl, scope, compact_below
        names = [p.name for p in decl.params]
        slots: list[Any] = list(call.args) + [None] * (len(names) - len(call.args))
        for key, value in call.kwargs:
            slots[names.index(key)] = value
        self._args = [None if s is None else compile_expr(s, scope) for s in slots]
        self._fn = scope.function(decl.name)
        self._kernels: dict[tuple[str, ...], Kernel | str] = {}
        self.vectorised = self.fallback = 0
        self.reason: str | None = None
        self._logged: set[str] = set()

    @staticmethod
    def applies(call: Any, scope: Scope) -> bool:
        """True when *call* is a call of a user function whose arguments call none.

        (An argument calling a user function could emit; the scalar call is then
        the only place those events are collected.)
        """
        if not isinstance(call, ast.Call) or scope.function_decl(call.func) is None:
            return False
        args = [*call.args, *(v for _, v in call.kwargs)]
        return not any(_calls_user_fn(a, scope) for a in args)

    def arguments(self, fields: dict, ctx: EvalContext) -> list[Any]:
        """The argument values, evaluated as the scalar call does (parameter order)."""
        return [MISSING if a is None else a(fields, ctx) for a in self._args]

    def run(
        self, values: list[Any], ctx: EvalContext, timestamp: int
    ) -> list[ColumnarBatch] | None:
        """The call's output batches, or None (counted, reason kept) to fall back."""
        types = tuple(_PYTYPES.get(type(v), "") for v in values)
        kernel = self._kernels.get(types)
        if kernel is None:
            if "" in types:
                kinds = sorted({type(v).__name__ for v in values if type(v) not in _PYTYPES})
                kernel = f"argument values of type {', '.join(kinds)}"
            else:
                try:
                    kernel = lower_function(self.decl, self.scope, types,
                                            compact_below=self.compact_below)  # fmt: skip
                except Unsupported as exc:
                    kernel = str(exc)
            self._kernels[types] = kernel
        if isinstance(kernel, str):
            return self._fall_back(kernel)
        try:
            batches = kernel.run(values, budget=ctx.step_budget, timestamp=timestamp)
        except Fallback as exc:
            return self._fall_back(str(exc))
        self.vectorised += 1
        return batches

    def _fall_back(self, reason: str) -> None:
        self.fallback += 1
        self.reason = reason
        if reason not in self._logged:
            self._logged.add(reason)
            logger.debug("fn %s runs scalar (not vectorised): %s", self.decl.name, reason)
        return None

    def scalar(self, values: list[Any], fields: dict, ctx: EvalContext) -> Any:
        """Run the compiled scalar function on *values* (what ``.process`` did before)."""
        try:
            return self._fn(ctx, fields, *values)
        except (RecursionError, ArithmeticError) as exc:
            text = "recursion too deep in a VPL function" if isinstance(exc, RecursionError) \
                else f"arithmetic error: {exc}"  # fmt: skip
            raise VPLRuntimeError(text) from exc

    def metrics(self) -> dict[str, Any]:
        """``{"fn", "vectorised", "fallback", "reason"}`` for engine metrics."""
        return {"fn": self.decl.name, "vectorised": self.vectorised,
                "fallback": self.fallback, "reason": self.reason}  # fmt: skip
