"""The .evt / JSON Lines event-file parser: forms, values, pacing, event time, errors."""

from __future__ import annotations

import gc
import io
import json
import math
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from varpulis.errors import BadRequest, EventSyntaxError
from varpulis.events import Event
from varpulis.lang import evt, evt_shapes
from varpulis.lang.evt import TimedEvent, iter_events, parse_evt, parse_jsonl, read_event_file

MS = 1_000_000
S = 1_000_000_000
T0 = 1_704_067_205 * S  # 2024-01-01T00:00:05Z


def typed(value: Any) -> Any:
    """*value* with the type of every scalar made explicit (1 == 1.0 == True otherwise)."""
    if isinstance(value, dict):
        return {k: typed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [typed(v) for v in value]
    if isinstance(value, float) and math.isnan(value):
        return ("nan",)
    return (type(value).__name__, value)


def rows(timed: list[TimedEvent]) -> list[tuple[int, str, Any, int]]:
    return [
        (t.offset_ns, t.event.event_type, typed(t.event.fields), t.event.timestamp) for t in timed
    ]


def events(text: str, **kwargs: Any) -> list[tuple[int, str, Any, int]]:
    return rows(parse_evt(text, **kwargs))


def one(text: str) -> Event:
    (timed,) = parse_evt(text)
    return timed.event


def reference(text: str, base_ns: int = 0) -> list[TimedEvent]:
    """Every line through the careful parser alone, in order: what the fast paths must match."""
    parser = evt._Parser(filename=None, base_ns=base_ns, jsonl=False)
    return [t for t in map(parser._careful, text.split("\n")) if t is not None]


# --------------------------------------------------------------------------- line forms


@pytest.mark.parametrize(
    ("text", "event_type", "fields"),
    [
        ('StockTick { symbol: "AAPL", price: 150.5, volume: 1000 }', "StockTick",
         {"symbol": "AAPL", "price": 150.5, "volume": 1000}),
        ("  Event  {  x  :  1  ,  y  :  2  }  ", "Event", {"x": 1, "y": 2}),
        ("Event{x:1,y:2}", "Event", {"x": 1, "y": 2}),
        ("Event { a: 1 b: 2 }", "Event", {"a": "1 b: 2"}),  # a bare word, as the original
        ("\tEvent { x: 1 }\r", "Event", {"x": 1}),
        ("Event { x: 1 };", "Event", {"x": 1}),
        ("Event { x: 1 } ; # why", "Event", {"x": 1}),
        ("Event { x: 1 }  // note", "Event", {"x": 1}),
        ("Event { x: 1, }", "Event", {"x": 1}),
        ("EmptyEvent { }", "EmptyEvent", {}),
        ("EmptyEvent {}", "EmptyEvent", {}),
        ("Event { x: 1, x: 2 }", "Event", {"x": 2}),  # last wins
        ('Event { "quoted key": 1, \'k2\': 2 }', "Event", {"quoted key": 1, "k2": 2}),
        ("Sensor.Reading { zone-id: 3, _x.y: 4 }", "Sensor.Reading", {"zone-id": 3, "_x.y": 4}),
        ("Ünïcode { größe: 1 }", "Ünïcode", {"größe": 1}),
        ('StockPrice("AAPL", 150.5)', "StockPrice", {"field_0": "AAPL", "field_1": 150.5}),
        ("StockPrice ( 1 , [2, 3] , x, )", "StockPrice",
         {"field_0": 1, "field_1": [2, 3], "field_2": "x"}),
        ("Ping()", "Ping", {}),
        ("BATCHED { x: 1 }", "BATCHED", {"x": 1}),  # not a BATCH directive
        ('{"event_type": "Tick", "data": {"price": 100.5, "symbol": "AAPL"}}', "Tick",
         {"price": 100.5, "symbol": "AAPL"}),
        ('{"event_type": "Tick", "fields": {"n": 1}}', "Tick", {"n": 1}),
        ('{"event_type": "Tick", "n": 1, "ok": true}', "Tick", {"n": 1, "ok": True}),
        ('  {"event_type": "X", "data": {"a": null, "inner": {"b": [1, 2.5]}}}  ', "X",
         {"a": None, "inner": {"b": [1, 2.5]}}),
    ],
)  # fmt: skip
def test_line_forms(text: str, event_type: str, fields: dict[str, Any]) -> None:
    assert events(text) == [(0, event_type, typed(fields), 0)]


def test_comments_and_blank_lines() -> None:
    text = """
        # This is a comment
        // This is also a comment

        Event1 { x: 1 }
        #Event0 { x: 0 }
        Event2 { y: 2 }   # trailing
    """
    assert [t.event.event_type for t in parse_evt(text)] == ["Event1", "Event2"]
    assert parse_evt("") == [] and parse_evt("# only\n// comments\n\n") == []


# --------------------------------------------------------------------------- values


@pytest.mark.parametrize(
    ("token", "value"),
    [
        ("true", True), ("false", False), ("null", None), ("nil", None),
        ("0", 0), ("42", 42), ("-15", -15), ("+7", 7), ("007", 7),
        ("123456789012345678901234567890", 123456789012345678901234567890),
        ("1.5", 1.5), ("-2.5", -2.5), ("100.0", 100.0), ("1.", 1.0), (".5", 0.5),
        ("-.5", -0.5), ("1e3", 1000.0), ("1E-3", 0.001), ("+2.5e+2", 250.0),
        ('"AAPL"', "AAPL"), ('""', ""), ("''", ""), ("'single quoted'", "single quoted"),
        ('"a, b: {c} [d] (e)"', "a, b: {c} [d] (e)"), ('"it\'s"', "it's"),
        ("'say \"hi\"'", 'say "hi"'),
        # bare words are strings, whatever they look like
        ("active", "active"), ("hello world", "hello world"), ('x"y', 'x"y'),
        ("2024-01-01T00:00:05Z", "2024-01-01T00:00:05Z"), ("C:\\dir", "C:\\dir"),
        ("http://host:80/p#frag", "http://host:80/p#frag"), ("True", "True"),
        ("NULL", "NULL"), ("inf", "inf"), ("-inf", "-inf"), ("nan", "nan"), ("NaN", "NaN"),
        ("Infinity", "Infinity"), ("1_000", "1_000"), ("0x1F", "0x1F"), ("1.2.3", "1.2.3"),
        ("12abc", "12abc"), ("-", "-"), (".", "."), ("1e", "1e"), ("٣", "٣"),
        ("[]", []), ("[1, 2, 3]", [1, 2, 3]), ('["AAPL", "GOOG",]', ["AAPL", "GOOG"]),
        ("[[1, 2], [3, 4]]", [[1, 2], [3, 4]]),
        ("[true, null, 1.5, x y, 'z']", [True, None, 1.5, "x y", "z"]),
        ("{}", {}), ("{a: 1, b: [2, {c: d}]}", {"a": 1, "b": [2, {"c": "d"}]}),
        ('{"k": "v"}', {"k": "v"}),
    ],
)  # fmt: skip
def test_values(token: str, value: Any) -> None:
    assert typed(one(f"E {{ v: {token} }}").fields) == typed({"v": value})
    assert typed(one(f"E {{ a: 1, v: {token}, z: 0 }}").fields["v"]) == typed(value)
    assert typed(one(f"E({token})").fields) == typed({"field_0": value})
    assert typed(one(f"E {{ v: [{token}] }}").fields["v"]) == typed([value])


@pytest.mark.parametrize(
    ("source", "value"),
    [
        (r'"Hello\nWorld"', "Hello\nWorld"), (r'"a\tb"', "a\tb"), (r'"\'"', "'"), (r"'\"'", '"'),
        (r'"say \"hello\""', 'say "hello"'), (r"'it\'s fine'", "it's fine"),
        (r'"C:\\Users\\test"', "C:\\Users\\test"),
        (r'"\\n"', "\\n"),  # an escaped backslash, then a plain n
        (r'"hello\xworld"', "hello\\xworld"),  # unknown escapes are kept
        (r'"\r\u0041\/"', "\\r\\u0041\\/"), (r'"tab:\t, comma"', "tab:\t, comma"),
    ],
)  # fmt: skip
def test_escapes(source: str, value: str) -> None:
    assert one(f"Message {{ text: {source} }}").fields == {"text": value}
    assert one(f"Message({source})").fields == {"field_0": value}


# --------------------------------------------------------------------------- pacing and time


def test_batch_offsets_are_absolute_and_prefixes_are_per_line() -> None:
    text = """
        Order { id: 1 }
        BATCH 100
        Payment { order_id: 1 }
        @20ms Shipping { order_id: 1 }
        Refund { order_id: 1 }
        BATCH 200
        Confirmation { order_id: 1 }
        BATCH 50
        Late { }
    """
    got = [(t.offset_ns, t.event.timestamp) for t in parse_evt(text, base_ns=S)]
    offsets = [0, 100 * MS, 20 * MS, 100 * MS, 200 * MS, 50 * MS]
    assert got == [(offset, S + offset) for offset in offsets]


@pytest.mark.parametrize(
    ("prefix", "offset"),
    [
        ("@0s", 0), ("@5s", 5 * S), ("@250ms", 250 * MS), ("@2m", 120 * S), ("@1h", 3600 * S),
        ("@1d", 86_400 * S), ("@100", 100 * MS), ("@1.5s", 1_500 * MS), ("@0.25", 250_000),
        ("@7us", 7_000), ("@9ns", 9), ("@1.0000000001s", S),
    ],
)  # fmt: skip
def test_timing_prefixes(prefix: str, offset: int) -> None:
    for line in (
        f"{prefix} Event {{ x: 1 }}",
        f"{prefix}\tEvent(1)",
        f'{prefix} {{"event_type": "Event"}}',
    ):
        (timed,) = parse_evt(line, base_ns=T0)
        assert (timed.offset_ns, timed.event.timestamp) == (offset, T0 + offset)


@pytest.mark.parametrize("directive", ["BATCH 2s", "BATCH 2000", "BATCH\t2000ms  # two seconds"])
def test_batch_units(directive: str) -> None:
    assert [t.offset_ns for t in parse_evt(f"{directive}\nA {{ }}")] == [2 * S]


def test_event_time_is_base_plus_offset_unless_a_timestamp_field() -> None:
    text = """
        @0s SensorEvent { value: 0 }
        @1s SensorEvent { value: 1, timestamp: "2024-01-01T00:00:05Z" }
        @2s SensorEvent { value: 2, timestamp: 1704067205000 }
        @3s SensorEvent { value: 3, timestamp: 2024-01-01T02:00:05.5+02:00 }
        @4s {"event_type": "SensorEvent", "value": 4, "timestamp": "2024-01-01T00:00:05Z"}
        @5s {"event_type": "SensorEvent", "data": {"value": 5}, "timestamp": 1704067205000}
        @6s {"event_type": "SensorEvent", "fields": {"value": 6}}
    """
    base = 1_000 * S
    got = [(t.offset_ns, t.event.timestamp) for t in parse_evt(text, base_ns=base)]
    assert got == [
        (0, base), (S, T0), (2 * S, T0), (3 * S, T0 + 500 * MS), (4 * S, T0), (5 * S, T0),
        (6 * S, base + 6 * S),
    ]  # fmt: skip
    fields = [t.event.fields for t in parse_evt(text)]
    assert fields[1] == {"value": 1, "timestamp": "2024-01-01T00:00:05Z"}  # kept as a field
    assert fields[5] == {"value": 5}  # a top-level timestamp is not a field


def test_file_order_is_kept_and_offsets_may_go_back() -> None:
    text = "@10s A { }\n@0s B { }\n@5s C { }"
    got = [(t.event.event_type, t.offset_ns) for t in parse_evt(text)]
    assert got == [("A", 10 * S), ("B", 0), ("C", 5 * S)]


# --------------------------------------------------------------------------- JSON Lines


def test_parse_jsonl() -> None:
    text = (
        '{"event_type": "A", "data": {"v": 1}}\n'
        "\n"
        '{"event_type": "B", "fields": {"v": 2.0}, "timestamp": "2024-01-01T00:00:05Z"}\r\n'
        '{"event_type": "C", "v": "x", "timestamp": 1000}\n'
    )
    assert [(t.offset_ns, t.event) for t in parse_jsonl(text, base_ns=7)] == [
        (0, Event("A", {"v": 1}, 7)),
        (0, Event("B", {"v": 2.0}, T0)),
        (0, Event("C", {"v": "x", "timestamp": 1000}, S)),
    ]


@pytest.mark.parametrize(
    ("text", "line", "column", "message"),
    [
        ('{"event_type": "A"}\n# c', 2, 1, "expected a JSON object (this is a JSON Lines file)"),
        ('{"event_type": "A"}\nA { x: 1 }', 2, 1, "expected a JSON object"),
        # a missing comma: json reports it alike on every Python (a trailing comma is not)
        ('  {"event_type": "A" "x": 1}', 1, 22, "invalid JSON: Expecting ',' delimiter"),
        ('{"event_type": "A"} x', 1, 21, "invalid JSON: Extra data"),
        ('{"event_type": "A", "v": NaN}', 1, 1, "invalid JSON: NaN is not valid JSON"),
        ('{"data": {}}', 1, 1, "event has no \"event_type\" (keys: ['data'])"),
        ('{"event_type": 1}', 1, 1, '"event_type" must be a non-empty string, got 1'),
        ('{"event_type": "A", "timestamp": "x"}', 1, 1, "bad timestamp 'x': not a date-time"),
    ],
)  # fmt: skip
def test_jsonl_errors(text: str, line: int, column: int, message: str) -> None:
    with pytest.raises(EventSyntaxError) as info:
        parse_jsonl(text, filename="in.jsonl")
    assert (info.value.line, info.value.column) == (line, column)
    assert info.value.message.startswith(message)
    assert str(info.value).startswith(f"in.jsonl:line {line}, column {column}: ")


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("text", "line", "column", "message"),
    [
        ("InvalidEvent", 1, 13, "expected '{' or '(' after the event type 'InvalidEvent'"),
        ("Event { no_colon }", 1, 18, "expected ':' after the field name 'no_colon'"),
        ("BATCH not_a_number\nE { x: 1 }", 1, 7, "bad BATCH delay 'not_a_number': expected BATCH"),
        ("BATCH", 1, 1, "no delay: expected BATCH <delay>"),
        ("BATCH 100 200", 1, 7, "bad BATCH delay '100 200'"),
        ("BATCH -5", 1, 7, "bad BATCH delay '-5'"),
        ("@abc Event { x: 1 }", 1, 1, "bad timing prefix '@abc': expected @<delay> with a unit"),
        ("@5 s Event { x: 1 }", 1, 6, "expected '{' or '(' after the event type 's'"),
        ("@5s", 1, 4, "timing prefix '@5s' must be followed by a space and an event"),
        ("@5s   ", 1, 4, "timing prefix '@5s' must be followed"),
        ("@5s # note", 1, 5, "expected an event: Type { field: value, ... }, Type(value, ...)"),
        ("A { }\n\n  B { x: \"abc }", 3, 10, "unterminated string"),
        ('E { s: "trail\\" }', 1, 8, "unterminated string"),
        ("E { a: 1 } junk", 1, 12, "unexpected text after the event: 'junk'"),
        ("E { a: 1 } }", 1, 12, "unexpected text after the event: '}'"),
        ("E { a: [1, 2 }", 1, 14, "expected ',' or ']', found '}'"),
        ("E { a: 1", 1, 3, "'{' is never closed"),
        ("E(1, 2", 1, 2, "'(' is never closed"),
        ("E { a: [1, 2", 1, 8, "'[' is never closed"),
        ("E { a: , b: 1 }", 1, 8, "expected a value, found ','"),
        ("E { a: }", 1, 8, "expected a value, found '}'"),
        ("E { a: 1,, }", 1, 10, "expected a field name, found ','"),
        ("E { 1a: 1 }", 1, 5, "expected a field name, found '1'"),
        ("E { a: 'x' y }", 1, 12, "expected ',' or '}', found 'y'"),
        ("E [1]", 1, 3, "expected '{' or '(' after the event type 'E'"),
        ("My Event { x: 1 }", 1, 4, "expected '{' or '(' after the event type 'My'"),
        ("/x { }", 1, 1, "expected an event"),
        ("[1, 2]", 1, 1, "expected an event"),
        ("{not valid json}", 1, 2, "invalid JSON: Expecting property name"),
        ('{"data": {"x": 1}}', 1, 1, 'event has no "event_type"'),
        ('  {"event_type": "A"} # c', 1, 23, "invalid JSON: Extra data"),
        ('E { timestamp: "soon" }', 1, 1, "bad timestamp 'soon': not a date-time"),
        ("@2s E { timestamp: true }", 1, 5, "bad timestamp True: a bool is not a time"),
        ("E { v: " + "[" * 70 + "]" * 70 + " }", 1, 72, "values nested more than 64 deep"),
    ],
)  # fmt: skip
def test_errors(text: str, line: int, column: int, message: str) -> None:
    with pytest.raises(EventSyntaxError) as info:
        parse_evt(text, filename="events.evt")
    err = info.value
    assert (err.line, err.column, err.filename) == (line, column, "events.evt")
    assert err.message.startswith(message)
    assert str(err) == f"events.evt:line {line}, column {column}: {err.message}"
    assert err.code == "invalid_events" and err.http_status == 400


