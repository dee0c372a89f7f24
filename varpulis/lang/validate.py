"""Semantic checks of a parsed VPL program.

:func:`diagnose` walks a :class:`~varpulis.lang.ast.Program` once and lists
every problem as a :class:`Diagnostic` (errors and warnings, in source order);
:func:`validate` raises the first error as a VPLSemanticError and returns the
warnings. Checked: duplicate declarations, unknown functions (with arity),
operations (with did-you-mean), connectors, contexts and aggregate functions,
operation order (``.having`` needs ``.aggregate``, ``.within``/``.not`` need a
sequence), and top-level assignments.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from varpulis.errors import VPLSemanticError, caret_snippet, line_col
from varpulis.lang import ast
from varpulis.lang.hints import did_you_mean
from varpulis.lang.signatures import AGGREGATES, BUILTINS, OPERATIONS

__all__ = ["Diagnostic", "diagnose", "validate"]

_AGG_OPS = ("+", "-", "*", "/")
_KINDS = {
    ast.EventDecl: "event", ast.StreamDecl: "stream", ast.FnDecl: "fn",
    ast.ConnectorDecl: "connector", ast.ContextDecl: "context", ast.PatternDecl: "pattern",
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One finding: ``severity`` is ``"error"`` or ``"warning"``; ``offset`` 0-based."""

    severity: str
    message: str
    offset: int
    hint: str | None = None

    def render(self, source: str, filename: str | None = None) -> str:
        """The finding with its position, caret snippet and hint."""
        line, column = line_col(source, self.offset)
        where = f"{filename}:" if filename else ""
        out = [f"{self.severity}: {where}line {line}, column {column}: {self.message}"]
        out.append(caret_snippet(source, line, column))
        if self.hint:
            out.append(f"hint: {self.hint}")
        return "\n".join(out)


def validate(program: ast.Program) -> list[Diagnostic]:
    """Raise VPLSemanticError for the first error in *program*; return its warnings."""
    found = diagnose(program)
    for diag in found:
        if diag.severity == "error":
            raise VPLSemanticError(
                diag.message,
                source=program.source,
                offset=diag.offset,
                hint=diag.hint,
                filename=program.filename,
            )
    return found


def diagnose(program: ast.Program) -> list[Diagnostic]:
    """Every error and warning of *program*, in source order."""
    checker = _Checker(program)
    checker.run()
    return sorted(checker.found, key=lambda d: (d.offset, d.severity))


