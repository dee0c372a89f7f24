"""Chunks on the wire: a context's outputs as ``rows`` plus ``columns`` frames.

A context child answers each input batch with zero or more ``columns`` messages
(one per :class:`~kernels.columnar.ColumnarBatch` among its outputs, built by
:func:`batch_message`) followed by the usual ``rows`` reply holding every other
output. Each ``columns`` message carries in its meta the batch's event type
(``type``), its shared timestamp (``ts``, or per-row times in the reserved
column ``$ts``) and ``pos``: how many ``rows`` of the same reply come before it.
The parent buffers the batches it receives from a child until that child's
``rows`` reply arrives, then :func:`merge` restores the exact output order.
Batches whose columns cannot travel as raw buffers (strings: object dtype) are
sent as rows instead. Received columns are read-only views over the frames.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from kernels.columnar import ColumnarBatch
from transports import Message
from varpulis.events import Event

__all__ = ["TS_COLUMN", "batch_from_message", "batch_message", "merge"]

#: Column carrying per-row timestamps (``$`` never starts a VPL field name).
TS_COLUMN = "$ts"


def batch_message(batch: ColumnarBatch, pos: int, meta: dict[str, Any]) -> Message | None:
    """A ``columns`` message for *batch* placed after *pos* rows; None if it needs rows."""
    if any(c.dtype == object for c in batch.columns.values()):
        return None
    columns = dict(batch.columns)
    head = {**meta, "type": batch.event_type, "pos": pos, "ts": batch.timestamp}
    if batch.timestamps is not None:
        columns[TS_COLUMN] = batch.timestamps
    return Message.columns(columns, head)


def batch_from_message(msg: Message) -> tuple[int, ColumnarBatch]:
    """``(pos, batch)`` from a message made by :func:`batch_message`."""
    columns: dict[str, np.ndarray] = dict(msg.body)  # type: ignore[arg-type]
    stamps = columns.pop(TS_COLUMN, None)
    meta = msg.meta
    batch = ColumnarBatch(meta["type"], columns, timestamp=meta.get("ts", 0), timestamps=stamps)
    return meta.get("pos", 0), batch


def merge(events: list[Event], chunks: list[tuple[int, ColumnarBatch]]) -> list[Any]:
    """*events* with each ``(pos, batch)`` inserted after the first *pos* of them."""
    if not chunks:
        return events  # type: ignore[return-value]
    out: list[Any] = []
    done = 0
    for pos, batch in chunks:
        out.extend(events[done:pos])
        done = max(done, pos)
        out.append(batch)
    out.extend(events[done:])
    return out