def test_error_render_has_a_caret_under_the_column() -> None:
    text = "A { x: 1 }\n  B { x: [1, 2 }\n"
    with pytest.raises(EventSyntaxError) as info:
        parse_evt(text, filename="f.evt")
    assert info.value.render() == (
        "event syntax error: f.evt:line 2, column 16: expected ',' or ']', found '}'\n"
        "   2 |   B { x: [1, 2 }\n"
        "     |                ^"
    )
    assert info.value.to_json()["line"] == 2
    assert info.value.source == text


def test_error_without_filename() -> None:
    with pytest.raises(EventSyntaxError, match=r"^line 1, column 3: expected '\{' or '\('"):
        parse_evt("E ?")


# --------------------------------------------------------------------------- files and streams


TEXT = 'A { x: 1 }\nBATCH 10\nB { s: "y" }\n{"event_type": "C", "data": {"z": [1]}}\n@1s D(4)\n'


def test_read_event_file_and_iter_events(tmp_path: Path) -> None:
    path = tmp_path / "in.evt"
    path.write_text(TEXT, encoding="utf-8")
    expected = parse_evt(TEXT, base_ns=5)
    assert len(expected) == 4
    assert read_event_file(path, base_ns=5) == expected
    assert read_event_file(str(path), base_ns=5) == expected
    assert list(iter_events(path, base_ns=5)) == expected
    assert list(iter_events(path, base_ns=5, block_chars=7)) == expected
    assert list(iter_events(io.StringIO(TEXT), base_ns=5, block_chars=3)) == expected
    assert list(iter_events(io.StringIO(TEXT.rstrip("\n")), base_ns=5, block_chars=4)) == expected


