"""Windows: buffer a stream's events and release them in batches (``.window(...)``).

:func:`compile_window` checks a ``.window(...)`` operation once and returns a
:class:`WindowSpec`, a small frozen (picklable) factory; calling it makes a fresh
window. Every window has ``add(event) -> list[list[Event]]`` (the batches that
closed because of *event*, oldest first; usually an empty list, which count
windows share between calls: read it, never mutate it) and ``flush() ->
list[list[Event]]`` (release what is still open and start over empty; only for
``--flush-at-end`` and shutdown, DESIGN §4.1.10). Times are event times, the
integer nanoseconds of :attr:`Event.timestamp`; events are expected in
non-decreasing time order, and a late event simply joins the open window. A
window mutates only its own buffers; the batches it returns are new lists the
caller owns (the events in them are shared, never copied). A window object, and a
:class:`PartitionedWindow`, belongs to one engine thread.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from varpulis.compiler.scope import Scope
from varpulis.events import Event
from varpulis.lang import ast
from varpulis.runtime.aggregates import distinct_key

__all__ = [
    "COUNT",
    "SESSION",
    "SLIDING_COUNT",
    "SLIDING_TIME",
    "TIME",
    "CountWindow",
    "PartitionedWindow",
    "SessionWindow",
    "SlidingCountWindow",
    "SlidingTimeWindow",
    "TimeWindow",
    "Window",
    "WindowFactory",
    "WindowSpec",
    "compile_window",
]

COUNT = "count"
SLIDING_COUNT = "sliding_count"
TIME = "time"
SLIDING_TIME = "sliding_time"
SESSION = "session"

_FORMS = (
    ".window(100) (count), .window(100, sliding: 10), .window(5m) (event time), "
    ".window(5m, sliding: 1m), .window(session: 30s)"
)
_KWARGS = ("sliding", "session", "policy")
#: What ``add`` returns when no batch closes: shared, so it must never be mutated.
_NOTHING: list[list[Event]] = []


class Window(Protocol):
    """What every window offers (see the module docstring for the contract)."""

    def add(self, event: Event) -> list[list[Event]]: ...

    def flush(self) -> list[list[Event]]: ...


WindowFactory = Callable[[], Window]


# ------------------------------------------------------------------ windows


class CountWindow:
    """``.window(N)``: every N events form a batch."""

    __slots__ = ("_buf", "size")

    def __init__(self, size: int) -> None:
        self.size = size
        self._buf: list[Event] = []

    def add(self, event: Event) -> list[list[Event]]:
        buf = self._buf
        buf.append(event)
        if len(buf) < self.size:
            return _NOTHING
        self._buf = []  # hand the full list over instead of copying it
        return [buf]

    def flush(self) -> list[list[Event]]:
        buf, self._buf = self._buf, []
        return [buf] if buf else []

    def __len__(self) -> int:
        """The number of events in the open window."""
        return len(self._buf)


class SlidingCountWindow:
    """``.window(N, sliding: M)``: the last N events, every M events once N are buffered."""

    __slots__ = ("_buf", "_since", "size", "slide")

    def __init__(self, size: int, slide: int) -> None:
        self.size, self.slide = size, slide
        self._buf: deque[Event] = deque(maxlen=size)
        self._since = 0  # events added since the last batch

    def add(self, event: Event) -> list[list[Event]]:
        buf = self._buf
        buf.append(event)
        self._since += 1
        if self._since < self.slide or len(buf) < self.size:
            return []
        self._since = 0
        return [list(buf)]

    def flush(self) -> list[list[Event]]:
        # Only events no batch has released yet make the buffer "open".
        batch = list(self._buf) if self._since else []
        self._buf.clear()
        self._since = 0
        return [batch] if batch else []


class TimeWindow:
    """``.window(d)``: tumbling event-time window that starts at its first event.

    An event at ``ts >= start + d`` closes the window (the event is not in the
    batch) and opens the next one at ``ts``, so windows are not aligned to
    clock boundaries.
    """

    __slots__ = ("_buf", "_end", "size")

    def __init__(self, size: int) -> None:
        self.size = size
        self._buf: list[Event] = []
        self._end: int | None = None  # start + size of the open window

    def add(self, event: Event) -> list[list[Event]]:
        ts = event.timestamp
        end = self._end
        if end is None:
            self._end = ts + self.size
        elif ts >= end:
            batch = self._buf
            self._buf = [event]
            self._end = ts + self.size
            return [batch]
        self._buf.append(event)
        return []

    def flush(self) -> list[list[Event]]:
        buf, self._buf, self._end = self._buf, [], None
        return [buf] if buf else []


class SlidingTimeWindow:
    """``.window(size, sliding: slide)``: the events of the last *size*, every *slide*.

    Each event is appended, then events with ``ts < event_ts - size`` are
    evicted; the whole buffer is a batch on the first event and whenever
    ``event_ts >= last_batch_ts + slide``. A late event is evicted by its time
    wherever it sits in the buffer (the buffer is filtered while it is out of
    order; in order, eviction stops at the first young event).
    """

    __slots__ = ("_buf", "_last", "_latest", "_pending", "_sorted", "size", "slide")

    def __init__(self, size: int, slide: int) -> None:
        self.size, self.slide = size, slide
        self._buf: deque[Event] = deque()
        self._last: int | None = None  # event time of the last batch
        self._latest: int | None = None  # largest event time in the buffer
        self._sorted = True  # buffer in time order: eviction may stop at the first young event
        self._pending = 0  # events added since the last batch

    def add(self, event: Event) -> list[list[Event]]:
        ts = event.timestamp
        buf = self._buf
        latest = self._latest
        if latest is None or ts >= latest:
            self._latest = ts
        else:
            self._sorted = False
        buf.append(event)
        cutoff = ts - self.size
        if self._sorted:
            while buf[0].timestamp < cutoff:
                buf.popleft()
        else:
            self._evict_unsorted(cutoff)
        last = self._last
        if last is not None and ts < last + self.slide:
            self._pending += 1
            return []
        self._last = ts
        self._pending = 0
        return [list(buf)]

    def _evict_unsorted(self, cutoff: int) -> None:
        # A late event broke the time order: filter the whole buffer (rare).
        kept = [ev for ev in self._buf if ev.timestamp >= cutoff]
        self._buf.clear()  # in place: add() holds a reference to the deque
        self._buf.extend(kept)
        stamps = [ev.timestamp for ev in kept]
        self._sorted = all(a <= b for a, b in zip(stamps, stamps[1:], strict=False))
        self._latest = max(stamps)

    def flush(self) -> list[list[Event]]:
        batch = list(self._buf) if self._pending else []
        self._buf.clear()
        self._last = self._latest = None
        self._sorted, self._pending = True, 0
        return [batch] if batch else []


class SessionWindow:
    """``.window(session: gap)``: a gap strictly longer than *gap* closes the session.

    The gap is measured from the latest event time seen in the open session,
    so a late event never moves the session's end backwards.
    """

    __slots__ = ("_buf", "_latest", "gap")

    def __init__(self, gap: int) -> None:
        self.gap = gap
        self._buf: list[Event] = []
        self._latest = 0

    def add(self, event: Event) -> list[list[Event]]:
        ts = event.timestamp
        buf = self._buf
        if buf and ts - self._latest > self.gap:
            self._buf = [event]
            self._latest = ts
            return [buf]
        buf.append(event)
        if ts > self._latest or len(buf) == 1:
            self._latest = ts
        return []

    def flush(self) -> list[list[Event]]:
        buf, self._buf = self._buf, []
        return [buf] if buf else []


class PartitionedWindow:
    """One window per partition key (``.partition_by(k)`` before ``.window(...)``).

    ``key_of(event)`` returns the event's partition value (the engine passes
    the field's value, or MISSING when the event lacks the field: missing is a
    partition of its own, rendered ``"default"`` by the aggregate). Keys are
    compared as VPL values (:func:`~varpulis.runtime.aggregates.distinct_key`:
    ``1`` and ``1.0`` share a partition, ``true`` and ``1`` do not). Windows are
    made by *factory* when a key is first seen and are never dropped, so memory
    grows with the number of distinct keys. :meth:`flush` flushes every
    partition in first-seen key order.
    """

    __slots__ = ("_adders", "_count", "_factory", "_key_of", "_windows")

    def __init__(self, key_of: Callable[[Event], Any], factory: WindowFactory) -> None:
        self._key_of = key_of
        self._factory = factory
        self._windows: dict[Any, Window] = {}
        self._adders: dict[Any, Callable[[Event], list[list[Event]]]] = {}
        # Count windows are filled here directly: one call per event instead of two.
        count = isinstance(factory, WindowSpec) and factory.kind == COUNT
        self._count = factory.size if count else 0  # type: ignore[union-attr]

    def __len__(self) -> int:
        """The number of partitions seen so far."""
        return len(self._windows)

    def add(self, event: Event) -> list[list[Event]]:
        key = self._key_of(event)
        kind = type(key)
        if kind is not str and kind is not int:  # str and int are their own keys
            key = distinct_key(key)
        if self._count:
            window: Any = self._windows.get(key)
            if window is not None:  # CountWindow.add, inlined
                buf = window._buf
                buf.append(event)
                if len(buf) < self._count:
                    return _NOTHING
                window._buf = []
                return [buf]
        add = self._adders.get(key)
        if add is None:
            window = self._windows[key] = self._factory()
            add = self._adders[key] = window.add
        return add(event)

    def flush(self) -> list[list[Event]]:
        return [batch for window in self._windows.values() for batch in window.flush()]

    def partition(self, key: Any) -> Window:
        """The window of *key* (a key as :meth:`add` computes it: a str or int is its own),
        made and registered after the keys seen so far when *key* is new."""
        window = self._windows.get(key)
        if window is None:
            window = self._windows[key] = self._factory()
            self._adders[key] = window.add
        return window

    def partitions(self) -> list[Window]:
        """The partitions' windows in first-seen key order (a new list)."""
        return list(self._windows.values())


