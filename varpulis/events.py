"""Events: the unit of data that flows through pipelines, and their JSON forms.

An event has a type name, an insertion-ordered field map and an event time in
integer nanoseconds since the Unix epoch (UTC). This module converts events
from the JSON the REST API and JSONL files carry (:func:`event_from_json`) and
to the JSON that inject responses (:func:`to_api_json`) and sinks
(:func:`to_sink_payload`, :func:`dumps_sink`) emit; :func:`parse_timestamp`
and :func:`format_timestamp` convert event times from and to RFC 3339. Every
function is pure and thread-safe (the formatting caches are benign races);
malformed input raises :class:`~varpulis.errors.BadRequest` naming the value.
"""

from __future__ import annotations

import json
import math
import re
from datetime import date, datetime, timedelta
from typing import Any

from varpulis.errors import BadRequest

__all__ = [
    "Event",
    "dumps_sink",
    "event_from_json",
    "format_timestamp",
    "parse_timestamp",
    "to_api_json",
    "to_sink_payload",
]


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


# --------------------------------------------------------------------------- timestamps

_NS_PER_S = 1_000_000_000
_NS_PER_MS = 1_000_000
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_EPOCH = datetime(1970, 1, 1)
# Epoch milliseconds that format_timestamp can print: years 0001 to 9999.
_MIN_MS = (date(1, 1, 1).toordinal() - _EPOCH_ORDINAL) * 86_400_000
_MAX_MS = (date(9999, 12, 31).toordinal() - _EPOCH_ORDINAL + 1) * 86_400_000 - 1
_RFC3339 = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)[Tt ](\d\d):(\d\d):(\d\d)(?:\.(\d+))?(?:[Zz]|([+-])(\d\d):(\d\d))",
    re.ASCII,
)
_CACHE_LIMIT = 4096
# "YYYY-MM-DDTHH:MM:SS" -> epoch seconds (wall time, before the offset), and
# epoch second -> "YYYY-MM-DDTHH:MM:SS": events arrive many per second.
_seconds_of: dict[str, int] = {}
_text_of_second: dict[int, str] = {}