def test_jsonl_files_by_suffix_or_format(tmp_path: Path) -> None:
    text = '{"event_type": "A", "v": 1}\n{"event_type": "B", "data": {"v": 2}}\n'
    for name in ("in.jsonl", "in.ndjson"):
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        assert read_event_file(path) == parse_jsonl(text)
        assert list(iter_events(path, block_chars=5)) == parse_jsonl(text)
    path = tmp_path / "data.txt"
    path.write_text("# not JSON Lines\n" + text, encoding="utf-8")
    assert len(read_event_file(path)) == 2  # .evt also reads JSON lines
    with pytest.raises(EventSyntaxError, match="data.txt:line 1, column 1: expected a JSON"):
        read_event_file(path, format="jsonl")
    with pytest.raises(
        BadRequest, match="unknown event file format 'csv': expected 'evt' or 'jsonl'"
    ):
        read_event_file(path, format="csv")


def test_stdin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(TEXT))
    assert read_event_file("-") == parse_evt(TEXT)
    monkeypatch.setattr(sys, "stdin", io.StringIO(TEXT))
    assert list(iter_events("-")) == parse_evt(TEXT)
    monkeypatch.setattr(sys, "stdin", io.StringIO("A { }\nB {"))
    with pytest.raises(EventSyntaxError, match=r"^<stdin>:line 2, column 3: '\{' is never closed"):
        read_event_file("-")


