"""Compile VPL ``fn`` declarations to generated Python functions, and evaluate the
program's top-level constants.

Each ``fn name(p1, p2)`` becomes ``u_name(ctx, fields, v_p1=MISSING, v_p2=MISSING)``
in the program's namespace: ``ctx`` is the :class:`EvalContext` (emit collector,
step budget), ``fields`` the triggering event's fields (what names that are
neither local nor constant read). Omitted arguments are MISSING. Every local
(a parameter, or a name bound anywhere in the body by ``let``/``var``/
``const``/``:=`` or a ``for``) is a Python local, MISSING until assigned; blocks
do not open scopes. A small type inference over locals (numeric literals,
``for`` over ranges, typed parameters once guarded) with a definite-assignment
analysis lets arithmetic and comparisons on known numbers use native Python
operators. When parameters carry ``int``/``float``/``bool``/``str``
annotations, the function gets a fast body specialised for those types behind
a ``type()`` guard at entry and a general body for any other arguments; both
give the same results. ``while`` loops count against ``ctx.step_budget`` per
call; ``for`` loops over ranges or ints longer than the budget are refused
before they start. A function without ``return`` yields the value of its
trailing expression statement (also at the end of a trailing ``if`` branch),
else MISSING. ``emit`` builds :class:`~varpulis.events.Event` objects only when
``ctx.emitted`` is a list (their fields are not evaluated otherwise).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from varpulis.compiler.evalctx import DEFAULT_STEP_BUDGET, EvalContext
from varpulis.compiler.exprs import BOT, ExprCompiler, compile_expr, join_types, range_of
from varpulis.compiler.scope import Scope, check_identifier
from varpulis.compiler.values import MISSING
from varpulis.errors import VPLRuntimeError
from varpulis.events import Event
from varpulis.lang.ast import (
    Assign,
    Break,
    Continue,
    Emit,
    ExprStmt,
    FnDecl,
    For,
    If,
    Let,
    Range,
    Return,
    While,
)

__all__ = ["compile_functions", "compile_toplevel", "evaluate_toplevel", "function_source"]

#: Parameter annotation → static type assumed by the guarded fast body.
_GUARDS = {"int": "int", "float": "float", "bool": "bool", "str": "str", "string": "str"}
_PYTYPES = {"int": "_int", "float": "_float", "bool": "_bool", "str": "_str"}


def _budget_error(ctx: EvalContext, name: str, what: str = "") -> VPLRuntimeError:
    message = f"step budget of {ctx.step_budget} iterations exceeded in fn {name}{what}"
    return VPLRuntimeError(message)


def _for_range(a: Any, b: Any, inclusive: bool, ctx: EvalContext, name: str) -> Any:
    span = range_of(a, b, inclusive)
    if span is None:
        return ()
    if span.stop - span.start > ctx.step_budget:
        raise _budget_error(ctx, name, f" (for loop over {a}..{b})")
    return span


def _for_iter(value: Any, ctx: EvalContext, name: str) -> Any:
    t = type(value)
    if t is list or t is str:
        return value
    if t is dict:
        return [[k, v] for k, v in value.items()]
    if t is int:
        if value > ctx.step_budget:
            raise _budget_error(ctx, name, f" (for loop over {value})")
        return range(value)
    return ()


_FN_RUNTIME: dict[str, Any] = {
    "_Event": Event, "_bool": bool, "_range": range, "_for_range": _for_range,
    "_for_iter": _for_iter, "_budget_error": _budget_error,
}  # fmt: skip


def _has_while(stmts: Iterable[Any]) -> bool:
    for stmt in stmts:
        if isinstance(stmt, While):
            return True
        if isinstance(stmt, For) and _has_while(stmt.body):
            return True
        if isinstance(stmt, If) and (
            any(_has_while(body) for _, body in stmt.branches) or _has_while(stmt.orelse)
        ):
            return True
    return False


def _bound_names(stmts: Iterable[Any], out: dict[str, None]) -> dict[str, None]:
    for stmt in stmts:
        if isinstance(stmt, (Let, Assign)):
            out.setdefault(stmt.name)
        elif isinstance(stmt, For):
            out.setdefault(stmt.var)
            _bound_names(stmt.body, out)
        elif isinstance(stmt, While):
            _bound_names(stmt.body, out)
        elif isinstance(stmt, If):
            for _, body in stmt.branches:
                _bound_names(body, out)
            _bound_names(stmt.orelse, out)
    return out


class _BodyWriter:
    """Writes one body variant of a function under given static types of locals.

    ``assigned`` collects, per local, the join of the static types of every
    value assigned to it, which the type inference feeds back in.
    """

    def __init__(self, scope: Scope, decl: FnDecl, types: dict[str, str | None]) -> None:
        self.scope, self.decl = scope, decl
        self.params = [p.name for p in decl.params]
        self.ec = ExprCompiler(scope, types, set(self.params))
        self.all_locals = set(types)
        self.assigned: dict[str, str | None] = {}
        self.lines: list[str] = []
        self.loops: list[str] = []  # kinds of the enclosing loops, innermost last
        self.uses_budget = False
        self._name = scope.literal(decl.name)

    def put(self, indent: int, text: str) -> None:
        self.lines.append("    " * indent + text)

    def bind(self, name: str, stype: str | None) -> None:
        self.assigned[name] = join_types(self.assigned.get(name, BOT), stype)
        self.ec.defined.add(name)

    def block(self, stmts: tuple[Any, ...], indent: int, tail: bool) -> bool:
        """Write *stmts*; True when control never falls off their end."""
        if not stmts:
            self.put(indent, "pass")
            return False
        ends = False
        for i, stmt in enumerate(stmts):
            if self.statement(stmt, indent, tail and i == len(stmts) - 1):
                ends = True
                self.ec.defined = set(self.all_locals)  # what follows is unreachable
        return ends

    def statement(self, stmt: Any, indent: int, tail: bool) -> bool:
        if isinstance(stmt, (Let, Assign)):
            code = self.ec.compile(stmt.value)
            self.put(indent, f"v_{stmt.name} = {code.src}")
            self.bind(stmt.name, code.stype)
            return False
        if isinstance(stmt, ExprStmt):
            code = self.ec.compile(stmt.expr)
            self.put(indent, f"return {code.src}" if tail else code.src)
            return tail
        if isinstance(stmt, Return):
            value = "_M" if stmt.value is None else self.ec.compile(stmt.value).src
            self.put(indent, f"return {value}")
            return True
        if isinstance(stmt, (Break, Continue)):
            word = "break" if isinstance(stmt, Break) else "continue"
            if not self.loops:
                message = f"{word!r} outside a loop in fn {self.decl.name}"
                raise self.scope.error(message, stmt)
            if word == "break" and self.loops[-1] == "counted":
                self.put(indent, "_s -= 1")  # the interrupted iteration counts too
            self.put(indent, word)
            return True
        handler = {If: self.if_, While: self.while_, For: self.for_, Emit: self.emit}.get(
            type(stmt)
        )
        if handler is None:
            message = f"{type(stmt).__name__} is not allowed in a function body"
            raise self.scope.error(message, stmt)
        return handler(stmt, indent, tail)

    def if_(self, stmt: If, indent: int, tail: bool) -> bool:
        entry = set(self.ec.defined)
        exits: list[set[str]] = []
        branches = [*stmt.branches, *([(None, stmt.orelse)] if stmt.orelse else [])]
        for i, (cond, body) in enumerate(branches):
            self.ec.defined = set(entry)
            if cond is None:
                self.put(indent, "else:")
            else:
                self.put(indent, f"{'elif' if i else 'if'} {self.ec.condition(cond)}:")
            if not self.block(body, indent + 1, tail):
                exits.append(self.ec.defined)
        if not stmt.orelse:
            exits.append(entry)
        self.ec.defined = set.intersection(*exits) if exits else set(self.all_locals)
        return not exits

    def while_(self, stmt: While, indent: int, tail: bool) -> bool:
        entry = set(self.ec.defined)
        self.uses_budget = True
        cond = self.ec.condition(stmt.cond)
        fail = f"raise _budget_error(ctx, {self._name})"
        if _has_while(stmt.body):
            self.put(indent, f"while {cond}:")
            self.put(indent + 1, "_steps -= 1")
            self.put(indent + 1, "if _steps < 0:")
            self.put(indent + 2, fail)
            self.loop_body(stmt.body, indent, "while")
        else:
            # An innermost loop counts its iterations with a range iterator: about
            # a fifth of the cost of decrementing and testing a counter in the body.
            self.put(indent, "for _s in _range(_steps, 0, -1):")
            self.put(indent + 1, f"if not {cond}:")
            self.put(indent + 2, "break")
            self.loop_body(stmt.body, indent, "counted")
            self.put(indent, "else:")
            self.put(indent + 1, f"if {cond}:")
            self.put(indent + 2, fail)
            self.put(indent + 1, "_s = 0")
            self.put(indent, "_steps = _s")
        self.ec.defined = entry
        return False

    def for_(self, stmt: For, indent: int, tail: bool) -> bool:
        entry = set(self.ec.defined)
        it = stmt.iter
        if isinstance(it, Range):
            a, b = self.ec.compile(it.start).src, self.ec.compile(it.stop).src
            source, stype = f"_for_range({a}, {b}, {it.inclusive!r}, ctx, {self._name})", "int"
        else:
            source, stype = f"_for_iter({self.ec.compile(it).src}, ctx, {self._name})", None
        self.put(indent, f"for v_{stmt.var} in {source}:")
        self.bind(stmt.var, stype)
        self.loop_body(stmt.body, indent, "for")
        self.ec.defined = entry
        return False

    def loop_body(self, body: tuple[Any, ...], indent: int, kind: str) -> None:
        self.loops.append(kind)
        self.block(body, indent + 1, tail=False)
        self.loops.pop()

    def emit(self, stmt: Emit, indent: int, tail: bool) -> bool:
        if not check_identifier(stmt.event_type):
            message = f"invalid event type {stmt.event_type!r}"
            raise self.scope.error(message, stmt)
        kind = self.scope.literal(stmt.event_type)
        self.put(indent, "_o = ctx.emitted")
        self.put(indent, "if _o is not None:")
        codes = [(self.scope.literal(key), self.ec.compile(value)) for key, value in stmt.fields]
        stamp = "(ctx.event.timestamp if ctx.event is not None else 0)"
        if all(code.stype is not None for _, code in codes):
            data = "{" + ", ".join(f"{key}: {code.src}" for key, code in codes) + "}"
            self.put(indent + 1, f"_o.append(_Event({kind}, {data}, {stamp}))")
            return False
        self.put(indent + 1, "_f = {}")
        for key, code in codes:
            if code.stype is not None:
                self.put(indent + 1, f"_f[{key}] = {code.src}")
            else:
                self.put(indent + 1, f"_v = {code.src}")
                self.put(indent + 1, "if _v is not _M:")
                self.put(indent + 2, f"_f[{key}] = _v")
        self.put(indent + 1, f"_o.append(_Event({kind}, _f, {stamp}))")
        return False


def _write_body(scope: Scope, decl: FnDecl, locals_: list[str], params: dict) -> _BodyWriter:
    """Infer the locals' static types to a fixed point, then return the writer."""
    floor = {name: params[name] if name in params else BOT for name in locals_}
    env = dict(floor)
    for _ in range(8 * len(locals_) + 8):
        writer = _BodyWriter(scope, decl, dict(env))
        writer.block(decl.body, 1, tail=True)
        new = {
            n: join_types(env[n], join_types(floor[n], writer.assigned.get(n, BOT))) for n in env
        }
        if new == env:
            stuck = [n for n, t in env.items() if t == BOT]
            if not stuck:
                return writer
            for n in stuck:  # never given a typed value: unknown, not "no type"
                floor[n] = env[n] = None
        else:
            env = new
    message = f"type inference did not converge for fn {decl.name}"
    raise AssertionError(message)


