"""Event JSON forms, event-time parsing and RFC 3339 formatting."""

from __future__ import annotations

import datetime as dt
import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from varpulis.errors import BadRequest
from varpulis.events import (
    Event,
    dumps_sink,
    event_from_json,
    format_timestamp,
    parse_timestamp,
    to_api_json,
    to_sink_payload,
)

S = 1_000_000_000
T0 = 1_704_067_205 * S  # 2024-01-01T00:00:05Z
NOW = 42


# --------------------------------------------------------------------------- parse_timestamp


@pytest.mark.parametrize(
    ("value", "ns"),
    [
        ("2024-01-01T00:00:05Z", T0),
        ("2024-01-01T00:00:05.250Z", T0 + 250_000_000),
        ("2024-01-01T00:00:05.000250Z", T0 + 250_000),
        ("2024-01-01T00:00:05.5Z", T0 + 500_000_000),
        ("2024-01-01T02:00:05+02:00", T0),
        ("2023-12-31T19:00:05-05:00", T0),
        ("2024-01-01T05:30:05.1+05:30", T0 + 100_000_000),
        ("2024-01-01T00:00:05+00:00", T0),
        ("2024-01-01t00:00:05z", T0),
        ("2024-01-01 00:00:05Z", T0),
        ("1970-01-01T00:00:00Z", 0),
        ("1970-01-01T00:00:00.123456789Z", 123_456_789),
        ("1970-01-01T00:00:00.1234567899Z", 123_456_789),  # truncated to ns
        ("1969-12-31T23:59:59.5Z", -500_000_000),
        ("2024-02-29T00:00:00Z", 1_709_164_800 * S),
        ("0001-01-01T00:00:00Z", -62_135_596_800 * S),
        ("9999-12-31T23:59:59Z", 253_402_300_799 * S),
        (0, 0),
        (1500, 1_500_000_000),
        (1_704_067_205_000, T0),
        (-1, -1_000_000),
        (1.5, 1_500_000),
        (0.000001, 1),
        (1_704_067_205_000.25, T0 + 250_000),
        (-2.5, -2_500_000),
    ],
)
def test_parse_timestamp(value: str | int | float, ns: int) -> None:
    assert parse_timestamp(value) == ns
    assert type(parse_timestamp(value)) is int


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("2024-01-01", "not a date-time"),
        ("2024-01-01T00:00:05", "not a date-time"),  # the offset is required
        ("2024-01-01T00:00Z", "not a date-time"),
        ("2024-01-01T00:00:05.Z", "not a date-time"),
        ("2024-01-01T00:00:05Z ", "not a date-time"),
        ("x", "not a date-time"),
        ("", "not a date-time"),
        ("2024-02-30T00:00:00Z", "day is out of range for month"),
        ("2023-02-29T00:00:00Z", "day is out of range for month"),
        ("2024-01-01T24:00:00Z", "hour must be in 0..23"),
        ("2024-01-01T00:00:60Z", "second must be in 0..59"),
        ("2024-13-01T00:00:00Z", "month must be in 1..12"),
        ("2024-01-01T00:00:00+24:00", "UTC offset out of range"),
        ("2024-01-01T00:00:00+01:60", "UTC offset out of range"),
        ("0001-01-01T00:00:00+00:01", "out of range"),
        ("9999-12-31T23:59:59-00:01", "out of range"),
        ("２０２４-01-01T00:00:00Z", "not a date-time"),  # fullwidth digits
        (True, "a bool is not a time"),
        (None, "a NoneType is not a time"),
        ([1], "a list is not a time"),
        (math.nan, "out of range"),
        (math.inf, "out of range"),
        (10**20, "out of range"),
        (-(10**20), "out of range"),
    ],
)
def test_parse_timestamp_rejects(value: object, why: str) -> None:
    with pytest.raises(BadRequest) as info:
        parse_timestamp(value)  # type: ignore[arg-type]
    message = str(info.value)
    assert message.startswith(f"bad timestamp {value!r}: {why};")
    assert "RFC 3339" in message and "epoch milliseconds" in message
    assert info.value.code == "bad_request" and info.value.http_status == 400