def test_iter_events_reports_file_lines_across_blocks(tmp_path: Path) -> None:
    path = tmp_path / "big.evt"
    lines = [f"E {{ i: {i} }}" for i in range(1000)]
    lines[777] = "E { i: 1 2 ] }"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    stream = iter_events(path, block_chars=100)
    got = [next(stream).event.fields["i"] for _ in range(777)]
    assert got == list(range(777))
    with pytest.raises(EventSyntaxError) as info:
        next(stream)
    assert (info.value.line, info.value.column) == (778, 12)
    assert info.value.filename == str(path)
    assert info.value.message == "expected ',' or '}', found ']'"
    assert info.value.snippet == " 778 | E { i: 1 2 ] }\n     |            ^"


def test_iter_events_opens_the_file_on_first_use(tmp_path: Path) -> None:
    stream = iter_events(tmp_path / "missing.evt")  # nothing is opened yet
    with pytest.raises(FileNotFoundError):
        next(stream)


# --------------------------------------------------------------------------- internals


@pytest.mark.parametrize("enabled", [True, False])
def test_the_collector_state_is_restored(enabled: bool) -> None:
    was = gc.isenabled()
    try:
        gc.enable() if enabled else gc.disable()
        parse_evt("A { }")
        assert gc.isenabled() is enabled
        with pytest.raises(EventSyntaxError):
            parse_evt("A {")
        assert gc.isenabled() is enabled
    finally:
        gc.enable() if was else gc.disable()