def _generate(scope: Scope, decl: FnDecl) -> str:
    params = [p.name for p in decl.params]
    for p in decl.params:
        if not check_identifier(p.name) or params.count(p.name) > 1:
            message = f"invalid or repeated parameter {p.name!r} in fn {decl.name}"
            raise scope.error(message, p)
    locals_ = list(_bound_names(decl.body, dict.fromkeys(params)))
    for name in locals_:
        if not check_identifier(name):
            message = f"invalid name {name!r} in fn {decl.name}"
            raise scope.error(message, decl)
    general = _write_body(scope, decl, locals_, dict.fromkeys(params))
    guards = {p.name: _GUARDS[p.type] for p in decl.params if p.type in _GUARDS}
    fast = None
    if guards:
        typed = {p: guards.get(p) for p in params}
        fast = _write_body(scope, decl, locals_, typed)
        if fast.lines == general.lines:
            fast = None
    signature = ", ".join(["ctx", "fields", *(f"v_{p}=_M" for p in params)])
    lines = [f"def u_{decl.name}({signature}):"]
    unbound = general.ec.maybe_unbound | (fast.ec.maybe_unbound if fast else set())
    others = [f"v_{name}" for name in locals_ if name in unbound and name not in params]
    if others:
        lines.append(f"    {' = '.join(others)} = _M")
    if general.uses_budget:
        lines.append("    _steps = ctx.step_budget")
    if fast is not None:
        test = " and ".join(f"_type(v_{p}) is {_PYTYPES[t]}" for p, t in guards.items())
        lines.append(f"    if {test}:")
        lines.extend("    " + line for line in fast.lines)
        lines.append("        return _M")
    lines.extend(general.lines)
    lines.append("    return _M")
    return "\n".join(lines) + "\n"


