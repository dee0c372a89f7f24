"""Compile sequence streams and named SASE patterns into :class:`SequenceSpec` (DESIGN §4.1.12).

:func:`compile_sequence` reads a stream ``S = A as a -> B where p as b -> all C as c
.not(X where q) .within(d) .partition_by(k) ...`` or ``S = P ...`` where ``pattern P =
SEQ(...) | p AND q | p OR q [within d] [partition by k]``, and returns the spec that
:class:`SequenceMatcher` runs (None when the stream is no sequence). The contract,
per event: a run starts for every event matching the first step (after the existing
runs were advanced by it); a run advances when the event matches its next step (type
and predicate, with the run's captures visible), else it skips the event; a completed
run yields one :class:`Match` and is removed, except that a run whose last step is
``-> all``/``+``/``*`` stays and matches once per further element; a Kleene or optional
step in the middle is non-greedy (an event first tries the step after it). ``.not(X
where q)`` anywhere in the chain kills every run whose captures satisfy ``q`` (negations
are checked before runs advance); ``NOT X`` between two ``SEQ`` items kills a run while
it waits for the item after it. ``.within(d)`` drops a run once an event later than its
first event's timestamp + d has arrived (event time); ``.partition_by(k)`` keeps runs
per value of ``k``; a stream's ``.within``/``.partition_by`` override the pattern's.
Scoping: a step sees the aliases of the steps before it (and of the other branches of
an AND), never its own (``-> B where b.x > 1 as b`` never matches); negations see every
alias. Captures: ``alias -> Event``, or a list (latest last) for ``+``/``*``/``-> all``
steps, where ``alias.f`` reads the latest and ``len(alias)`` counts; an absent optional
step (``*``/``?`` matched zero times) has no entry, so ``alias.f`` and ``len(alias)``
are missing. A trailing ``?`` is never waited for (the run completes without it), a
trailing ``*`` matches once without elements and again per element. ``p OR q`` runs both
sides as separate runs; ``p AND q`` runs one run through both sides in any interleaving
and matches once, when both are complete. ``.where`` written before the first ``->``
filters the first step; after the last step, it and every other operation (``.emit``,
``.select``, ``.to``...) are left in ``spec.rest`` for the engine to run on each match,
whose current event is ``Match.last`` with ``Match.captures`` visible. Unsupported
shapes (OR inside AND or SEQ, NOT first or last, ...) raise VPLSemanticError naming them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from functools import reduce
from typing import Any

from varpulis.compiler.evalctx import EvalContext
from varpulis.compiler.exprs import compile_expr, compile_predicate
from varpulis.compiler.scope import Scope
from varpulis.errors import VPLRuntimeError
from varpulis.lang import ast
from varpulis.runtime.nfa import (
    MAX_RUNS,
    MISSING_KEY,
    Guard,
    Match,
    SequenceMatcher,
    SequenceSpec,
    Step,
    partition_key,
)

__all__ = [
    "MAX_RUNS",
    "MISSING_KEY",
    "Guard",
    "Match",
    "SequenceMatcher",
    "SequenceSpec",
    "Step",
    "compile_sequence",
    "partition_key",
    "pattern_branches",
]

#: Operations that configure the stream rather than act on matches: allowed anywhere.
_ANYWHERE = frozenset({"context", "watermark", "allowed_lateness"})

# One written step before compilation: (node for errors, type, alias, where, quant, NOTs).
_Item = tuple[Any, str, Any, Any, str, tuple]


def compile_sequence(
    decl: ast.StreamDecl, scope: Scope, patterns: Mapping[str, ast.PatternDecl]
) -> SequenceSpec | None:
    """Compile the sequence of stream *decl* (see the module docstring).

    Returns None when the stream has no ``->`` step and its source is not one of the
    named *patterns*. Predicates are compiled in *scope* (with the visible aliases);
    malformed or unsupported sequences raise :class:`~varpulis.errors.VPLSemanticError`.
    """
    source = decl.source
    pattern = patterns.get(source.name) if isinstance(source, ast.EventSource) else None
    step_at = [i for i, op in enumerate(decl.ops) if isinstance(op, ast.SeqStep)]
    if not step_at and pattern is None:
        return None
    if pattern is not None and step_at:
        message = f"pattern {pattern.name!r} cannot take '->' steps (stream {decl.name!r})"
        raise scope.error(message, decl.ops[step_at[0]], "put every step in the pattern")
    within: ast.Expr | None = None
    key: str | None = None
    negations: list[ast.Negation] = []
    leading: list[ast.Expr] = []
    rest: list[ast.Op] = []
    first_step, last_step = (step_at[0], step_at[-1]) if step_at else (-1, -1)
    for i, op in enumerate(decl.ops):
        if isinstance(op, ast.SeqStep):
            continue
        if isinstance(op, ast.Negation):
            negations.append(op)
        elif op.name == "within":
            within = _single_arg(op, scope)
        elif op.name == "partition_by":
            arg = _single_arg(op, scope)
            if not isinstance(arg, ast.Name):
                message = ".partition_by() takes a field name"
                raise scope.error(message, op)
            key = arg.id
        elif op.name == "where" and i < first_step:
            leading.append(_single_arg(op, scope))
        elif i < last_step and op.name not in _ANYWHERE:
            message = f".{op.name}() cannot come between the steps of sequence {decl.name!r}"
            hint = "filter a step with '-> B where ...'" if op.name == "where" else None
            raise scope.error(message, op, hint)
        else:
            rest.append(op)
    if pattern is None:
        where = reduce(lambda a, b: ast.Binary("and", a, b), leading) if leading else None
        items: list[_Item] = [(source, source.name, source.alias, where, "", ())]
        for i in step_at:
            step = decl.ops[i]
            quant = "+" if step.kleene else ""
            items.append((step, step.event_type, step.alias, step.where, quant, ()))
        alternatives = (_compile_alternative([items], scope),)
    else:
        alternatives = tuple(
            _compile_alternative(branches, scope) for branches in pattern_branches(pattern, scope)
        )
        within = within if within is not None else pattern.within
        key = key if key is not None else pattern.partition_by
    aliases = frozenset(s.alias for alt in alternatives for b in alt for s in b if s.alias)
    guards = tuple(_guard(n.event_type, n.where, scope, aliases) for n in negations)
    return SequenceSpec(
        name=decl.name,
        alternatives=alternatives,
        negations=guards,
        within_ns=_within_ns(within, scope),
        partition_by=key,
        rest=tuple(rest),
    )


# ---------------------------------------------------------------------- helpers


def _single_arg(op: ast.Op, scope: Scope) -> ast.Expr:
    if len(op.args) != 1 or op.kwargs:
        message = f".{op.name}() takes exactly one argument"
        raise scope.error(message, op)
    return op.args[0]


def _within_ns(expr: ast.Expr | None, scope: Scope) -> int | None:
    if expr is None:
        return None
    value: Any = None
    if isinstance(expr, ast.Duration):
        value = expr.nanos
    elif not isinstance(expr, ast.Literal):  # e.g. a constant holding a duration
        try:
            value = compile_expr(expr, scope)({}, EvalContext())
        except VPLRuntimeError:
            value = None
    if type(value) is not int or value < 0:
        message = "within needs a duration such as 30s or 5m"
        raise scope.error(message, expr)
    return value


def _mentions(node: Any, names: frozenset[str]) -> bool:
    """Tell whether expression *node* refers to any of *names*."""
    if isinstance(node, ast.Name):
        return node.id in names
    if isinstance(node, tuple):
        return any(_mentions(n, names) for n in node)
    if dataclasses.is_dataclass(node):
        return any(
            _mentions(getattr(node, f.name), names)
            for f in dataclasses.fields(node)
            if f.name != "span"
        )
    return False


def _guard(event_type: str, where: ast.Expr | None, scope: Scope, aliases: frozenset[str]) -> Guard:
    if where is None:
        return Guard(event_type)
    predicate = compile_predicate(where, scope.with_aliases(aliases))
    return Guard(event_type, predicate, _mentions(where, aliases))


def _compile_alternative(
    branches: Sequence[Sequence[_Item]], scope: Scope
) -> tuple[tuple[Step, ...], ...]:
    """Compile the branches of one alternative (an AND; one branch for a SEQ)."""
    seen: dict[str, Any] = {}
    for branch in branches:
        for node, _, alias, _, _, _ in branch:
            if alias is None:
                continue
            if alias in seen:
                message = f"alias {alias!r} is bound twice in one sequence"
                raise scope.error(message, node)
            seen[alias] = node
    out = []
    for b, branch in enumerate(branches):
        others = {item[2] for c, o in enumerate(branches) if c != b for item in o if item[2]}
        steps = []
        visible = set(others)
        for _, event_type, alias, where, quant, nots in branch:
            view = scope.with_aliases(visible)
            guards = tuple(_guard(n.event_type, n.where, scope, frozenset(visible)) for n in nots)
            predicate = None if where is None else compile_predicate(where, view)
            steps.append(Step(event_type, alias, predicate, quant, guards))
            if alias is not None:
                visible.add(alias)
        out.append(tuple(steps))
    return tuple(out)


def pattern_branches(decl: ast.PatternDecl, scope: Scope) -> list[list[list[_Item]]]:
    """Normalise a named pattern to OR (list) of AND (list) of SEQ item lists."""
    alternatives: list[Any] = []
    _flatten(decl.pattern, ast.PatternOr, alternatives)
    out = []
    for alternative in alternatives:
        branches: list[Any] = []
        _flatten(alternative, ast.PatternAnd, branches)
        out.append([_branch_items(node, decl, scope) for node in branches])
    return out


def _flatten(node: Any, kind: type, into: list[Any]) -> None:
    if isinstance(node, kind):
        _flatten(node.left, kind, into)
        _flatten(node.right, kind, into)
    else:
        into.append(node)


def _branch_items(node: Any, decl: ast.PatternDecl, scope: Scope) -> list[_Item]:
    where = f"in pattern {decl.name!r}"
    if isinstance(node, ast.PatternOr):
        message = f"OR inside AND or SEQ is not supported {where}; write (p AND r) OR (q AND r)"
        raise scope.error(message, node)
    if isinstance(node, ast.PatternNot):
        message = f"NOT is only supported between two items of a SEQ {where}"
        raise scope.error(message, node)
    flat: list[Any] = []
    _seq_items(node, flat, where, scope)
    items: list[_Item] = []
    nots: list[ast.PatternItem] = []
    for item in flat:
        if isinstance(item, ast.PatternNot):
            inner = item.item
            if not isinstance(inner, ast.PatternItem) or inner.quant:
                message = f"NOT takes a single event type (with an optional where) {where}"
                raise scope.error(message, item)
            if not items:
                message = f"NOT cannot be the first item of a SEQ {where}"
                raise scope.error(message, item, "negate inside the SEQ, after its first item")
            nots.append(inner)
            continue
        items.append((item, item.event_type, item.alias, item.where, item.quant, tuple(nots)))
        nots = []
    if nots:
        message = f"NOT cannot be the last item of a SEQ {where} (it would need a timeout)"
        raise scope.error(message, decl)
    return items


def _seq_items(node: Any, into: list[Any], where: str, scope: Scope) -> None:
    if isinstance(node, ast.PatternSeq):
        if not node.items:
            message = f"empty SEQ() {where}"
            raise scope.error(message, node)
        for item in node.items:
            if isinstance(item, (ast.PatternAnd, ast.PatternOr)):
                kind = "AND" if isinstance(item, ast.PatternAnd) else "OR"
                message = f"{kind} inside SEQ is not supported {where}"
                raise scope.error(message, item)
            if isinstance(item, ast.PatternNot):
                into.append(item)
            else:
                _seq_items(item, into, where, scope)
    elif isinstance(node, ast.PatternItem):
        if node.quant not in ("", "+", "*", "?"):
            message = f"unknown quantifier {node.quant!r} {where}; valid: + * ?"
            raise scope.error(message, node)
        into.append(node)
    else:
        message = f"unsupported pattern element {type(node).__name__} {where}"
        raise scope.error(message, node)