# ------------------------------------------------------------------ compile


@dataclass(frozen=True, slots=True)
class WindowSpec:
    """A checked ``.window(...)``: *kind* and its sizes; calling it makes a new window.

    ``size`` is a count (``count``, ``sliding_count``) or nanoseconds (``time``,
    ``sliding_time``; the gap for ``session``); ``slide`` is the sliding step
    in the same unit, None for the other kinds.
    """

    kind: str
    size: int
    slide: int | None = None

    def __call__(self) -> Window:
        kind = self.kind
        if kind == COUNT:
            return CountWindow(self.size)
        if kind == TIME:
            return TimeWindow(self.size)
        if kind == SESSION:
            return SessionWindow(self.size)
        slide = self.slide if self.slide is not None else 1
        if kind == SLIDING_COUNT:
            return SlidingCountWindow(self.size, slide)
        if kind == SLIDING_TIME:
            return SlidingTimeWindow(self.size, slide)
        message = f"unknown window kind {kind!r}"
        raise ValueError(message)


def compile_window(op: ast.Op, scope: Scope) -> WindowSpec:
    """Check the ``.window(...)`` operation *op* and return its :class:`WindowSpec`.

    Accepted forms: ``.window(N)``, ``.window(N, sliding: M)`` (positive int
    literals), ``.window(d)``, ``.window(d, sliding: s)`` (positive duration
    literals) and ``.window(session: gap)``; ``policy:`` is accepted and
    ignored, as in the original. Anything else raises
    :class:`~varpulis.errors.VPLSemanticError` positioned at the bad argument,
    naming it and listing the valid forms (the original silently used a
    5-minute window instead).
    """
    kwargs: dict[str, Any] = {}
    for key, value in op.kwargs:
        if key not in _KWARGS:
            message = f".window() has no parameter {key!r} (valid: {', '.join(_KWARGS)})"
            raise scope.error(message, value, f"valid forms: {_FORMS}")
        if key in kwargs:
            message = f".window() got {key}: twice"
            raise scope.error(message, value)
        kwargs[key] = value
    if "session" in kwargs:
        gap = kwargs["session"]
        if op.args or "sliding" in kwargs:
            message = ".window(session: gap) takes no size and no sliding:"
            raise scope.error(message, op.args[0] if op.args else kwargs["sliding"])
        return WindowSpec(SESSION, _positive_duration(gap, "session gap", scope))
    if len(op.args) != 1:
        message = f".window() takes one size, got {len(op.args)}"
        raise scope.error(message, op.args[1] if len(op.args) > 1 else op, f"valid forms: {_FORMS}")
    size_node, slide_node = op.args[0], kwargs.get("sliding")
    if isinstance(size_node, ast.Duration):
        size = _positive_duration(size_node, "window size", scope)
        if slide_node is None:
            return WindowSpec(TIME, size)
        return WindowSpec(SLIDING_TIME, size, _positive_duration(slide_node, "slide", scope))
    if _is_int_literal(size_node):
        size = _positive_count(size_node, "window size", scope)
        if slide_node is None:
            return WindowSpec(COUNT, size)
        if isinstance(slide_node, ast.Duration):
            message = f"a count window slides by a count, not {_describe(slide_node)!r}"
            raise scope.error(message, slide_node, f"valid forms: {_FORMS}")
        return WindowSpec(SLIDING_COUNT, size, _positive_count(slide_node, "slide", scope))
    message = (
        f".window() size must be an integer count or a duration literal, "
        f"got {_describe(size_node)!r}"
    )
    raise scope.error(message, size_node, f"valid forms: {_FORMS}")