def compile_functions(fndecls: Iterable[FnDecl], scope: Scope) -> dict[str, Callable[..., Any]]:
    """Declare every function in *scope*, then compile each one.

    Returns name → ``f(ctx, fields, *args)``; the functions call each other
    (and themselves) directly and shadow builtins of the same name. Top-level
    constants must be declared in *scope* before this call to be visible (see
    :func:`compile_toplevel`). Each function's Python source is on its
    ``vpl_source`` attribute. Raises :class:`VPLSemanticError` for unknown
    functions, bad arity, ``break`` outside a loop and the like. Deep
    recursion raises ``RecursionError`` when called directly; through
    :func:`compile_expr` it becomes :class:`VPLRuntimeError`.
    """
    decls = list(fndecls)
    for decl in decls:
        scope.declare_function(decl)
    scope.install(_FN_RUNTIME)
    compiled: dict[str, Callable[..., Any]] = {}
    for decl in decls:
        text = _generate(scope, decl)
        fn = scope.exec_source(text, f"u_{decl.name}", decl)
        fn.vpl_source = text
        compiled[decl.name] = fn
    return compiled


def function_source(fn: Callable[..., Any]) -> str:
    """The generated Python source of a compiled function or expression."""
    return getattr(fn, "vpl_source", "")


def _declare_constants(decls: Iterable[Any], scope: Scope) -> None:
    for decl in decls:
        if isinstance(decl, Let):
            scope.declare_constant(decl.name, decl.kind, decl)
        elif isinstance(decl, Assign):
            scope.declare_constant(decl.name, ":=", decl)