def test_memos_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(evt, "_MEMO_LIMIT", 8)
    text = "\n".join(f'E{i % 20} {{ k{i % 30}: "v{i}", n: {i} }}' for i in range(500))
    parser = evt._Parser(filename=None, base_ns=0, jsonl=False)
    got = parser.feed(text.split("\n"), 0)
    assert [t.event for t in got] == [
        Event(f"E{i % 20}", {f"k{i % 30}": f"v{i}", "n": i}, 0) for i in range(500)
    ]
    assert max(len(parser.names), len(parser.pairs)) <= 8


# --------------------------------------------------------------------------- properties

NAMES = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True).filter(
    lambda n: n not in ("BATCH", "timestamp")
)
SCALARS = st.one_of(
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(st.characters(exclude_characters="\n", exclude_categories=("Cs",)), max_size=12),
    st.booleans(),
    st.none(),
)


def evt_literal(value: Any, quote: str) -> str:
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace(quote, "\\" + quote).replace("\t", "\\t")
        return quote + escaped + quote
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value)


@given(
    st.lists(
        st.tuples(NAMES, st.dictionaries(NAMES, SCALARS, max_size=6), st.sampled_from(['"', "'"])),
        max_size=8,
    ),
    st.sampled_from([(" ", ", "), ("", ","), ("  ", " ,  ")]),
    st.integers(min_value=0, max_value=10**18),
)
def test_formatted_events_parse_back(
    spec: list[tuple[str, dict[str, Any], str]], spacing: tuple[str, str], base: int
) -> None:
    pad, comma = spacing
    lines = []
    for name, fields, quote in spec:
        body = comma.join(f"{k}{pad}:{pad}{evt_literal(v, quote)}" for k, v in fields.items())
        lines.append(f"{name}{pad}{{{pad}{body}{pad}}}")
    got = rows(parse_evt("\n".join(lines), base_ns=base))
    assert got == [(0, name, typed(fields), base) for name, fields, _ in spec]
    jsonl = "\n".join(json.dumps({"event_type": n, "data": f}) for n, f, _ in spec)
    assert [typed(t.event.fields) for t in parse_jsonl(jsonl)] == [typed(f) for _, f, _ in spec]