class _Checker:
    def __init__(self, program: ast.Program) -> None:
        self.program = program
        self.found: list[Diagnostic] = []
        self.names: dict[str, dict[str, Any]] = {kind: {} for kind in _KINDS.values()}
        self.globals: dict[str, ast.Let] = {}

    def error(self, node: Any, message: str, hint: str | None = None) -> None:
        self.found.append(Diagnostic("error", message, node.span.start, hint))

    def warn(self, node: Any, message: str, hint: str | None = None) -> None:
        self.found.append(Diagnostic("warning", message, node.span.start, hint))

    # ----------------------------------------------------------- program

    def run(self) -> None:
        for decl in self.program.decls:
            kind = _KINDS.get(type(decl))
            if kind is None:
                continue
            table = self.names[kind]
            if decl.name in table:
                first = line_col(self.program.source, table[decl.name].span.start)[0]
                self.error(decl, f"duplicate {kind} {decl.name!r} (first declared on line {first})")
            else:
                table[decl.name] = decl
        for name in set(self.names["stream"]) & set(self.names["pattern"]):
            self.error(self.names["stream"][name], f"{name!r} is both a stream and a pattern")
        for decl in self.program.decls:
            if isinstance(decl, ast.FnDecl):
                self.fn(decl)
            elif isinstance(decl, ast.StreamDecl):
                self.stream(decl)
            elif isinstance(decl, ast.PatternDecl):
                self.pattern(decl)
            elif isinstance(decl, ast.Let):
                self.exprs(decl.value)
                self.globals.setdefault(decl.name, decl)
            elif isinstance(decl, ast.Assign):
                self.top_assign(decl)
            elif isinstance(decl, ast.ExprStmt):
                self.exprs(decl.expr)
            elif isinstance(decl, (ast.ConnectorDecl, ast.ContextDecl)):
                for _, value in decl.params:
                    self.exprs(value)

    def top_assign(self, decl: ast.Assign) -> None:
        self.exprs(decl.value)
        target = self.globals.get(decl.name)
        if target is None:
            self.error(decl, f"assignment to undeclared variable {decl.name!r}",
                       f"declare it first: var {decl.name} = ...")  # fmt: skip
        elif target.kind != "var":
            self.error(decl, f"cannot assign to {target.kind} {decl.name!r}",
                       f"declare it with 'var {decl.name} = ...' to change it")  # fmt: skip

    # ----------------------------------------------------------- functions

    def fn(self, decl: ast.FnDecl) -> None:
        seen: set[str] = set()
        for param in decl.params:
            if param.name in seen:
                self.error(decl, f"fn {decl.name!r} has two parameters named {param.name!r}")
            seen.add(param.name)
        for stmt in _walk_stmts(decl.body):
            for expr in _stmt_exprs(stmt):
                self.exprs(expr)

    def exprs(self, expr: Any) -> None:
        """Check every call inside *expr*."""
        for node in _walk_expr(expr):
            if isinstance(node, ast.Call):
                self.call(node)

    def call(self, node: ast.Call) -> None:
        user = self.names["fn"].get(node.func)
        if user is not None:
            params = [p.name for p in user.params]
            given = len(node.args) + len(node.kwargs)
            for key, _ in node.kwargs:
                if key not in params:
                    self.error(node, f"fn {node.func!r} has no parameter {key!r}",
                               f"its parameters are {', '.join(params) or 'none'}")  # fmt: skip
            if len(node.args) > len(params) or given > len(params):
                self.error(node, f"fn {node.func!r} takes {len(params)} argument(s), "
                           f"{given} given")  # fmt: skip
            return
        arity = BUILTINS.get(node.func)
        if arity is None:
            choices = [*BUILTINS, *self.names["fn"]]
            self.error(node, f"unknown function {node.func!r}", did_you_mean(node.func, choices))
            return
        low, high = arity
        if node.kwargs:
            self.error(node, f"builtin {node.func!r} takes no keyword arguments")
        count = len(node.args)
        if count < low or (high is not None and count > high):
            want = str(low) if low == high else f"{low} to {high}" if high else f"at least {low}"
            self.error(node, f"{node.func}() takes {want} argument(s), {count} given")

    # ----------------------------------------------------------- streams

    def source_name(self, node: Any, name: str, reader: str) -> None:
        """Warn about a source that names no declared event, stream or pattern
        when it looks like a misspelling (or when the program declares events)."""
        known = {**self.names["event"], **self.names["stream"], **self.names["pattern"]}
        if name in known:
            return
        hint = did_you_mean(name, [k for k in known if k != reader], cutoff=0.8)
        if hint or self.names["event"]:
            self.warn(node, f"{name!r} is not a declared event type, stream or pattern", hint)

    def stream(self, decl: ast.StreamDecl) -> None:
        source = decl.source
        if isinstance(source, ast.EventSource):
            self.source_name(source, source.name, decl.name)
        elif isinstance(source, ast.JoinSource):
            for name in source.sources:
                self.source_name(source, name, decl.name)
        elif isinstance(source, ast.MergeSource):
            for item in source.items:
                self.source_name(item, item.source, decl.name)
        if isinstance(source, ast.MergeSource):
            for item in source.items:
                self.exprs(item.where)
        elif isinstance(source, ast.TimerSource):
            self.exprs(source.interval)
        is_sequence = any(isinstance(op, ast.SeqStep) for op in decl.ops) or (
            isinstance(source, ast.EventSource) and source.name in self.names["pattern"]
        )
        seen: dict[str, Any] = {}
        aliases = {source.alias} if isinstance(source, ast.EventSource) and source.alias else set()
        for op in decl.ops:
            if isinstance(op, ast.SeqStep):
                self.source_name(op, op.event_type, decl.name)
                self.exprs(op.where)
                if op.alias:
                    if op.alias in aliases:
                        self.error(op, f"alias {op.alias!r} is used twice in stream {decl.name!r}")
                    aliases.add(op.alias)
                continue
            if isinstance(op, ast.Negation):
                self.exprs(op.where)
                if not is_sequence:
                    self.error(op, ".not(...) only applies to a sequence (A -> B ...)")
                continue
            self.operation(decl, op, seen, is_sequence)
            seen[op.name] = op

    def operation(self, decl: ast.StreamDecl, op: ast.Op, seen: dict[str, Any], seq: bool) -> None:
        sig = OPERATIONS.get(op.name)
        if sig is None:
            hint = did_you_mean(op.name, OPERATIONS)
            if op.name == "filter":
                hint = "use .where(...)"
            self.error(op, f"unknown operation .{op.name}()", hint)
            return
        count = len(op.args)
        if count < sig.min_args or (sig.max_args is not None and count > sig.max_args):
            want = (
                str(sig.min_args)
                if sig.min_args == sig.max_args
                else f"{sig.min_args} to {sig.max_args}"
                if sig.max_args is not None
                else f"at least {sig.min_args}"
            )
            self.error(op, f".{op.name}() takes {want} positional argument(s), {count} given")
        if sig.kwargs is not None:
            for key, _ in op.kwargs:
                if key not in sig.kwargs:
                    valid = ", ".join(sorted(sig.kwargs)) or "none"
                    self.error(op, f".{op.name}() has no parameter {key!r} (valid: {valid})")
        if sig.needs and sig.needs not in seen:
            self.error(op, f".{op.name}() must follow .{sig.needs}(...)")
        if op.name in ("aggregate", "window") and op.name in seen:
            self.error(op, f"stream {decl.name!r} has a second .{op.name}()")
        if op.name == "within" and not seq:
            self.error(op, ".within(...) only applies to a sequence (A -> B ...)")
        if op.name in ("where", "having") and op.args and isinstance(op.args[0], ast.Literal):
            if not isinstance(op.args[0].value, bool):
                self.error(op, f".{op.name}() needs a condition, not {op.args[0].value!r}")
        if op.name in ("to", "from"):
            self.ref(op, op.args[0] if op.args else None, "connector")
        elif op.name == "context":
            self.ref(op, op.args[0] if op.args else None, "context")
        elif op.name == "emit":
            for key, value in op.kwargs:
                if key == "context" and isinstance(value, ast.Name):
                    self.ref(op, value, "context")
        if op.name == "aggregate":
            if not op.kwargs:
                self.error(op, ".aggregate() needs at least one alias: func(field)")
            for _, value in op.kwargs:
                self.aggregate_item(value)
            return
        for expr in (*op.args, *(value for _, value in op.kwargs)):
            if op.name not in ("to", "from", "context"):
                self.exprs(expr)

    def ref(self, op: ast.Op, node: Any, kind: str) -> None:
        if not isinstance(node, ast.Name):
            self.error(op, f".{op.name}() needs a {kind} name")
            return
        if node.id not in self.names[kind]:
            hint = did_you_mean(node.id, self.names[kind]) or f"declare it: {kind} {node.id} ..."
            self.error(node, f"unknown {kind} {node.id!r}", hint)

    def aggregate_item(self, expr: Any) -> None:
        if isinstance(expr, ast.Binary) and expr.op in _AGG_OPS:
            self.aggregate_item(expr.left)
            self.aggregate_item(expr.right)
            return
        if isinstance(expr, ast.Literal) and isinstance(expr.value, (int, float)):
            return
        if not isinstance(expr, ast.Call):
            hint = "use count(), sum(x), avg(x), min(x), max(x), stddev(x), first(x), ..."
            self.error(expr, "an aggregate item must be a function such as sum(price)", hint)
            return
        arity = AGGREGATES.get(expr.func)
        if arity is None:
            hint = did_you_mean(expr.func, AGGREGATES)
            self.error(expr, f"unknown aggregate function {expr.func!r}", hint)
            return
        if not arity[0] <= len(expr.args) <= arity[1]:
            self.error(expr, f"{expr.func}() takes {arity[0]} to {arity[1]} argument(s)")
        for arg in expr.args:
            if not (isinstance(arg, ast.Call) and arg.func == "distinct"):
                self.exprs(arg)

    def pattern(self, decl: ast.PatternDecl) -> None:
        stack: list[Any] = [decl.pattern]
        while stack:
            node = stack.pop()
            if isinstance(node, ast.PatternItem):
                self.exprs(node.where)
            elif isinstance(node, ast.PatternSeq):
                stack.extend(node.items)
            elif isinstance(node, ast.PatternNot):
                stack.append(node.item)
            else:
                stack.extend((node.left, node.right))