def test_parse_timestamp_truncates_huge_values_in_the_message() -> None:
    with pytest.raises(BadRequest) as info:
        parse_timestamp("x" * 1000)
    assert len(str(info.value)) < 250


# --------------------------------------------------------------------------- format_timestamp


@pytest.mark.parametrize(
    ("ns", "text"),
    [
        (0, "1970-01-01T00:00:00Z"),
        (1_770_201_000 * S, "2026-02-04T10:30:00Z"),
        (1_770_201_000 * S + 250_000_000, "2026-02-04T10:30:00.250Z"),
        (1_770_201_000 * S + 1_000_000, "2026-02-04T10:30:00.001Z"),
        (1_770_201_000 * S + 123_456_000, "2026-02-04T10:30:00.123456Z"),
        (1_770_201_000 * S + 1_000, "2026-02-04T10:30:00.000001Z"),
        (1_770_201_000 * S + 1, "2026-02-04T10:30:00.000000001Z"),
        (1_770_201_000 * S + 100_000_010, "2026-02-04T10:30:00.100000010Z"),
        (T0, "2024-01-01T00:00:05Z"),
        (-1, "1969-12-31T23:59:59.999999999Z"),
        (-S, "1969-12-31T23:59:59Z"),
        (-62_135_596_800 * S, "0001-01-01T00:00:00Z"),
        (253_402_300_799 * S, "9999-12-31T23:59:59Z"),
    ],
)
def test_format_timestamp(ns: int, text: str) -> None:
    assert format_timestamp(ns) == text
    assert format_timestamp(ns) == text  # second call: served from the cache
    assert parse_timestamp(text) == ns


def test_format_timestamp_cache_is_per_second() -> None:
    texts = [format_timestamp(T0 + i * 100_000_000) for i in range(25)]
    assert texts[0] == "2024-01-01T00:00:05Z"
    assert texts[1] == "2024-01-01T00:00:05.100Z"
    assert texts[10] == "2024-01-01T00:00:06Z"
    assert texts[24] == "2024-01-01T00:00:07.400Z"


@given(st.integers(min_value=-62_135_596_800 * S, max_value=253_402_300_799 * S + S - 1))
def test_format_parse_round_trip(ns: int) -> None:
    text = format_timestamp(ns)
    assert text.endswith("Z")
    assert len(text) in (20, 24, 27, 30)  # no fraction, or 3/6/9 digits
    assert parse_timestamp(text) == ns


@given(
    st.datetimes(min_value=dt.datetime(1, 1, 2), max_value=dt.datetime(9999, 12, 30)),
    st.integers(min_value=-(23 * 60 + 59), max_value=23 * 60 + 59),
)
def test_offsets_denote_the_same_instant(moment: dt.datetime, offset_minutes: int) -> None:
    local = moment.replace(tzinfo=dt.timezone(dt.timedelta(minutes=offset_minutes)))
    delta = local - dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
    expected = (delta.days * 86_400 + delta.seconds) * S + delta.microseconds * 1000
    assert parse_timestamp(local.isoformat()) == expected


@given(st.integers(min_value=-(10**13), max_value=10**13))
def test_epoch_milliseconds(ms: int) -> None:
    assert parse_timestamp(ms) == ms * 1_000_000
    assert parse_timestamp(float(ms)) == ms * 1_000_000


# --------------------------------------------------------------------------- event_from_json