LINE_CHARS = st.sampled_from(list("E{}[]():,\"' \\\tabnx_.-+e0159#/;@NfiT"))


TOKENS = st.text(st.sampled_from(list("0123456789.eE+-_nNaif x\"'\\,:")), max_size=8)
PAIRS = st.lists(st.tuples(st.sampled_from(["a", " b", "c "]), TOKENS), min_size=1, max_size=3)


@settings(max_examples=1500)
@given(
    st.one_of(
        st.text(LINE_CHARS, max_size=30).map(lambda s: "E {" + s + "}"),
        PAIRS.map(lambda ps: "E { " + ", ".join(f"{k}:{t}" for k, t in ps) + " }"),
    )
)
@example('E { a: "x,y" }')
@example("E { a: 1 2 }")
@example("E { a: 1_0.5, b: Infinity, c: -.5e3, d: 1., e: .e1 }")
@example("E {a:'x'}")
@example('E { a: "x" "y" }')
@example("E { a: x\"y' }")
def test_fast_path_agrees_with_the_careful_parser(line: str) -> None:
    try:
        expected: Any = rows(reference(line))
    except evt._LineError as exc:
        expected = ("error", *exc.args)
    try:
        got: Any = rows(parse_evt(line))
    except EventSyntaxError as exc:
        got = ("error", exc.message, exc.column - 1)
    assert got == expected