def _short(value: object, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _bad_timestamp(value: object, why: str) -> BadRequest:
    message = (
        f"bad timestamp {_short(value)}: {why}; expected an RFC 3339 date-time "
        f"(e.g. '2024-01-01T00:00:05Z', '2024-01-01T02:00:05.250+02:00') "
        f"or epoch milliseconds"
    )
    return BadRequest(message)


def parse_timestamp(value: str | int | float) -> int:
    """Return the event time *value* denotes, in integer nanoseconds since the epoch.

    *value* is an RFC 3339 date-time string (``T``, ``t`` or a space between
    date and time; fractional seconds of any length, truncated to
    nanoseconds; ``Z`` or a ``±HH:MM`` offset, which is required) or a number
    of epoch milliseconds (int or float; ``bool`` is not a number here).
    Years 0001-9999 only. Anything else raises
    :class:`~varpulis.errors.BadRequest` naming the value.

    >>> parse_timestamp("1970-01-01T00:00:01.5Z"), parse_timestamp(2500)
    (1500000000, 2500000000)
    """
    if isinstance(value, str):
        match = _RFC3339.fullmatch(value)
        if match is None:
            raise _bad_timestamp(value, "not a date-time")
        head = value[:19]
        seconds = _seconds_of.get(head)
        if seconds is None:
            seconds = _wall_seconds(match, value)
            if len(_seconds_of) >= _CACHE_LIMIT:
                _seconds_of.clear()
            _seconds_of[head] = seconds
        fraction = match[7]
        nanos = int(fraction[:9].ljust(9, "0")) if fraction else 0
        if match[8]:
            hours, minutes = int(match[9]), int(match[10])
            if hours > 23 or minutes > 59:
                raise _bad_timestamp(value, "UTC offset out of range")
            offset = hours * 3600 + minutes * 60
            seconds = seconds - offset if match[8] == "+" else seconds + offset
            if not _MIN_MS <= seconds * 1000 <= _MAX_MS:
                raise _bad_timestamp(value, "out of range")
        return seconds * _NS_PER_S + nanos
    if isinstance(value, int) and not isinstance(value, bool):
        if not _MIN_MS <= value <= _MAX_MS:
            raise _bad_timestamp(value, "out of range")
        return value * _NS_PER_MS
    if isinstance(value, float):
        if not math.isfinite(value) or not _MIN_MS <= value <= _MAX_MS:
            raise _bad_timestamp(value, "out of range")
        whole = int(value)
        # value - whole is exact, so sub-millisecond digits survive the scaling.
        return whole * _NS_PER_MS + round((value - whole) * _NS_PER_MS)
    raise _bad_timestamp(value, f"a {type(value).__name__} is not a time")


def _wall_seconds(match: re.Match[str], value: str) -> int:
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    try:
        datetime(year, month, day, hour, minute, second)  # validates every part
    except ValueError as exc:
        raise _bad_timestamp(value, str(exc)) from None
    days = date(year, month, day).toordinal() - _EPOCH_ORDINAL
    return days * 86_400 + hour * 3600 + minute * 60 + second


def format_timestamp(ns: int) -> str:
    """Format *ns* (nanoseconds since the epoch) as RFC 3339 UTC with a trailing ``Z``.

    Fractional seconds appear only when non-zero, in groups of 3, 6 or 9
    digits. The ``YYYY-MM-DDTHH:MM:SS`` part is cached per second, so a
    stream of events costs a dict lookup and the fraction. Years 0001-9999.

    >>> format_timestamp(1_770_201_000_000_000_000), format_timestamp(250_000_000)
    ('2026-02-04T10:30:00Z', '1970-01-01T00:00:00.250Z')
    """
    second, fraction = divmod(ns, _NS_PER_S)
    head = _text_of_second.get(second)
    if head is None:
        head = (_EPOCH + timedelta(seconds=second)).isoformat()
        if len(_text_of_second) >= _CACHE_LIMIT:
            _text_of_second.clear()
        _text_of_second[second] = head
    if not fraction:
        return head + "Z"
    if not fraction % _NS_PER_MS:
        return f"{head}.{fraction // _NS_PER_MS:03d}Z"
    if not fraction % 1000:
        return f"{head}.{fraction // 1000:06d}Z"
    return f"{head}.{fraction:09d}Z"


# --------------------------------------------------------------------------- JSON forms


def event_from_json(obj: dict[str, Any], *, now_ns: int) -> Event:
    """Build an :class:`Event` from a decoded JSON object.

    Three shapes are accepted:

    * ``{"event_type": T, "fields": {...}}`` (the REST inject body);
    * ``{"event_type": T, "data": {...}}`` (the original's JSONL lines), used
      when there is no ``"fields"`` key and ``"data"`` holds an object;
    * flat ``{"event_type": T, k: v, ...}``: every other key is a field.

    In the nested shapes other top-level keys are ignored. Event time: a
    top-level ``"timestamp"`` of a nested shape, else a field named
    ``timestamp`` (which stays a field; in the flat shape that is the
    top-level key), else *now_ns* (the arrival time, ns since the epoch); see
    :func:`parse_timestamp` for the accepted values. JSON values are kept as
    decoded (ints stay ints, floats floats). *obj* is not mutated; the event
    gets a new fields dict (nested values such as lists are shared). Raises
    :class:`~varpulis.errors.BadRequest` for a non-object, a missing or
    non-string ``event_type``, non-object ``fields`` or a bad timestamp.
    """
    if not isinstance(obj, dict):
        message = f"an event must be a JSON object, got {_short(obj)}"
        raise BadRequest(message)
    event_type = obj.get("event_type")
    if not isinstance(event_type, str) or not event_type:
        if "event_type" not in obj:
            message = f'event has no "event_type" (keys: {_short(list(obj))})'
        else:
            message = f'"event_type" must be a non-empty string, got {_short(event_type)}'
        raise BadRequest(message)
    if "fields" in obj:
        nested = obj["fields"]
        if not isinstance(nested, dict):
            message = f'"fields" must be a JSON object, got {_short(nested)}'
            raise BadRequest(message)
    else:
        nested = obj.get("data")
        if not isinstance(nested, dict):
            nested = None
    if nested is None:
        fields = dict(obj)
        del fields["event_type"]
        when = fields.get("timestamp")
        has_time = when is not None or "timestamp" in fields
    else:
        fields = dict(nested)
        if "timestamp" in obj:
            when, has_time = obj["timestamp"], True
        else:
            when = fields.get("timestamp")
            has_time = when is not None or "timestamp" in fields
    return Event(event_type, fields, parse_timestamp(when) if has_time else now_ns)


def to_api_json(ev: Event) -> dict[str, Any]:
    """Return the flat JSON object REST inject responses show: ``{"event_type", **fields}``.

    A field named ``event_type`` overrides the type (as the original's batch
    inject output does). The event time is not included. Values are shared.
    """
    return {"event_type": ev.event_type, **ev.fields}


def to_sink_payload(ev: Event) -> dict[str, Any]:
    """Return the object sinks publish: ``event_type``, ``timestamp``, then the fields.

    ``timestamp`` is the event time formatted by :func:`format_timestamp`;
    a field named ``timestamp`` is left out (the event time replaces it). A
    field named ``event_type`` overrides the type's value in place, which is
    what a JSON reader of the original's duplicate key sees. Values are shared.
    """
    payload = {"event_type": ev.event_type, "timestamp": format_timestamp(ev.timestamp)}
    fields = ev.fields
    if "timestamp" in fields:
        payload.update([(k, v) for k, v in fields.items() if k != "timestamp"])
    else:
        payload.update(fields)
    return payload


_SINK_ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def dumps_sink(ev: Event) -> str:
    """Serialise :func:`to_sink_payload` of *ev* as compact JSON (UTF-8 text, no spaces).

    NaN and infinities become ``null`` (as the original prints them), so the
    output is always valid JSON.
    """
    payload = to_sink_payload(ev)
    try:
        return _SINK_ENCODER.encode(payload)
    except ValueError:  # a non-finite float: rare, so only then walk the payload
        return _SINK_ENCODER.encode(_finite(payload))
