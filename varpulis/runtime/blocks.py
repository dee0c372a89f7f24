"""Blocks of rows for the stateful columnar kernels, and the hand-over to per-event state.

A *stateful kernel* (a sequence, a windowed aggregate) runs a run of events
of the types one stream reads as columns, and keeps what later events still
need — the *carry*, a suffix of the rows it has seen — as a :class:`Block`
instead of the per-event operator's state. The contract of such a kernel
(:class:`Stateful`):

* ``run(block)`` returns the outputs ``Engine.process`` would give for the
  block's rows, in order, or None when it cannot run this block as columns
  (the caller then runs the rows per event, after :meth:`Stateful.settle`).
  A kernel starts only when the per-event operator holds nothing (its
  ``idle``); from then on the carry is the whole state.
* ``settle()`` hands the carry to the per-event operator by :func:`replay`:
  the carried rows run through the stream per event with their outputs and
  counters thrown away (they were produced and counted already). A kernel
  keeps its carry only when that replay rebuilds exactly the state the
  per-event path would hold.

Per-event processing can start anywhere (``Engine.process`` of one REST
event), so while a kernel holds a carry :func:`guard` puts a shim in front of
the stream's entry that settles first and removes itself; ``Engine.flush``
settles every kernel before closing windows. Blocks and kernels belong to the
engine's thread.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import repeat
from operator import attrgetter, itemgetter
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from varpulis.compiler.values import MISSING
from varpulis.events import Event

if TYPE_CHECKING:
    from varpulis.runtime.engine import Engine

__all__ = ["Block", "Stateful", "guard", "replay", "typed_column", "unguard"]

_ARRAYS = {float: np.float64, int: np.int64, bool: np.bool_}
_FIELDS, _TIMESTAMP = attrgetter("fields"), attrgetter("timestamp")
_EVENT_TYPE = attrgetter("event_type")


def typed_column(values: list[Any]) -> tuple[np.ndarray, str] | None:
    """A typed column and its kind (``i f b s``) when *values* share one scalar
    type, else None (MISSING, None, mixed types, ints beyond int64)."""
    kinds = set(map(type, values))
    if len(kinds) != 1:
        return None
    kind = kinds.pop()
    dtype = _ARRAYS.get(kind)
    if dtype is not None:
        try:
            column = np.fromiter(values, dtype=dtype, count=len(values))
        except OverflowError:
            return None
        return column, "i" if kind is int else "f" if kind is float else "b"
    if kind is str:
        column = np.empty(len(values), dtype=object)
        column[:] = values
        return column, "s"
    return None


class _Part:
    """Rows of one origin: Events (``events``), or columns of Python values."""

    __slots__ = ("columns", "events", "stamps", "types")

    def __init__(self, types: list[str], stamps: Sequence[int], events: list[Event] | None,
                 columns: dict[str, Sequence[Any]] | None) -> None:  # fmt: skip
        self.types, self.stamps, self.events, self.columns = types, stamps, events, columns

    def values(self, name: str) -> list[Any]:
        events = self.events
        if events is not None:
            try:
                return list(map(itemgetter(name), map(_FIELDS, events)))
            except KeyError:
                return [ev.fields.get(name, MISSING) for ev in events]
        column = self.columns.get(name)  # type: ignore[union-attr]
        return list(repeat(MISSING, len(self.types))) if column is None else list(column)

    def make_events(self) -> list[Event]:
        if self.events is None:
            columns = self.columns or {}
            keys = list(columns)
            rows = [
                dict(zip(keys, row, strict=True)) for row in zip(*columns.values(), strict=True)
            ]
            if not keys:
                rows = [{} for _ in self.types]
            self.events = list(map(Event, self.types, rows, self.stamps))
        return self.events

    def taken(self, rows: list[int]) -> _Part:
        """The rows at positions *rows* (ascending) of this part."""
        columns = None
        if self.columns is not None:
            columns = {k: [v[i] for i in rows] for k, v in self.columns.items()}
        events = None if self.events is None else [self.events[i] for i in rows]
        types, stamps = self.types, self.stamps
        return _Part([types[i] for i in rows], [stamps[i] for i in rows], events, columns)


class Block:
    """A run of rows in input order: their types, event times (ns) and fields.

    Fields are read on demand, whole columns at a time (:meth:`typed`), and
    cached; Events are built only when asked (:meth:`events`). Blocks are
    immutable views: :meth:`join`, :meth:`take` and :meth:`tail` make new ones.
    """

    __slots__ = ("_parts", "_typed", "n", "timestamps", "types")

    def __init__(self, parts: list[_Part]) -> None:
        self._parts = parts
        self.types: list[str] = (
            [t for p in parts for t in p.types] if len(parts) != 1 else parts[0].types
        )
        self.n = len(self.types)
        stamps = [np.asarray(p.stamps, dtype=np.int64) for p in parts]
        self.timestamps: np.ndarray = stamps[0] if len(stamps) == 1 else np.concatenate(stamps)
        self._typed: dict[str, tuple[np.ndarray, str] | None] = {}

    @classmethod
    def of_events(cls, events: list[Event]) -> Block:
        """The rows of *events* (kept, never mutated)."""
        types = list(map(_EVENT_TYPE, events))
        return cls([_Part(types, list(map(_TIMESTAMP, events)), events, None)])

    @classmethod
    def of_table(cls, types: list[str], columns: dict[str, Sequence[Any]],
                 timestamps: Sequence[int]) -> Block:  # fmt: skip
        """Row *i*: type ``types[i]``, fields ``{k: columns[k][i]}``, time ``timestamps[i]``."""
        return cls([_Part(types, timestamps, None, columns)])

    def __len__(self) -> int:
        return self.n

    def typed(self, name: str) -> tuple[np.ndarray, str] | None:
        """Field *name* of every row as one typed column and its kind, or None when
        some row lacks it or the values are not all of one scalar type."""
        try:
            return self._typed[name]
        except KeyError:
            pass
        values = self.values(name)
        found = self._typed[name] = typed_column(values)
        return found

    def values(self, name: str) -> list[Any]:
        """Field *name* of every row as Python values (MISSING where a row lacks it)."""
        parts = self._parts
        if len(parts) == 1:
            return parts[0].values(name)
        return [v for p in parts for v in p.values(name)]

    def events(self) -> list[Event]:
        """The rows as Events (built once, then shared)."""
        return [ev for p in self._parts for ev in p.make_events()]

    def take(self, rows: np.ndarray) -> Block | None:
        """The rows at positions *rows* (ascending; None when empty), as a new block."""
        if len(rows) == 0:
            return None
        parts, offset, wanted = [], 0, rows.tolist()
        for part in self._parts:
            size = len(part.types)
            lo = np.searchsorted(rows, offset)
            hi = np.searchsorted(rows, offset + size)
            if hi > lo:
                parts.append(part.taken([i - offset for i in wanted[lo:hi]]))
            offset += size
        return Block(parts)

    def tail(self, start: int) -> Block | None:
        """The rows from *start* on (None when there are none)."""
        return self.take(np.arange(start, self.n))

    @staticmethod
    def join(first: Block | None, second: Block) -> Block:
        """The rows of *first* (if any) followed by those of *second*."""
        if first is None:
            return second
        return Block(first._parts + second._parts)


class Stateful(Protocol):
    """A stateful columnar kernel of one stream (see the module docstring)."""

    runner: Any
    types: frozenset[str]

    def run(self, block: Block) -> list[Event] | None: ...

    def settle(self) -> None: ...


def replay(engine: Engine, runner: Any, events: list[Event]) -> None:
    """Run *events* through *runner* per event for their effect on its state only:
    outputs are dropped and every counter is left as it was."""
    saved = (engine.events_in, engine.events_out, runner.events_in, runner.events_out,
             runner.errors)  # fmt: skip
    scratch: list[Any] = []
    for ev in events:
        engine.run_stream(runner, ev, scratch)
        scratch.clear()
    (engine.events_in, engine.events_out, runner.events_in, runner.events_out,
     runner.errors) = saved  # fmt: skip


class _Handover:
    """A stream entry that settles a kernel, puts the original entry back, then runs it."""

    __slots__ = ("original", "runner", "settle")

    def __init__(self, runner: Any, settle: Callable[[], None]) -> None:
        self.runner, self.settle, self.original = runner, settle, runner.entry

    def __call__(self, ev: Event) -> list[tuple[list[Event], dict]]:
        self.runner.entry = self.original
        self.settle()
        if self.original is None:
            return [([ev], {})]
        return self.original(ev)


def guard(runner: Any, settle: Callable[[], None]) -> None:
    """Make the next per-event run of *runner* call *settle* first (once).

    The shim takes the place of ``runner.entry`` and puts the original back
    before settling, so the per-event path pays nothing once settled.
    """
    if not isinstance(runner.entry, _Handover):
        runner.entry = _Handover(runner, settle)


def unguard(runner: Any) -> None:
    """Remove a :func:`guard` shim that has not run (the kernel settled by itself)."""
    if isinstance(runner.entry, _Handover):
        runner.entry = runner.entry.original
