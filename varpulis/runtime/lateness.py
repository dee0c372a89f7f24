"""Event-time watermarks and late-event dropping (``.watermark``, ``.allowed_lateness``).

A stream with ``.watermark(out_of_order: d)`` sets, for each type it reads,
``watermark(type) = max timestamp seen − d``; other types use d = 0. The
effective watermark is the minimum over the types seen. Once any stream has
``.allowed_lateness(l)``, an input whose timestamp is below the effective
watermark is dropped before any stream sees it, unless a stream reading its
type allows a lateness ``l`` with ``timestamp ≥ watermark − l``. Without any
``.allowed_lateness`` nothing is dropped. Timestamps are ns; one tracker
belongs to one engine thread.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from varpulis.lang import ast

__all__ = ["LatenessTracker"]


def _duration(op: ast.Op, key: str | None) -> int | None:
    node = dict(op.kwargs).get(key) if key else (op.args[0] if op.args else None)
    return node.nanos if isinstance(node, ast.Duration) else None


class LatenessTracker:
    """Decides whether an input is too late (see the module doc)."""

    def __init__(self, streams: Iterable[Any]) -> None:
        self.out_of_order: dict[str, int] = {}
        self.lateness: dict[str, int] = {}
        for splan in streams:
            for op in splan.decl.ops:
                if not isinstance(op, ast.Op):
                    continue
                if op.name == "watermark" and (d := _duration(op, "out_of_order")) is not None:
                    for name in splan.subscriptions:
                        self.out_of_order[name] = max(self.out_of_order.get(name, 0), d)
                elif op.name == "allowed_lateness" and (d := _duration(op, None)) is not None:
                    for name in splan.subscriptions:
                        self.lateness[name] = max(self.lateness.get(name, 0), d)
        self.enabled = bool(self.lateness)
        self.dropped = 0
        self._marks: dict[str, int] = {}

    def watermark(self) -> int | None:
        """The effective watermark (ns), or None before any event."""
        return min(self._marks.values()) if self._marks else None

    def admit(self, event_type: str, timestamp: int) -> bool:
        """Record the event; False when it must be dropped as too late."""
        mark = self.watermark()
        late = mark is not None and timestamp < mark - self.lateness.get(event_type, 0)
        if late:
            self.dropped += 1
            return False
        candidate = timestamp - self.out_of_order.get(event_type, 0)
        if candidate > self._marks.get(event_type, candidate - 1):
            self._marks[event_type] = candidate
        return True
