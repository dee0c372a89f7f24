"""Events: the unit of data that flows through pipelines.

An event has a type name, an insertion-ordered field map and an event time in
integer nanoseconds since the Unix epoch (UTC).
"""

from __future__ import annotations

from typing import Any

__all__ = ["Event"]


class Event:
    """One event: ``event_type``, ``fields`` (a dict, insertion-ordered) and ``timestamp``.

    ``timestamp`` is integer nanoseconds since the epoch. Events are treated as
    immutable once handed to the engine: operators build new events instead of
    mutating ``fields``.
    """

    __slots__ = ("event_type", "fields", "timestamp")

    def __init__(self, event_type: str, fields: dict[str, Any], timestamp: int = 0) -> None:
        self.event_type = event_type
        self.fields = fields
        self.timestamp = timestamp

    def __repr__(self) -> str:
        return f"Event({self.event_type!r}, {self.fields!r}, {self.timestamp})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Event):
            return NotImplemented
        return (self.event_type, self.fields, self.timestamp) == (
            other.event_type,
            other.fields,
            other.timestamp,
        )

    __hash__ = None  # type: ignore[assignment]  # mutable fields: not hashable

    def __reduce__(self) -> tuple[Any, ...]:
        return (Event, (self.event_type, self.fields, self.timestamp))