@pytest.mark.parametrize(
    ("obj", "event"),
    [
        (
            {"event_type": "Reading", "fields": {"id": "a", "t": 35}},
            Event("Reading", {"id": "a", "t": 35}, NOW),
        ),
        (
            {"event_type": "Reading", "data": {"id": "a", "t": 35.0}},
            Event("Reading", {"id": "a", "t": 35.0}, NOW),
        ),
        (
            {"event_type": "Reading", "id": "a", "t": 35, "ok": True, "x": None},
            Event("Reading", {"id": "a", "t": 35, "ok": True, "x": None}, NOW),
        ),
        ({"event_type": "Empty"}, Event("Empty", {}, NOW)),
        ({"event_type": "Empty", "fields": {}}, Event("Empty", {}, NOW)),
        (  # "fields" wins over "data"; other top-level keys of a nested shape are ignored
            {"event_type": "A", "fields": {"x": 1}, "data": {"y": 2}, "z": 3},
            Event("A", {"x": 1}, NOW),
        ),
        (  # a "data" that is not an object is an ordinary field of the flat shape
            {"event_type": "Msg", "data": "hello", "n": [1, {"k": 2}]},
            Event("Msg", {"data": "hello", "n": [1, {"k": 2}]}, NOW),
        ),
        (  # nested shape: top-level timestamp is the event time, not a field
            {"event_type": "A", "fields": {"x": 1}, "timestamp": "2024-01-01T00:00:05Z"},
            Event("A", {"x": 1}, T0),
        ),
        (  # nested shape: a timestamp field is the event time and stays a field
            {"event_type": "A", "data": {"x": 1, "timestamp": 1_704_067_205_000}},
            Event("A", {"x": 1, "timestamp": 1_704_067_205_000}, T0),
        ),
        (  # the top-level timestamp wins over the field
            {"event_type": "A", "fields": {"timestamp": 1000}, "timestamp": 2000},
            Event("A", {"timestamp": 1000}, 2 * S),
        ),
        (  # flat shape: timestamp is both a field and the event time
            {"event_type": "A", "timestamp": "2024-01-01T02:00:05+02:00", "v": 1},
            Event("A", {"timestamp": "2024-01-01T02:00:05+02:00", "v": 1}, T0),
        ),
    ],
)
def test_event_from_json(obj: dict[str, object], event: Event) -> None:
    before = json.dumps(obj)
    got = event_from_json(obj, now_ns=NOW)
    assert got == event
    assert [(k, type(v)) for k, v in got.fields.items()] == [
        (k, type(v)) for k, v in event.fields.items()
    ]
    assert json.dumps(obj) == before  # not mutated
    assert got.fields is not obj and got.fields is not obj.get("fields")


def test_event_from_json_keeps_json_number_types() -> None:
    obj = json.loads('{"event_type": "A", "fields": {"i": 100, "f": 100.0, "e": 1e3, "b": 1}}')
    fields = event_from_json(obj, now_ns=0).fields
    assert [type(v) for v in fields.values()] == [int, float, float, int]


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        ({"fields": {"x": 1}}, "event has no \"event_type\" (keys: ['fields'])"),
        ({}, 'event has no "event_type" (keys: [])'),
        ({"event_type": 7}, '"event_type" must be a non-empty string, got 7'),
        ({"event_type": None}, '"event_type" must be a non-empty string, got None'),
        ({"event_type": ""}, "\"event_type\" must be a non-empty string, got ''"),
        ({"event_type": ["A"]}, "\"event_type\" must be a non-empty string, got ['A']"),
        ({"event_type": "A", "fields": [1]}, '"fields" must be a JSON object, got [1]'),
        ({"event_type": "A", "fields": None}, '"fields" must be a JSON object, got None'),
        ([1, 2], "an event must be a JSON object, got [1, 2]"),
        ("A", "an event must be a JSON object, got 'A'"),
        ({"event_type": "A", "timestamp": "soon"}, "bad timestamp 'soon': not a date-time;"),
        ({"event_type": "A", "data": {"timestamp": True}}, "bad timestamp True: a bool"),
    ],
)
def test_event_from_json_rejects(obj: object, message: str) -> None:
    with pytest.raises(BadRequest) as info:
        event_from_json(obj, now_ns=0)  # type: ignore[arg-type]
    assert str(info.value).startswith(message)


