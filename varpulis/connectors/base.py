"""The sink and source interfaces every connector implements.

A :class:`Sink` receives the events a stream sends with ``.to(Connector, ...)``:
``send(events)`` is called from the engine's thread with a list it may not
keep (copy what you buffer); it must not drop events silently — it either
delivers them, applies backpressure (blocks), or counts them in ``dropped``
and logs a warning. ``flush()`` delivers what is buffered; ``close()`` flushes
and releases resources and is idempotent. Payloads use
:func:`varpulis.events.dumps_sink` (flat JSON: ``event_type``, ``timestamp``,
then the fields).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from varpulis.events import Event

__all__ = ["ConnectorConfig", "Sink", "number_param"]


class ConnectorConfig:
    """A declared connector: ``connector name = kind(params)`` with evaluated params.

    ``params`` holds the connector's parameters merged with the ``.to``/
    ``.from`` call's own (the call wins); values are plain Python values.
    """

    __slots__ = ("kind", "name", "params")

    def __init__(self, name: str, kind: str, params: Mapping[str, Any]) -> None:
        self.name, self.kind, self.params = name, kind, dict(params)

    def __repr__(self) -> str:
        return f"ConnectorConfig({self.name!r}, {self.kind!r}, {self.params!r})"


class Sink:
    """Base class of sinks; subclasses override :meth:`send` (and usually ``flush``)."""

    def __init__(self, config: ConnectorConfig) -> None:
        self.config = config
        self.sent = 0
        self.dropped = 0
        self.closed = False

    def send(self, events: Sequence[Event]) -> None:
        """Deliver *events* (called from the engine thread; see the module doc)."""
        raise NotImplementedError

    def flush(self) -> None:
        """Deliver anything buffered."""

    def close(self) -> None:
        """Flush and release resources; idempotent."""
        if not self.closed:
            self.closed = True
            self.flush()


def number_param(
    params: Mapping[str, Any],
    key: str,
    default: Any,
    cast: Callable[[Any], Any],
    error: Callable[[str], Exception],
    *,
    low: float = 0,
    high: float | None = None,
    what: str = "connector",
) -> Any:
    """Read ``params[key]`` (or *default*) as a number in ``[low, high]``; else raise *error*."""
    raw = params.get(key, default)
    try:
        value = cast(raw)
    except (TypeError, ValueError):
        value = None
    if value is None or value < low or (high is not None and value > high):
        bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
        msg = f"{what}: {key} must be a number {bounds}, got {raw!r}"
        raise error(msg)
    return value