def _walk_stmts(stmts: tuple[Any, ...]) -> Iterator[Any]:
    for stmt in stmts:
        yield stmt
        if isinstance(stmt, ast.If):
            for _, body in stmt.branches:
                yield from _walk_stmts(body)
            yield from _walk_stmts(stmt.orelse)
        elif isinstance(stmt, (ast.While, ast.For)):
            yield from _walk_stmts(stmt.body)


def _stmt_exprs(stmt: Any) -> Iterator[Any]:
    if isinstance(stmt, (ast.Let, ast.Assign)):
        yield stmt.value
    elif isinstance(stmt, ast.If):
        yield from (cond for cond, _ in stmt.branches)
    elif isinstance(stmt, ast.While):
        yield stmt.cond
    elif isinstance(stmt, ast.For):
        yield stmt.iter
    elif isinstance(stmt, ast.Return) and stmt.value is not None:
        yield stmt.value
    elif isinstance(stmt, ast.Emit):
        yield from (value for _, value in stmt.fields)
    elif isinstance(stmt, ast.ExprStmt):
        yield stmt.expr


def _walk_expr(expr: Any) -> Iterator[Any]:
    """Every node of an expression tree (None yields nothing)."""
    stack = [expr]
    while stack:
        node = stack.pop()
        if node is None:
            continue
        yield node
        if isinstance(node, ast.Call):
            stack.extend(node.args)
            stack.extend(value for _, value in node.kwargs)
        elif isinstance(node, ast.Binary):
            stack.extend((node.left, node.right))
        elif isinstance(node, ast.Unary):
            stack.append(node.operand)
        elif isinstance(node, (ast.Attr, ast.Index, ast.Slice)):
            stack.append(node.obj)
            if isinstance(node, ast.Index):
                stack.append(node.index)
            elif isinstance(node, ast.Slice):
                stack.extend((node.start, node.stop))
        elif isinstance(node, ast.Range):
            stack.extend((node.start, node.stop))
        elif isinstance(node, ast.IfExpr):
            stack.extend((node.cond, node.then, node.orelse))
        elif isinstance(node, ast.ArrayLit):
            stack.extend(node.items)
        elif isinstance(node, ast.MapLit):
            stack.extend(value for _, value in node.items)
