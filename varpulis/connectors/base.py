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

import json.encoder
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from varpulis.events import _SINK_ENCODER, Event, _finite, format_timestamp

if TYPE_CHECKING:
    from kernels.columnar import ColumnarBatch

__all__ = ["ConnectorConfig", "Sink", "batch_payloads", "number_param"]

_encode_str: Callable[[str], str] = json.encoder.encode_basestring  # what the sink encoder uses


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

    def send_batch(self, batch: Any) -> None:
        """Deliver a :class:`~kernels.columnar.ColumnarBatch` (rows of one event type).

        Same contract as :meth:`send`; this default materialises the rows into
        events and calls :meth:`send`. Sinks that can serialise straight from
        the columns override it. *batch* is read only and may be kept.
        """
        kind = batch.event_type
        self.send([Event(kind, fields, ts) for fields, ts in batch.iter_rows()])

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


def _value_texts(column: Any) -> list[str]:
    """Each value of *column* as the sink encoder writes it (non-finite floats → null)."""
    kind = column.dtype.kind
    values = column.tolist()
    if kind == "f":
        return [float.__repr__(v) if v - v == 0 else "null" for v in values]  # NaN, ±inf
    if kind == "b":
        return ["true" if v else "false" for v in values]
    if kind in "iu":
        return list(map(int.__repr__, values))
    out = []
    for v in values:
        if type(v) is str:
            out.append(_encode_str(v))
            continue
        try:
            out.append(_SINK_ENCODER.encode(v))
        except ValueError:  # a non-finite float inside a list or map
            out.append(_SINK_ENCODER.encode(_finite(v)))
    return out


def batch_payloads(batch: ColumnarBatch) -> list[str]:
    """The sink payload text of every row of *batch*, straight from its columns.

    Row *i* gives exactly ``dumps_sink(Event(batch.event_type, fields_i, ts_i))``:
    ``event_type``, ``timestamp`` (RFC 3339), then the fields; a field named
    ``timestamp`` is left out, one named ``event_type`` gives the first key's
    value; compact separators, non-ASCII kept, non-finite floats as ``null``.
    """
    n = len(batch)
    if n == 0:
        return []
    names = [k for k in batch.columns if k not in ("event_type", "timestamp")]
    texts = [_value_texts(batch.columns[k]) for k in names]
    if "event_type" in batch.columns:
        kinds = _value_texts(batch.columns["event_type"])
    else:
        kinds = [_encode_str(batch.event_type)] * n
    if batch.timestamps is None:  # one time for every row (a kernel's emits): format it once
        stamps = ['"' + format_timestamp(batch.timestamp) + '"'] * n
    else:
        stamps = ['"' + format_timestamp(ts) + '"' for ts in batch.timestamps.tolist()]
    template = (
        '{"event_type":%s,"timestamp":%s'
        + "".join("," + _encode_str(k).replace("%", "%%") + ":%s" for k in names)
        + "}"
    )
    return [template % row for row in zip(kinds, stamps, *texts, strict=True)]
