"""Columnar batches: many events of one type as typed numpy columns.

A :class:`ColumnarBatch` holds ``n`` rows of one event type: ``columns`` maps
each field name (in field order) to a 1-D numpy array of length ``n``, and
``timestamps`` is an int64 array of event times in nanoseconds (or None when
every row shares ``timestamp``). Values keep VPL's types: int64 for ints,
float64 for floats, bool for bools, object arrays for strings and anything
else. Converting to rows gives plain Python values (``tolist``), so a batch
turned into dicts is indistinguishable from events built one at a time.

Batches are immutable by convention: :meth:`take` and :meth:`with_columns`
return new batches that may share the column arrays.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["ColumnarBatch", "column_from_values"]

_KINDS = {bool: np.bool_, int: np.int64, float: np.float64}


def column_from_values(values: Sequence[Any]) -> np.ndarray | None:
    """A typed column for *values*, or None when they do not share one scalar type.

    ints that do not fit in int64 and mixes (int with float, None with
    anything) return None: the caller keeps such rows as dicts, so no value
    ever changes type by crossing into a column.
    """
    if not values:
        return np.empty(0, dtype=np.float64)
    kind = type(values[0])
    for value in values:
        if type(value) is not kind:
            return None
    dtype = _KINDS.get(kind)
    if dtype is None:
        if kind is str:
            column = np.empty(len(values), dtype=object)
            column[:] = values
            return column
        return None
    try:
        return np.asarray(values, dtype=dtype)
    except OverflowError:
        return None


class ColumnarBatch:
    """``n`` events of ``event_type`` stored as columns (see the module docstring)."""

    __slots__ = ("columns", "event_type", "timestamp", "timestamps")

    def __init__(
        self,
        event_type: str,
        columns: Mapping[str, np.ndarray],
        *,
        timestamp: int = 0,
        timestamps: np.ndarray | None = None,
    ) -> None:
        self.event_type = event_type
        self.columns = dict(columns)
        self.timestamp = timestamp
        self.timestamps = timestamps
        lengths = {len(c) for c in self.columns.values()}
        if timestamps is not None:
            lengths.add(len(timestamps))
        if len(lengths) > 1:
            message = f"columns of unequal lengths {sorted(lengths)}"
            raise ValueError(message)

    def __len__(self) -> int:
        for column in self.columns.values():
            return len(column)
        return 0 if self.timestamps is None else len(self.timestamps)

    def __repr__(self) -> str:
        return f"ColumnarBatch({self.event_type!r}, {list(self.columns)}, rows={len(self)})"

    @property
    def fields(self) -> list[str]:
        return list(self.columns)

    # ------------------------------------------------------------------ build

    @classmethod
    def from_rows(
        cls,
        event_type: str,
        rows: Sequence[Mapping[str, Any]],
        timestamps: Sequence[int] | None = None,
    ) -> ColumnarBatch | None:
        """Columns from row dicts that all have the same keys in the same order.

        Returns None when the rows differ in their keys or a field's values do
        not share one scalar type (see :func:`column_from_values`).
        """
        if not rows:
            return None
        keys = list(rows[0])
        width = len(keys)
        for row in rows:
            if len(row) != width or list(row) != keys:
                return None
        columns = {}
        for key in keys:
            column = column_from_values([row[key] for row in rows])
            if column is None:
                return None
            columns[key] = column
        stamps = None if timestamps is None else np.asarray(timestamps, dtype=np.int64)
        return cls(event_type, columns, timestamps=stamps)

    @classmethod
    def concat(cls, batches: Sequence[ColumnarBatch]) -> ColumnarBatch:
        """One batch from batches of the same type and fields, rows in order."""
        first = batches[0]
        if len(batches) == 1:
            return first
        columns = {k: np.concatenate([b.columns[k] for b in batches]) for k in first.columns}
        stamps = np.concatenate([b.row_timestamps() for b in batches])
        return cls(first.event_type, columns, timestamps=stamps)

    def take(self, selector: np.ndarray) -> ColumnarBatch:
        """The rows a boolean mask or an index array selects, in order."""
        stamps = None if self.timestamps is None else self.timestamps[selector]
        columns = {k: c[selector] for k, c in self.columns.items()}
        return ColumnarBatch(self.event_type, columns, timestamp=self.timestamp, timestamps=stamps)

    def with_columns(self, event_type: str, columns: Mapping[str, np.ndarray]) -> ColumnarBatch:
        """A batch of the same rows and times with other columns and type."""
        return ColumnarBatch(event_type, columns, timestamp=self.timestamp,
                             timestamps=self.timestamps)  # fmt: skip

    # ------------------------------------------------------------------ read

    def row_timestamps(self) -> np.ndarray:
        """Per-row event times (int64 ns)."""
        if self.timestamps is not None:
            return self.timestamps
        return np.full(len(self), self.timestamp, dtype=np.int64)

    def to_dicts(self) -> list[dict[str, Any]]:
        """One dict per row, fields in order, values as plain Python scalars."""
        keys = list(self.columns)
        values = [column.tolist() for column in self.columns.values()]
        if not keys:
            return [{} for _ in range(len(self))]
        return [dict(zip(keys, row, strict=True)) for row in zip(*values, strict=True)]

    def iter_rows(self) -> Iterable[tuple[dict[str, Any], int]]:
        """``(fields, timestamp)`` per row."""
        stamps = self.row_timestamps().tolist()
        return zip(self.to_dicts(), stamps, strict=True)
