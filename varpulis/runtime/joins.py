"""Windowed equi-joins: ``join(A, B).on(A.k == B.j).window(5m)``.

Each arriving event is buffered under its source and key value (the latest
events within the window are kept). When every source has an event with the
same key whose timestamp is within the window of the arriving one, a joined
event is produced from the latest event of each source: fields
``Source.field`` for every source's fields, plus the unprefixed fields (the
first source listed wins). Without ``.on(...)`` every source joins on
``symbol``; without ``.window(d)`` the window is one minute (event time).
"""

from __future__ import annotations

from collections import deque
from typing import Any

from varpulis.compiler.values import MISSING
from varpulis.events import Event
from varpulis.lang import ast

__all__ = ["DEFAULT_JOIN_WINDOW_NS", "JoinBuffer", "join_keys"]

DEFAULT_JOIN_WINDOW_NS = 60 * 10**9


def join_keys(sources: tuple[str, ...], on: Any, error: Any) -> dict[str, str]:
    """Source → key field, from ``A.x == B.y and ...`` (default: ``symbol`` for all)."""
    keys: dict[str, str] = {}
    stack = [on] if on is not None else []
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Binary) and node.op == "and":
            stack.extend((node.left, node.right))
            continue
        sides = (node.left, node.right) if isinstance(node, ast.Binary) else ()
        if (
            node is None
            or getattr(node, "op", None) != "=="
            or not all(
                isinstance(s, ast.Attr) and isinstance(s.obj, ast.Name) and s.obj.id in sources
                for s in sides
            )
        ):
            msg = ".on(...) takes equalities between source fields, e.g. A.id == B.id"
            raise error(msg, node)
        for side in sides:
            keys[side.obj.id] = side.name
    for source in sources:
        keys.setdefault(source, "symbol")
    return keys


class JoinBuffer:
    """Buffers events per (source, key) and produces joined events (see module doc).

    Belongs to one engine thread; memory is bounded by the window: events
    older than the window of the newest event of their buffer are dropped.
    """

    def __init__(self, sources: tuple[str, ...], on: Any, within_ns: int | None, env: Any) -> None:
        self.sources = sources
        self.keys = join_keys(sources, on, env.error)
        self.within = within_ns or DEFAULT_JOIN_WINDOW_NS
        self.name = env.name
        self.buffers: dict[str, dict[Any, deque[Event]]] = {s: {} for s in sources}

    def add(self, ev: Event) -> list[Event]:
        """Buffer *ev*; return the joined event it completes (0 or 1 of them)."""
        source = ev.event_type
        if source not in self.buffers:
            return []
        key = ev.fields.get(self.keys[source], MISSING)
        if key is MISSING:
            return []
        buf = self.buffers[source].setdefault(_key(key), deque())
        buf.append(ev)
        horizon = ev.timestamp - self.within
        while buf and buf[0].timestamp < horizon:
            buf.popleft()
        latest: list[Event] = []
        for other in self.sources:
            candidates = self.buffers[other].get(_key(key))
            if not candidates:
                return []
            last = candidates[-1]
            if abs(ev.timestamp - last.timestamp) > self.within:
                return []
            latest.append(last)
        fields: dict[str, Any] = {}
        for src, event in zip(self.sources, latest, strict=True):
            for name, value in event.fields.items():
                fields[f"{src}.{name}"] = value
        for event in reversed(latest):  # the first source listed wins
            fields.update(event.fields)
        return [Event(self.name, fields, max(e.timestamp for e in latest))]


def _key(value: Any) -> Any:
    return value if not isinstance(value, (list, dict)) else repr(value)
