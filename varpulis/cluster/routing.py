"""Event routing inside a pipeline group: pure functions over the group's routes.

A pattern is ``*`` (everything), ``Prefix*`` (case-sensitive prefix; a ``*``
elsewhere is literal) or an exact event type. :func:`find_target_pipeline` picks
where an *injected* event goes: the ``_external`` routes in order, first match
wins, no match → the group's first pipeline; :func:`find_route` also says which
pattern matched, and :func:`family_type` the type the event is delivered as (a
``Prefix*`` route names an event family: a target that reads ``Prefix`` but not
the event's own type gets the event as ``Prefix``, which is how the tutorial's
``EventB_foo`` reaches ``stream B = EventB``). :func:`forward_targets` picks where
a pipeline's *output* event goes: every route whose ``from_pipeline`` is that
pipeline and whose patterns match (fan-out; each target once, in route order).
Routes are ``(from_pipeline, to_pipeline, event_types)`` triples.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

__all__ = [
    "EXTERNAL",
    "Route",
    "family_type",
    "find_route",
    "find_target_pipeline",
    "forward_targets",
    "matches",
]

#: ``from_pipeline`` of routes for events injected from outside the group.
EXTERNAL = "_external"

Route = tuple[str, str, Sequence[str]]


def matches(pattern: str, event_type: str) -> bool:
    """True when *event_type* matches *pattern* (``*``, ``Prefix*`` or exact)."""
    if pattern.endswith("*"):
        return event_type.startswith(pattern[:-1])
    return pattern == event_type


def find_route(
    routes: Sequence[Route], pipelines: Sequence[str], event_type: str
) -> tuple[str | None, str | None]:
    """``(target, pattern)`` for an injected *event_type*; pattern None when no route matched."""
    for source, target, patterns in routes:
        if source != EXTERNAL:
            continue
        for pattern in patterns:
            if matches(pattern, event_type):
                return target, pattern
    return (pipelines[0] if pipelines else None), None


def find_target_pipeline(
    routes: Sequence[Route], pipelines: Sequence[str], event_type: str
) -> str | None:
    """The pipeline an injected *event_type* goes to; None only for a group without pipelines."""
    return find_route(routes, pipelines, event_type)[0]


def family_type(pattern: str | None, event_type: str, reads: Collection[str]) -> str:
    """The type an event routed by *pattern* is delivered as to a pipeline reading *reads*.

    The event's own type when the pipeline reads it (or no ``Prefix*`` pattern
    routed it); the pattern's stem when the pipeline reads the stem but not
    the event's type (``EventB*`` delivers ``EventB_foo`` as ``EventB`` to a
    pipeline whose streams read ``EventB``); else the event's own type.

    >>> family_type("EventB*", "EventB_foo", {"EventB"})
    'EventB'
    >>> family_type("EventB*", "EventB_foo", {"EventB", "EventB_foo"})
    'EventB_foo'
    """
    if event_type in reads or pattern is None or len(pattern) < 2 or pattern[-1] != "*":
        return event_type
    stem = pattern[:-1]
    return stem if stem in reads else event_type


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