def _is_int_literal(node: Any) -> bool:
    if isinstance(node, ast.Unary) and node.op == "-":
        node = node.operand
    return isinstance(node, ast.Literal) and type(node.value) is int


def _positive_count(node: Any, what: str, scope: Scope) -> int:
    if isinstance(node, ast.Literal) and type(node.value) is int and node.value > 0:
        return node.value
    message = f"{what} must be a positive integer, got {_describe(node)!r}"
    raise scope.error(message, node, f"valid forms: {_FORMS}")


def _positive_duration(node: Any, what: str, scope: Scope) -> int:
    if isinstance(node, ast.Duration) and type(node.nanos) is int and node.nanos > 0:
        return node.nanos
    message = f"{what} must be a positive duration such as 30s or 5m, got {_describe(node)!r}"
    raise scope.error(message, node, f"valid forms: {_FORMS}")


_UNITS = (("d", 86_400 * 10**9), ("h", 3600 * 10**9), ("m", 60 * 10**9), ("s", 10**9),
          ("ms", 10**6), ("us", 10**3))  # fmt: skip


def _describe(node: Any) -> str:
    """Short VPL text for an argument, for error messages."""
    if isinstance(node, ast.Literal):
        value = node.value
        if isinstance(value, bool):
            return "true" if value else "false"
        return "null" if value is None else f'"{value}"' if isinstance(value, str) else repr(value)
    if isinstance(node, ast.Duration):
        if node.nanos == 0:
            return "0s"
        for unit, nanos in _UNITS:
            if node.nanos % nanos == 0:
                return f"{node.nanos // nanos}{unit}"
        return f"{node.nanos}ns"
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Unary):
        return f"{node.op}{_describe(node.operand)}"
    return f"a {type(node).__name__.lower()} expression"