INNER = st.text(st.sampled_from([*" ,:{}[]x#@", '"', "\\", "\t"]), max_size=7)
BULK_VALUES = st.one_of(
    INNER.map(lambda s: f'"{s}"'),
    st.sampled_from(["1", "-2.5", "1e3", "1E+2", "-0", "true", "null", "nil", "x", "[1]", ".5"]),
    INNER,
)
BULK_LINES = st.lists(
    st.tuples(
        st.sampled_from(["A", "B_2", "C"] * 3 + ["x y", "A,"]),
        st.lists(st.tuples(st.sampled_from(["a", "b", "timestamp"]), BULK_VALUES), max_size=3),
        st.sampled_from(
            [(" { ", ", ", ": ", " }")] * 4 + [("{", ",", ":", "}"), (" { ", ", ", ": ", " } ")]
        ),
    ).map(lambda t: t[0] + t[2][0] + t[2][1].join(k + t[2][2] + v for k, v in t[1]) + t[2][3]),
    min_size=1,
    max_size=4,
)


@settings(max_examples=500)
@given(BULK_LINES)
@example(['A { a: ["x { y: 1}, "] }'])
@example(['A { a: "x, }],[", b: 1 }', 'B { a: "x, : 1, y", b: 2 }'])
def test_bulk_conversion_agrees_with_the_careful_parser(lines: list[str]) -> None:
    converted = evt_shapes.bulk(lines, evt._Names())
    if converted is None:
        return  # declined: the line-by-line parser takes the batch
    types, dicts, timed = converted
    assert timed == any("timestamp" in d for d in dicts)
    parser = evt._Parser(filename=None, base_ns=0, jsonl=False)
    for line, event_type, fields in zip(lines, types, dicts, strict=True):
        expected_type, expected_fields = parser._evt_event(line, 0)  # raises if malformed
        assert (event_type, typed(fields)) == (expected_type, typed(expected_fields))


ANY_LINE = st.one_of(
    BULK_LINES.map("\n".join),
    st.sampled_from([
        "", "   ", "# comment", "// comment", "BATCH 100", "BATCH 2s", "@1.5s B(1, 2)",
        '@5s A { a: 1, b: "x" }', '{"event_type": "J", "data": {"v": 1}}',
        '@3s {"event_type": "J", "v": 2, "timestamp": 1000}', "T { timestamp: 1000, v: 1.5 }",
        'T { timestamp: "2024-01-01T00:00:05Z", v: 1 }', "Sensor.Reading { zone-id: 3 }",
        "E {x:1,y:2}", "E { a: [1, 2], m: {k: v} }", "E { s: 'single', n: nil, w: bare word }",
    ]),
)  # fmt: skip


@settings(max_examples=300)
@given(st.lists(ANY_LINE, max_size=12), st.integers(min_value=1, max_value=5))
def test_parse_evt_agrees_with_the_careful_parser_line_by_line(
    lines: list[str], batch_lines: int
) -> None:
    text = "\n".join(lines)
    try:
        expected: Any = reference(text, base_ns=7)
    except evt._LineError as exc:
        expected = exc.args[0]
    original = evt._BATCH_LINES
    evt._BATCH_LINES = batch_lines  # small blocks: bulk and line-by-line blocks interleave
    try:
        got: Any = parse_evt(text, base_ns=7)
    except EventSyntaxError as exc:
        got = exc.message
    finally:
        evt._BATCH_LINES = original
    if isinstance(expected, str) or isinstance(got, str):
        assert got == expected
    else:
        assert rows(got) == rows(expected)


def test_canonical_blocks_report_the_bad_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(evt, "_BATCH_LINES", 8)
    lines = [f'Tick {{ symbol: "S{i % 3}", price: {i}.5, volume: {i} }}' for i in range(40)]
    assert rows(parse_evt("\n".join(lines))) == rows(reference("\n".join(lines)))
    for bad, column, message in [
        ('Tick { symbol: "S", price: 1.5, volume: }', 41, "expected a value, found '}'"),
        ('Tick { timestamp: "soon", price: 1.5 }', 1, "bad timestamp 'soon'"),
    ]:
        broken = lines[:21] + [bad] + lines[22:]
        with pytest.raises(EventSyntaxError) as info:
            parse_evt("\n".join(broken))
        assert (info.value.line, info.value.column) == (22, column)
        assert info.value.message.startswith(message)
