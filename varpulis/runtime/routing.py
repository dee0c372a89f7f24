"""Where events go between a pipeline's inline engine and its contexts: pure functions.

Built once per pipeline from its :class:`~varpulis.compiler.plan.PipelinePlan`:
:func:`readers_by_type` maps an event type to the groups (``None`` for the inline
engine, else a context name) whose streams read it, which is how ingress routes an
input; :func:`forward_targets` tells where an *output* of one group goes (the other
groups that read its type; only the contexts named by ``.emit(context: c)`` when
its stream names some, DESIGN §4.1 decision 9); :func:`explicit_targets` collects
those names. No state, no threads: the context runtime caches the answers.
"""

from __future__ import annotations

from varpulis.compiler.plan import PipelinePlan
from varpulis.lang import ast

__all__ = ["Group", "explicit_targets", "forward_targets", "readers_by_type"]

Group = str | None  # a context name, or None for the inline engine


def readers_by_type(plan: PipelinePlan) -> dict[str, tuple[Group, ...]]:
    """Event type → the groups with a stream reading it: inline first, then contexts."""
    order: list[Group] = [None, *plan.contexts]
    readers: dict[str, set[Group]] = {}
    for s in plan.streams:
        for name in s.subscriptions:
            readers.setdefault(name, set()).add(s.context)
    return {t: tuple(g for g in order if g in groups) for t, groups in readers.items()}


def explicit_targets(plan: PipelinePlan) -> dict[str, tuple[str, ...]]:
    """Stream name → the contexts its ``.emit(context: c)`` names (DESIGN §4.1, 9)."""
    out: dict[str, tuple[str, ...]] = {}
    for s in plan.streams:
        names = [v.id for op in s.decl.ops if isinstance(op, ast.Op) and op.name == "emit"
                 for k, v in op.kwargs if k == "context" and isinstance(v, ast.Name)]  # fmt: skip
        if names:
            out[s.name] = tuple(dict.fromkeys(names))
    return out


def forward_targets(readers: dict[str, tuple[Group, ...]], explicit: dict[str, tuple[str, ...]],
                    event_type: str, source: Group) -> tuple[Group, ...]:  # fmt: skip
    """Where an output of *event_type* produced in *source* goes: the other groups that
    read it (the source's own engine already chained it), restricted to the contexts
    named by ``.emit(context: ...)`` when its stream names some."""
    groups = tuple(g for g in readers.get(event_type, ()) if g != source)
    named = explicit.get(event_type)
    return groups if named is None else tuple(g for g in groups if g in named)
