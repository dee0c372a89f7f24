"""Stateless where/select/emit chains over columns: the rows a chain sees and its run.

:class:`BatchStream` runs the :class:`~varpulis.compiler.batch.BatchStep` chain
of one stream over a :class:`Rows` (a run of events, field dicts or columns)
and returns an :class:`Output` (the emit's type, keys, columns and the rows
they came from), None (no output) or False (the run must go per event: a
field missing or mixed, a kernel not exact for the values). :func:`rows_of`
turns an output into field dicts or REST output dicts. The batch path
(``runtime/batch.py``) and the stateful kernels (``seq_batch.py``,
``window_batch.py``) share them. Objects here belong to one engine thread.
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import repeat
from operator import attrgetter, itemgetter
from typing import Any

import numpy as np

from varpulis.compiler.batch import BatchExpr, BatchStep
from varpulis.compiler.values import MISSING
from varpulis.lang.evt_shapes import dict_builder
from varpulis.runtime.blocks import typed_column

__all__ = ["BatchStream", "Output", "Rows", "rows_in", "rows_of"]

_FIELDS = attrgetter("fields")
_KIND_OF_DTYPE = {np.dtype(np.int64): "i", np.dtype(np.float64): "f", np.dtype(np.bool_): "b"}


class Rows:
    """The rows of one run as a chain sees them between its steps.

    Before the first projection the rows are the run's source (``source``:
    Events when ``wrapped``, else field dicts); ``pos`` holds the positions of
    the surviving rows in the run (None: all) and ``cols`` the values already
    read, for those rows: typed arrays (kind in ``kinds``) or lists of Python
    values that may hold MISSING. After a projection ``source`` is None and
    ``cols`` are all the fields there are.
    """

    __slots__ = ("cols", "kinds", "n", "pos", "source", "wrapped")

    def __init__(self, source: list[Any] | None, cols: dict[str, Any], n: int,
                 wrapped: bool = True) -> None:  # fmt: skip
        self.source = source
        self.wrapped = wrapped
        self.cols = cols
        self.kinds: dict[str, str] = {}
        self.pos: np.ndarray | None = None
        self.n = n

    def _rows(self) -> Iterable[Any]:
        source, pos = self.source, self.pos
        if pos is None:
            return source  # type: ignore[return-value]
        return map(source.__getitem__, pos.tolist())  # type: ignore[union-attr]

    def _gather(self, name: str) -> list[Any]:
        # one C-level pass per field: picking the surviving rows on the fly costs
        # less than keeping a list of them (each row is touched once per field)
        get = itemgetter(name)
        try:
            if self.wrapped:
                return list(map(get, map(_FIELDS, self._rows())))
            return list(map(get, self._rows()))
        except KeyError:
            if self.wrapped:
                return [ev.fields.get(name, MISSING) for ev in self._rows()]
            return [fields.get(name, MISSING) for fields in self._rows()]

    def typed(self, name: str) -> tuple[np.ndarray, str] | None:
        """The typed column of *name* for the current rows, or None when there is none."""
        value = self.cols.get(name)
        if value is None:
            if self.source is None:
                return None
            value = self._gather(name)
        if isinstance(value, np.ndarray):
            kind = self.kinds.get(name) or _KIND_OF_DTYPE.get(value.dtype)
            if kind is None and value.dtype == object:
                strings = all(type(v) is str for v in value.tolist())
                kind = "s" if strings else None
            if kind is None:
                return None
            self.kinds[name] = kind
            return value, kind
        typed = typed_column(value)
        if typed is not None:
            self.cols[name], self.kinds[name] = typed
        return typed

    def any(self, name: str) -> np.ndarray | list[Any] | None:
        """The values of *name* for the current rows as they are (None: no such field)."""
        value = self.cols.get(name)
        if value is None and self.source is not None:
            value = self._gather(name)
        return value

    def take(self, keep: np.ndarray) -> None:
        """Keep only the rows at positions *keep* (indices into the current rows)."""
        listed = None
        cols = {}
        for name, value in self.cols.items():
            if isinstance(value, np.ndarray):
                cols[name] = value[keep]
            else:
                listed = keep.tolist() if listed is None else listed
                cols[name] = [value[i] for i in listed]
        self.cols = cols
        self.pos = keep if self.pos is None else self.pos[keep]
        self.n = len(keep)


class Output:
    """What the emit of a chain produced: its type, fields and the rows they belong to."""

    __slots__ = ("cols", "event_type", "keys", "n", "pos")

    def __init__(self, event_type: str, keys: list[str], cols: list[Any], pos: Any, n: int) -> None:
        self.event_type, self.keys, self.cols, self.pos, self.n = event_type, keys, cols, pos, n


class BatchStream:
    """One batched stream: its engine runner and its chain of steps."""

    __slots__ = ("runner", "steps")

    def __init__(self, runner: Any, steps: tuple[BatchStep, ...]) -> None:
        self.runner = runner
        self.steps = steps

    def run(self, rows: Rows, input_type: str) -> Output | None | bool:
        """Run the chain on *rows*: the emit's output, None (no output) or False (per event)."""
        current_type = input_type
        for step in self.steps:
            if rows.n == 0:
                return None
            if step.op == "where":
                arrays = self._inputs(step.expr, rows)  # type: ignore[arg-type]
                if arrays is None:
                    return False
                kernel, columns = arrays
                keep = np.flatnonzero(kernel.mask(columns, rows.n))
                if len(keep) < rows.n:
                    rows.take(keep)
                continue
            keys, cols = [], []
            for key, item in step.items:
                if isinstance(item, str):
                    value = rows.any(item)
                    if value is None:
                        continue  # no such field: left out, as a missing value per event
                else:
                    arrays = self._inputs(item, rows)
                    if arrays is None:
                        return False
                    kernel, columns = arrays
                    value = kernel(columns, rows.n)
                keys.append(key)
                cols.append(value)
            if step.op == "select":
                projected = Rows(None, dict(zip(keys, cols, strict=True)), rows.n)
                projected.pos = rows.pos
                rows = projected
                continue
            current_type = step.event_type or current_type
            return Output(current_type, keys, cols, rows.pos, rows.n)
        return None

    @staticmethod
    def _inputs(expr: BatchExpr, rows: Rows) -> tuple[Any, dict[str, np.ndarray]] | None:
        columns, kinds = {}, []
        for name in expr.fields:
            typed = rows.typed(name)
            if typed is None:
                return None
            columns[name], kind = typed
            kinds.append(kind)
        kernel = expr.kernel(kinds)
        if kernel is None or not kernel.exact(columns):
            return None
        return kernel, columns


def rows_in(out: Output) -> int:
    """How many output rows *out* holds."""
    for column in out.cols:
        return len(column)
    return out.n


def rows_of(out: Output, n: int, event_type: str | None = None) -> list[dict[str, Any]]:
    """The output field dicts, MISSING values left out (as the per-event builder does).

    With *event_type*, the REST output dicts instead: ``{"event_type": event_type,
    **fields}`` (a field named ``event_type`` wins, as in ``to_api_json``).
    """
    keys = out.keys
    values = [c.tolist() if isinstance(c, np.ndarray) else c for c in out.cols]
    if event_type is not None:
        keys = ["event_type", *keys]
        values.insert(0, list(repeat(event_type, n)))
    if not keys:
        return [{} for _ in range(n)]
    if any(not isinstance(c, np.ndarray) and MISSING in c for c in out.cols):
        rows = zip(*values, strict=True)
        return [{k: v for k, v in zip(keys, row, strict=True) if v is not MISSING} for row in rows]
    return list(map(dict_builder(tuple(keys)), *values))