# --------------------------------------------------------------------------- output forms


def test_to_api_json_is_flat() -> None:
    ev = Event("Alert", {"level": "high", "v": 1.5}, T0)
    assert to_api_json(ev) == {"event_type": "Alert", "level": "high", "v": 1.5}
    assert list(to_api_json(ev)) == ["event_type", "level", "v"]
    # a field named event_type overrides the type (the original's batch inject output)
    assert to_api_json(Event("A", {"event_type": "B", "x": 1}))["event_type"] == "B"


def test_sink_payload_key_order_and_dropped_timestamp_field() -> None:
    ev = Event("Hot", {"sensor": "a", "timestamp": "x", "t": 35}, T0)
    payload = to_sink_payload(ev)
    assert list(payload) == ["event_type", "timestamp", "sensor", "t"]
    assert payload == {
        "event_type": "Hot",
        "timestamp": "2024-01-01T00:00:05Z",
        "sensor": "a",
        "t": 35,
    }
    assert ev.fields == {"sensor": "a", "timestamp": "x", "t": 35}  # not mutated


@pytest.mark.parametrize(
    ("event", "text"),
    [
        (  # the spec's .to() example (§1.10)
            Event("Reading", {"id": "a", "t": 35}, T0),
            '{"event_type":"Reading","timestamp":"2024-01-01T00:00:05Z","id":"a","t":35}',
        ),
        (
            Event("Hot", {"sensor": "a", "t": 35, "timestamp": "x"}, T0),
            '{"event_type":"Hot","timestamp":"2024-01-01T00:00:05Z","sensor":"a","t":35}',
        ),
        (
            Event("Pixel", {"x": 77, "y": 497, "iterations": 27, "diverged": True}, 0),
            '{"event_type":"Pixel","timestamp":"1970-01-01T00:00:00Z","x":77,"y":497,'
            '"iterations":27,"diverged":true}',
        ),
        (
            Event("F", {"a": 100.0, "b": None, "c": [1, "x"], "d": {"k": 1}}, 250_000_000),
            '{"event_type":"F","timestamp":"1970-01-01T00:00:00.250Z","a":100.0,"b":null,'
            '"c":[1,"x"],"d":{"k":1}}',
        ),
        (
            Event("U", {"name": "Zoë ☃", "q": 'say "hi"\n'}, 0),
            '{"event_type":"U","timestamp":"1970-01-01T00:00:00Z","name":"Zoë ☃",'
            '"q":"say \\"hi\\"\\n"}',
        ),
        (  # NaN and infinities print as null, also nested
            Event("N", {"a": math.nan, "b": [math.inf], "c": {"d": -math.inf}, "e": 1.5}, 0),
            '{"event_type":"N","timestamp":"1970-01-01T00:00:00Z","a":null,"b":[null],'
            '"c":{"d":null},"e":1.5}',
        ),
        (  # a field named event_type overrides the value, the key stays first
            Event("A", {"event_type": "B", "x": 1}, 0),
            '{"event_type":"B","timestamp":"1970-01-01T00:00:00Z","x":1}',
        ),
    ],
)
def test_dumps_sink(event: Event, text: str) -> None:
    assert dumps_sink(event) == text
    assert json.loads(text) == json.loads(dumps_sink(event))


def test_sink_output_reads_back_as_the_same_event() -> None:
    ev = Event("Tick", {"symbol": "AAPL", "price": 151.25, "volume": 100}, T0 + 1)
    back = event_from_json(json.loads(dumps_sink(ev)), now_ns=0)
    assert back.event_type == ev.event_type and back.timestamp == ev.timestamp
    assert back.fields == {"timestamp": "2024-01-01T00:00:05.000000001Z", **ev.fields}
