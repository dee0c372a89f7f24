"""Tests of varpulis.compiler, and the small helpers they share.

The helpers compile VPL text (through :func:`varpulis.lang.parse`) or hand-built
AST nodes and run the result against a fields dict.
"""

from __future__ import annotations

from typing import Any

from varpulis.compiler.evalctx import EvalContext
from varpulis.compiler.exprs import compile_expr, compile_predicate
from varpulis.compiler.functions import compile_toplevel
from varpulis.compiler.scope import Scope
from varpulis.events import Event

__all__ = ["Loaded", "ev", "expr_of", "load", "pred"]


def expr_of(text: str) -> Any:
    """The AST of the VPL expression *text*."""
    from varpulis.lang import parse

    return parse(f"let probe = {text}\n").decls[0].value


def ev(expr: Any, fields: dict | None = None, scope: Scope | None = None, **ctx: Any) -> Any:
    """Compile *expr* (VPL text or an AST node) and evaluate it against *fields*."""
    node = expr_of(expr) if isinstance(expr, str) else expr
    fn = compile_expr(node, scope or Scope())
    return fn({} if fields is None else fields, EvalContext(**ctx))


def pred(expr: Any, fields: dict | None = None, scope: Scope | None = None, **ctx: Any) -> bool:
    """Compile *expr* as a predicate and evaluate it against *fields*."""
    node = expr_of(expr) if isinstance(expr, str) else expr
    fn = compile_predicate(node, scope or Scope())
    return fn({} if fields is None else fields, EvalContext(**ctx))


class Loaded:
    """A program loaded with :func:`compile_toplevel`: its scope and functions."""

    def __init__(self, source: str) -> None:
        from varpulis.lang import parse

        self.source = source
        self.program = parse(source)
        self.scope = Scope(source=source)
        self.functions = compile_toplevel(self.program.decls, self.scope)

    def call(
        self,
        name: str,
        *args: Any,
        fields: dict | None = None,
        event: Event | None = None,
        budget: int | None = None,
    ) -> tuple[Any, list[Event]]:
        """Call fn *name* while collecting emits; return (value, emitted events)."""
        emitted: list[Event] = []
        ctx = EvalContext(event or Event("Trigger", fields or {}, 1_000), emitted=emitted)
        if budget is not None:
            ctx.step_budget = budget
        value = self.functions[name](ctx, fields or {}, *args)
        return value, emitted

    def expr(self, text: str, fields: dict | None = None, **ctx: Any) -> Any:
        """Evaluate a stream expression of this program against *fields*."""
        return ev(text, fields, self.scope, **ctx)


def load(source: str) -> Loaded:
    """Parse and load a VPL program."""
    return Loaded(source)
