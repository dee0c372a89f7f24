"""Event routing inside a pipeline group: pure functions over the group's routes.

A pattern is ``*`` (everything), ``Prefix*`` (case-sensitive prefix; a ``*``
elsewhere is literal) or an exact event type. :func:`find_target_pipeline` picks
where an *injected* event goes: the ``_external`` routes in order, first match
wins, no match → the group's first pipeline. :func:`forward_targets` picks where
a pipeline's *output* event goes: every route whose ``from_pipeline`` is that
pipeline and whose patterns match (fan-out; each target once, in route order).
Routes are ``(from_pipeline, to_pipeline, event_types)`` triples.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["EXTERNAL", "Route", "find_target_pipeline", "forward_targets", "matches"]

#: ``from_pipeline`` of routes for events injected from outside the group.
EXTERNAL = "_external"

Route = tuple[str, str, Sequence[str]]


def matches(pattern: str, event_type: str) -> bool:
    """True when *event_type* matches *pattern* (``*``, ``Prefix*`` or exact)."""
    if pattern.endswith("*"):
        return event_type.startswith(pattern[:-1])
    return pattern == event_type


def find_target_pipeline(
    routes: Sequence[Route], pipelines: Sequence[str], event_type: str
) -> str | None:
    """The pipeline an injected *event_type* goes to; None only for a group without pipelines."""
    for source, target, patterns in routes:
        if source == EXTERNAL and any(matches(p, event_type) for p in patterns):
            return target
    return pipelines[0] if pipelines else None


def forward_targets(routes: Sequence[Route], from_pipeline: str, event_type: str) -> list[str]:
    """Pipelines an output *event_type* of *from_pipeline* is forwarded to (maybe none)."""
    out: list[str] = []
    for source, target, patterns in routes:
        if (
            source == from_pipeline
            and target not in out
            and any(matches(p, event_type) for p in patterns)
        ):
            out.append(target)
    return out