def evaluate_toplevel(
    decls: Iterable[Any], scope: Scope, *, step_budget: int = DEFAULT_STEP_BUDGET
) -> dict[str, Any]:
    """Evaluate the top-level ``let``/``var``/``const``/``:=`` of *decls* in order.

    Values may use earlier constants and any user function already compiled
    in *scope*; a constant read before its own declaration is evaluated is
    MISSING. A value that is MISSING, a runtime error, or ``:=`` to a
    ``const`` raises :class:`VPLSemanticError`. Afterwards the constants are
    frozen (later compilations inline scalar ones). Returns name → value.
    """
    decls = list(decls)
    _declare_constants(decls, scope)
    ctx = EvalContext(None, step_budget=step_budget)
    for decl in decls:
        if not isinstance(decl, (Let, Assign)):
            continue
        if isinstance(decl, Assign) and scope.constant_kind(decl.name) == "const":
            message = f"cannot assign to constant {decl.name!r}"
            raise scope.error(message, decl)
        try:
            value = compile_expr(decl.value, scope)({}, ctx)
        except VPLRuntimeError as exc:
            message = f"cannot evaluate top-level {decl.name!r}: {exc}"
            raise scope.error(message, decl) from exc
        if value is MISSING:
            message = f"top-level {decl.name!r} has no value (it reads a missing name or field)"
            raise scope.error(message, decl)
        scope.set_constant(decl.name, value)
    scope.freeze_constants()
    return {name: scope.constant_value(name) for name in scope.constant_names()}


def compile_toplevel(
    decls: Iterable[Any], scope: Scope, *, step_budget: int = DEFAULT_STEP_BUDGET
) -> dict[str, Callable[..., Any]]:
    """Load a program's declarations: declare its top-level constants, compile
    every ``fn`` (declared anywhere), then evaluate the constants in order.

    This is the order that makes constants visible to functions and lets
    constants call any function. Returns the compiled functions by name.
    """
    decls = list(decls)
    _declare_constants(decls, scope)
    functions = compile_functions([d for d in decls if isinstance(d, FnDecl)], scope)
    evaluate_toplevel(decls, scope, step_budget=step_budget)
    return functions
