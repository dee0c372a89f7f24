"""Compile VPL expressions to Python callables through generated Python source.

:func:`compile_expr` turns an expression AST into ``f(fields, ctx) -> value``
(a VPL value or MISSING), :func:`compile_predicate` into ``f(fields, ctx) ->
bool`` that is True only when the value is the bool True. The AST is walked
once, at compile time: :class:`ExprCompiler` produces Python expression text
whose operators follow :mod:`varpulis.compiler.values` exactly. It tracks a
static type per sub-expression (``int``/``float``/``num``/``str``/``bool``/
``null``/``list``/``dict``, or None when unknown or possibly MISSING) and uses a
native Python operator only where that gives the same result as the full
semantics (``+ - *`` on numbers, comparisons of two numbers or two strings,
``and``/``or`` of two bools, ``/`` by a non-zero constant with a float operand);
everything else calls a helper. Pure operations on constants are folded.
Literals enter the code as ``repr`` of a validated int/float/bool/None or as a
namespace constant; names are looked up as: function local (``v_x``) →
top-level constant (``c_x``) → the event's field → MISSING. The generated
callables are not picklable: plans keep the AST and compile in each process.
Recursion too deep or a Python arithmetic overflow inside a call is re-raised
as :class:`VPLRuntimeError`.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable
from typing import Any, NamedTuple

from varpulis.compiler import values as V
from varpulis.compiler.builtins import BUILTINS, MAX_RANGE
from varpulis.compiler.evalctx import (
    EvalContext,
    capture_count,
    capture_member,
    field_member,
    value_member,
)
from varpulis.compiler.scope import Scope, check_identifier
from varpulis.compiler.values import MISSING
from varpulis.errors import VPLRuntimeError
from varpulis.lang.ast import (
    ArrayLit,
    Attr,
    Binary,
    Call,
    Duration,
    FnDecl,
    IfExpr,
    Index,
    Literal,
    MapLit,
    Name,
    Range,
    Slice,
    Unary,
)

__all__ = [
    "BOT",
    "NOVALUE",
    "NUM",
    "RUNTIME",
    "Code",
    "ExprCompiler",
    "compile_expr",
    "compile_predicate",
    "join_types",
    "range_of",
]

#: Static types that are numbers; "num" is "int or float, not known which".
NUM = frozenset({"int", "float", "num"})
#: "No type yet" during type inference of function locals (below every type).
BOT = "bot"


class _NoValue:
    __slots__ = ()

    def __repr__(self) -> str:
        return "NOVALUE"


#: Marks a :class:`Code` whose value is not known at compile time.
NOVALUE: Any = _NoValue()


def join_types(a: str | None, b: str | None) -> str | None:
    """Least upper bound of two static types (None is "unknown")."""
    if a == b or b == BOT:
        return a
    if a == BOT:
        return b
    if a in NUM and b in NUM:
        return "num"
    return None


class Code(NamedTuple):
    """Generated Python expression text and what is known about its value.

    ``simple``: reading it has no side effect and cannot raise (constants,
    locals, field reads), so it may be evaluated out of order or skipped.
    """

    src: str
    stype: str | None
    value: Any = NOVALUE
    simple: bool = False


_SCALARS = (int, float, str, bool, type(None))


_STATIC_TYPES = {
    int: "int", float: "float", str: "str", bool: "bool", type(None): "null", list: "list",
    dict: "dict",
}  # fmt: skip


def _static_type(value: Any) -> str | None:
    return _STATIC_TYPES.get(type(value))


# ----------------------------------------------------------- runtime helpers


def _map_attr(value: Any, b: str) -> Any:
    return value.get(b, MISSING) if type(value) is dict else MISSING


def _arr(*items: Any) -> list:
    return [x for x in items if x is not MISSING]


def _map(keys: tuple[str, ...], *vals: Any) -> dict:
    for value in vals:  # the common case has no MISSING value: build the dict directly
        if value is MISSING:
            return {k: v for k, v in zip(keys, vals, strict=True) if v is not MISSING}
    return dict(zip(keys, vals, strict=True))


def _bound(x: Any) -> int | None:
    t = type(x)
    if t is int:
        return x
    if t is float and math.isfinite(x):
        return int(x)
    return None


def range_of(a: Any, b: Any, inclusive: bool) -> range | None:
    """The ints of ``a..b`` (``a..=b`` when *inclusive*); float bounds truncated;
    None for a MISSING, non-number or non-finite bound."""
    start, stop = _bound(a), _bound(b)
    if start is None or stop is None:
        return None
    return range(start, stop + 1 if inclusive else stop)


def _mkrange(a: Any, b: Any, inclusive: bool) -> Any:
    span = range_of(a, b, inclusive)
    if span is None:
        return MISSING
    if span.stop - span.start > MAX_RANGE:
        message = f"range {a}..{b} is longer than {MAX_RANGE} elements"
        raise VPLRuntimeError(message)
    return list(span)


def _wrap(exc: BaseException) -> VPLRuntimeError:
    if isinstance(exc, RecursionError):
        return VPLRuntimeError("recursion too deep in a VPL function")
    message = f"arithmetic error: {exc}"
    return VPLRuntimeError(message)


_BINARY = {
    "+": "_add", "-": "_sub", "*": "_mul", "/": "_div", "%": "_mod", "**": "_pow",
    "==": "_eq", "!=": "_ne", "<": "_lt", "<=": "_le", ">": "_gt", ">=": "_ge",
    "in": "_in", "not in": "_notin", "is": "_is",
    "|": "_bor", "^": "_bxor", "&": "_band", "<<": "_shl", ">>": "_shr",
}  # fmt: skip
_UNARY = {"-": "_neg", "~": "_inv", "not": "_not"}

#: Everything generated code may reference besides constants and user functions.
RUNTIME: dict[str, Any] = {
    "_M": MISSING, "_type": type, "_int": int, "_float": float, "_str": str,
    "_NUMT": frozenset({int, float}), "_ERRS": (RecursionError, ArithmeticError), "_wrap": _wrap,
    "_add": V.op_add, "_sub": V.op_sub, "_mul": V.op_mul, "_div": V.op_div, "_mod": V.op_mod,
    "_pow": V.op_pow, "_eq": V.op_eq, "_ne": V.op_ne, "_lt": V.op_lt, "_le": V.op_le,
    "_gt": V.op_gt, "_ge": V.op_ge, "_in": V.op_in, "_notin": V.op_not_in, "_is": V.op_is,
    "_bor": V.op_bitor, "_bxor": V.op_bitxor, "_band": V.op_bitand, "_shl": V.op_shl,
    "_shr": V.op_shr, "_neg": V.op_neg, "_inv": V.op_invert, "_not": V.op_not,
    "_and": V.op_and, "_or": V.op_or, "_index": V.op_index, "_slice": V.op_slice,
    "_field_attr": field_member, "_val_attr": value_member, "_cap_attr": capture_member,
    "_cap_len": capture_count, "_map_attr": _map_attr, "_arr": _arr, "_map": _map,
    "_mkrange": _mkrange,
}  # fmt: skip

_ORDERING = frozenset({"<", "<=", ">", ">="})
_FAMILY = {"int": "num", "float": "num", "num": "num", "str": "str", "bool": "bool"}
_TYPE_TESTS = {
    "num": ("_type({}) in _NUMT", "_type({}) not in _NUMT"),
    "str": ("_type({}) is _str", "_type({}) is not _str"),
}


def _fold_op(op: str, a: Any, b: Any) -> Any:
    if op == "and":
        return False if a is False else V.op_and(a, b)
    if op == "or":
        return True if a is True else V.op_or(a, b)
    return RUNTIME[_BINARY[op]](a, b)


class ExprCompiler:
    """Generates Python expression source for VPL expressions in one scope.

    ``local_types`` maps the enclosing function's locals to their inferred
    static types and ``defined`` holds the locals definitely assigned at the
    current point (both empty outside functions); the function compiler
    updates ``defined`` as it walks statements. Temporaries (``_t<N>``) are
    unique per compiler, so one compiler serves one generated function.
    """

    def __init__(
        self,
        scope: Scope,
        local_types: dict[str, str | None] | None = None,
        defined: set[str] | None = None,
    ) -> None:
        scope.install(RUNTIME)
        self.scope = scope
        self.local_types = {} if local_types is None else local_types
        self.defined = set() if defined is None else defined
        #: Locals read where they may not be assigned yet: they need a MISSING start.
        self.maybe_unbound: set[str] = set()
        self._temps = 0
        self._dispatch: dict[type, Callable[[Any], Code]] = {
            Literal: self._literal, Duration: self._duration, Name: self._name,
            Attr: self._attr, Index: self._index, Slice: self._slice, Call: self._call,
            Unary: self._unary, Binary: self._binary, Range: self._range,
            IfExpr: self._ifexpr, ArrayLit: self._array, MapLit: self._mapping,
        }  # fmt: skip

    def temp(self) -> str:
        """A fresh temporary variable name."""
        self._temps += 1
        return f"_t{self._temps}"

    def compile(self, node: Any) -> Code:
        """Generate code for the expression *node*."""
        method = self._dispatch.get(type(node))
        if method is None:
            message = f"not an expression: {type(node).__name__}"
            raise self.scope.error(message, node)
        return method(node)

    def condition(self, node: Any) -> str:
        """Python source that is True exactly when *node* evaluates to the bool True."""
        code = self.compile(node)
        if code.value is not NOVALUE:
            return "True" if code.value is True else "False"
        return code.src if code.stype == "bool" else f"({code.src} is True)"

    def const(self, value: Any, node: Any = None) -> Code:
        """Code for a compile-time value: ``repr`` of a checked scalar or a constant."""
        t = type(value)
        if value is MISSING:
            return Code("_M", None, MISSING, True)
        if value is None or t is bool:
            return Code(repr(value), _static_type(value), value, True)
        if t is int and value.bit_length() <= 64:
            src = repr(value)
            return Code(f"({src})" if value < 0 else src, "int", value, True)
        if t is float and math.isfinite(value):
            src = repr(value)
            return Code(f"({src})" if src.startswith("-") else src, "float", value, True)
        if t in (int, float, str):
            return Code(self.scope.literal(value), _static_type(value), value, True)
        message = f"invalid literal {value!r}"
        raise self.scope.error(message, node)

    def _fold(self, fn: Callable[..., Any], codes: tuple[Code, ...], node: Any) -> Code | None:
        if any(c.value is NOVALUE for c in codes):
            return None
        try:
            value = fn(*(c.value for c in codes))
        except (VPLRuntimeError, ArithmeticError, ValueError, RecursionError):
            return None  # the error happens at run time, if ever
        if value is MISSING or type(value) in _SCALARS:
            return self.const(value, node)
        return None

    def _check_name(self, name: str, node: Any) -> str:
        if not check_identifier(name):
            message = f"invalid name {name!r}"
            raise self.scope.error(message, node)
        return name

    # -------------------------------------------------------------- leaves

    def _literal(self, node: Literal) -> Code:
        return self.const(node.value, node)

    def _duration(self, node: Duration) -> Code:
        if type(node.nanos) is not int:
            message = f"invalid duration {node.nanos!r}"
            raise self.scope.error(message, node)
        return self.const(node.nanos, node)

    def _name(self, node: Name) -> Code:
        name = self._check_name(node.id, node)
        if name in self.local_types:
            if name not in self.defined:
                self.maybe_unbound.add(name)
                return Code(f"v_{name}", None, NOVALUE, True)
            return Code(f"v_{name}", self.local_types[name], NOVALUE, True)
        if self.scope.is_constant(name):
            value = self.scope.constant_value(name)
            if self.scope.constants_frozen and (value is MISSING or type(value) in _SCALARS):
                return self.const(value, node)
            stype = _static_type(value) if self.scope.constants_frozen else None
            return Code(f"c_{name}", stype, NOVALUE, True)
        return Code(f"fields.get({self.scope.literal(name)}, _M)", None, NOVALUE, True)

    def _attr(self, node: Attr) -> Code:
        b = self._check_name(node.name, node)
        if not isinstance(node.obj, Name):
            obj = self.compile(node.obj)
            return Code(f"_map_attr({obj.src}, {self.scope.literal(b)})", None)
        a = self._check_name(node.obj.id, node.obj)
        keys = ", ".join(self.scope.literal(k) for k in (a, b, f"{a}.{b}"))
        if a in self.scope.aliases and a not in self.local_types:
            return Code(f"_cap_attr(ctx, fields, {keys})", None)
        if a in self.local_types or self.scope.is_constant(a):
            obj = self._name(node.obj)
            return Code(f"_val_attr({obj.src}, fields, ctx, {keys})", None)
        return Code(f"_field_attr(fields, ctx, {keys})", None)

    def _index(self, node: Index) -> Code:
        codes = (self.compile(node.obj), self.compile(node.index))
        folded = self._fold(V.op_index, codes, node)
        return folded or Code(f"_index({codes[0].src}, {codes[1].src})", None)

    def _slice(self, node: Slice) -> Code:
        obj = self.compile(node.obj)
        start = self.compile(node.start) if node.start is not None else self.const(None)
        stop = self.compile(node.stop) if node.stop is not None else self.const(None)
        folded = self._fold(V.op_slice, (obj, start, stop), node)
        return folded or Code(f"_slice({obj.src}, {start.src}, {stop.src})", None)

    def _range(self, node: Range) -> Code:
        start, stop = self.compile(node.start), self.compile(node.stop)
        return Code(f"_mkrange({start.src}, {stop.src}, {node.inclusive!r})", None)

    def _array(self, node: ArrayLit) -> Code:
        items = [self.compile(item) for item in node.items]
        if all(c.stype is not None for c in items):
            return Code("[" + ", ".join(c.src for c in items) + "]", "list")
        return Code("_arr(" + ", ".join(c.src for c in items) + ")", "list")

    def _mapping(self, node: MapLit) -> Code:
        keys = [key for key, _ in node.items]
        if any(type(key) is not str for key in keys):
            message = f"map keys must be strings, got {keys!r}"
            raise self.scope.error(message, node)
        vals = [self.compile(value) for _, value in node.items]
        if all(c.stype is not None for c in vals):
            pairs = (f"{self.scope.literal(k)}: {c.src}" for k, c in zip(keys, vals, strict=True))
            return Code("{" + ", ".join(pairs) + "}", "dict")
        args = "".join(f", {c.src}" for c in vals)
        return Code(f"_map({self.scope.literal(tuple(keys))}{args})", "dict")

    # ----------------------------------------------------------- operators

    def _unary(self, node: Unary) -> Code:
        helper = _UNARY.get(node.op)
        if helper is None:
            message = f"unknown unary operator {node.op!r}; expected one of {sorted(_UNARY)}"
            raise self.scope.error(message, node)
        arg = self.compile(node.operand)
        folded = self._fold(RUNTIME[helper], (arg,), node)
        if folded is not None:
            return folded
        if arg.stype == BOT:
            return Code(f"{helper}({arg.src})", BOT)
        if (node.op == "-" and arg.stype in NUM) or (node.op == "~" and arg.stype == "int"):
            return Code(f"({node.op}{arg.src})", arg.stype)
        if node.op == "not" and arg.stype == "bool":
            return Code(f"(not {arg.src})", "bool")
        return Code(f"{helper}({arg.src})", None)

    def _binary(self, node: Binary) -> Code:
        op = " ".join(node.op.split())
        if op not in _BINARY and op not in ("and", "or"):
            message = f"unknown operator {node.op!r}"
            raise self.scope.error(message, node)
        left = self.compile(node.left)
        if (op == "and" and left.value is False) or (op == "or" and left.value is True):
            return left  # short circuit: the right side is never evaluated
        right = self.compile(node.right)
        folded = self._fold(lambda a, b: _fold_op(op, a, b), (left, right), node)
        if folded is not None:
            return folded
        if op in ("and", "or"):
            return self._logic(op, left, right)
        helper = _BINARY[op]
        general = Code(f"{helper}({left.src}, {right.src})", None)
        if op in ("in", "not in", "is") or op in _ORDERING or op in ("==", "!="):
            return self._compare(op, helper, left, right)
        if BOT in (left.stype, right.stype):
            return general._replace(stype=BOT)
        lt, rt = left.stype, right.stype
        if lt in NUM and rt in NUM:
            if op in "+-*":
                stype = "int" if lt == rt == "int" else "float" if "float" in (lt, rt) else "num"
                return Code(f"({left.src} {op} {right.src})", stype)
            if op == "/" and "float" in (lt, rt) and right.value not in (NOVALUE, 0):
                return Code(f"({left.src} / {right.src})", "float")
        if op in "|^&" and lt == rt == "int":
            return Code(f"({left.src} {op} {right.src})", "int")
        if op == "+" and lt == rt == "str":
            return Code(f"({left.src} + {right.src})", "str")
        return general

    def _logic(self, op: str, left: Code, right: Code) -> Code:
        if BOT in (left.stype, right.stype):
            return Code(f"_{op}({left.src}, {right.src})", BOT)
        if left.stype == right.stype == "bool":
            return Code(f"({left.src} {op} {right.src})", "bool")
        if left.value is not NOVALUE:  # never ``(_t := 0) is False``: a SyntaxWarning
            return Code(f"_{op}({left.src}, {right.src})", None)
        t = self.temp()
        stop = "False" if op == "and" else "True"
        return Code(f"({t} if ({t} := {left.src}) is {stop} else _{op}({t}, {right.src}))", None)

    def _compare(self, op: str, helper: str, left: Code, right: Code) -> Code:
        lf, rf = _FAMILY.get(left.stype or ""), _FAMILY.get(right.stype or "")
        if op in _ORDERING or op in ("==", "!="):
            if lf is not None and lf == rf and (op in ("==", "!=") or lf != "bool"):
                return Code(f"({left.src} {op} {right.src})", "bool")
            if left.stype is None and right.simple and right.stype is not None:
                return self._compare_known(op, left, right, known_right=True)
            if right.stype is None and left.simple and left.stype is not None:
                return self._compare_known(op, right, left, known_right=False)
        return Code(f"{helper}({left.src}, {right.src})", "bool")

    def _compare_known(self, op: str, other: Code, known: Code, known_right: bool) -> Code:
        """Inline ``other OP known`` where *known* is a simple value of a known type."""
        t = self.temp()
        if known.stype in ("bool", "null") and op in ("==", "!="):
            if op == "==":
                return Code(f"({other.src} is {known.src})", "bool")
            return Code(f"(({t} := {other.src}) is not _M and {t} is not {known.src})", "bool")
        tests = _TYPE_TESTS.get(_FAMILY.get(known.stype or "", ""))
        if tests is None:
            pair = (other.src, known.src) if known_right else (known.src, other.src)
            return Code(f"{_BINARY[op]}({pair[0]}, {pair[1]})", "bool")
        is_type, not_type = tests
        lhs, rhs = (t, known.src) if known_right else (known.src, t)
        if op == "!=":
            src = f"(({t} := {other.src}) is not _M and ({not_type.format(t)} or {lhs} != {rhs}))"
            return Code(src, "bool")
        return Code(f"({is_type.format(f'({t} := {other.src})')} and {lhs} {op} {rhs})", "bool")

    def _ifexpr(self, node: IfExpr) -> Code:
        cond = self.compile(node.cond)
        if cond.value is not NOVALUE:
            if cond.value is True:
                return self.compile(node.then)
            return self.const(MISSING) if cond.value is MISSING else self.compile(node.orelse)
        then, orelse = self.compile(node.then), self.compile(node.orelse)
        if cond.stype == BOT:
            return Code(f"({then.src} if {cond.src} else {orelse.src})", BOT)
        if cond.stype == "bool":
            stype = join_types(then.stype, orelse.stype)
            return Code(f"({then.src} if {cond.src} else {orelse.src})", stype)
        t = self.temp()
        test = f"({t} := {cond.src}) is True"
        return Code(f"({then.src} if {test} else (_M if {t} is _M else {orelse.src}))", None)

    # --------------------------------------------------------------- calls

    def _call(self, node: Call) -> Code:
        name = self._check_name(node.func, node)
        decl = self.scope.function_decl(name)
        if decl is not None:
            return self._user_call(decl, node)
        spec = BUILTINS.get(name)
        if spec is None:
            candidates = set(self.scope.function_names()) | set(BUILTINS)
            close = difflib.get_close_matches(name, sorted(candidates), n=3)
            hint = "did you mean " + " or ".join(map(repr, close)) + "?" if close else None
            message = f"unknown function {name!r}" + (f"; {hint}" if hint else "")
            raise self.scope.error(message, node, hint)
        if node.kwargs:
            message = f"builtin {name!r} takes no keyword arguments"
            raise self.scope.error(message, node)
        n = len(node.args)
        if n < spec.min_args or (spec.max_args is not None and n > spec.max_args):
            expected = (
                f"{spec.min_args}" if spec.min_args == spec.max_args
                else f"at least {spec.min_args}" if spec.max_args is None
                else f"{spec.min_args} to {spec.max_args}"
            )  # fmt: skip
            message = f"builtin {name!r} takes {expected} arguments, got {n}"
            raise self.scope.error(message, node)
        arg0 = node.args[0] if n == 1 else None
        if name == "len" and isinstance(arg0, Name) and arg0.id in self.scope.aliases:
            if arg0.id not in self.local_types:
                return Code(f"_cap_len(ctx, {self.scope.literal(arg0.id)})", None)
        args = tuple(self.compile(a) for a in node.args)
        if spec.pure:
            folded = self._fold(spec.func, args, node)
            if folded is not None:
                return folded
        helper = f"_b_{name}"
        self.scope.install({helper: spec.func})
        texts = (["ctx"] if spec.needs_ctx else []) + [a.src for a in args]
        return Code(f"{helper}({', '.join(texts)})", None)

    def _user_call(self, decl: FnDecl, node: Call) -> Code:
        names = [p.name for p in decl.params]
        if len(node.args) > len(names):
            message = f"{decl.name}() takes {len(names)} arguments, got {len(node.args)}"
            raise self.scope.error(message, node)
        slots: list[Any] = list(node.args) + [None] * (len(names) - len(node.args))
        for key, value in node.kwargs:
            if key not in names:
                close = difflib.get_close_matches(key, names, n=3)
                hint = "did you mean " + " or ".join(map(repr, close)) + "?" if close else None
                message = f"{decl.name}() has no parameter {key!r}; parameters: {names}"
                raise self.scope.error(message, node, hint)
            if slots[names.index(key)] is not None:
                message = f"{decl.name}() got two values for parameter {key!r}"
                raise self.scope.error(message, node)
            slots[names.index(key)] = value
        texts = ["ctx", "fields"] + ["_M" if s is None else self.compile(s).src for s in slots]
        return Code(f"u_{decl.name}({', '.join(texts)})", None)


# ------------------------------------------------------------- entry points


def _finish(scope: Scope, body: str, node: Any) -> Callable[[dict, EvalContext], Any]:
    name = scope.fresh("_e")
    text = (
        f"def {name}(fields, ctx):\n"
        f"    try:\n"
        f"        return {body}\n"
        f"    except _ERRS as exc:\n"
        f"        raise _wrap(exc) from exc\n"
    )
    fn = scope.exec_source(text, name, node)
    del scope.namespace[name]
    fn.vpl_source = text
    return fn


def compile_expr(expr: Any, scope: Scope) -> Callable[[dict, EvalContext], Any]:
    """Compile *expr* to ``f(fields, ctx)`` returning its VPL value or MISSING.

    ``fields`` is the current event's field dict (read only), ``ctx`` its
    :class:`EvalContext`. Compile-time problems (unknown function, wrong
    builtin arity, invalid names) raise :class:`VPLSemanticError`; runtime
    type errors raise :class:`VPLRuntimeError`. The generated source is on the
    callable's ``vpl_source`` attribute.
    """
    return _finish(scope, ExprCompiler(scope).compile(expr).src, expr)


def compile_predicate(expr: Any, scope: Scope) -> Callable[[dict, EvalContext], bool]:
    """Compile *expr* to ``f(fields, ctx)`` that is True only if the value is True.

    Any other value (False, MISSING, null, a number...) gives False; runtime
    errors propagate as in :func:`compile_expr`.
    """
    return _finish(scope, ExprCompiler(scope).condition(expr), expr)
