"""Event files: the original Varpulis ``.evt`` format and JSON Lines.

One event per line: ``Type { field: value, ... }``, ``Type(v1, v2)`` (fields
``field_0``, ...) or a JSON object (see :func:`varpulis.events.event_from_json`).
``#``/``//`` comment lines and blank lines are skipped; a comment may follow an
event. Values: ``true false null nil``, ``"..."``/``'...'`` strings (escapes
``\\n \\t \\" \\' \\\\`` processed, other backslashes kept), ints, floats,
``[...]``, ``{k: v}``, and bare words as strings (``active``, ``inf``). Pacing:
``BATCH <delay>`` makes the following events due ``<delay>`` after the start of
the file (absolute, as the original's player); an ``@<delay>`` prefix sets its
own line's. Delays: a number with a unit ``ns us ms s m h d``, bare = ms.
Events come back as :class:`TimedEvent` in file order (a paced player sorts
them stably by offset). Event time (our decision; the original uses the
epoch): the ``timestamp`` field when present (RFC 3339 or epoch ms, kept as a
field), else ``base_ns + offset_ns``, so time windows work on files. A bad
line raises :class:`~varpulis.errors.EventSyntaxError` (file, 1-based line and
column, caret snippet). A call parses on one thread and pauses the cyclic
garbage collector meanwhile (parsing creates no cycles). Fast paths
(:mod:`~varpulis.lang.evt_shapes`) only read what the careful parser here reads alike.
"""

from __future__ import annotations

import gc
import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import chain, repeat
from pathlib import Path
from typing import Any, NamedTuple, TextIO

from varpulis.errors import BadRequest, EventSyntaxError
from varpulis.events import Event, event_from_json, parse_timestamp
from varpulis.lang import evt_shapes as shapes
from varpulis.lang.evt_shapes import Decline, Interned, Shape, Table

__all__ = [
    "TimedEvent",
    "iter_event_blocks",
    "iter_events",
    "parse_evt",
    "parse_jsonl",
    "read_event_file",
]


class TimedEvent(NamedTuple):
    """One event of an event file and when a paced replay delivers it."""

    offset_ns: int
    """Delivery time in ns after the start of the file (``BATCH``/``@`` pacing)."""
    event: Event
    """The event; its ``timestamp`` is its event time (see the module docstring)."""


_WS = re.compile(r"\s*")  # str.strip()'s whitespace: the fast path strips with it
_BATCH = re.compile(r"BATCH(?:\s|$)")
_NAME = re.compile(r"[^\W\d][\w.\-]*")
_BARE = re.compile(r"""[^\s,{}\[\]()"'][^,{}\[\]()]*""")
_STRINGS = {'"': re.compile(r'"((?:[^"\\]|\\.)*)"'), "'": re.compile(r"'((?:[^'\\]|\\.)*)'")}
_ESCAPE = re.compile(r"\\(.)")
_ESCAPES = {"n": "\n", "t": "\t", '"': '"', "'": "'", "\\": "\\"}
_CONSTANTS: dict[str, Any] = {"true": True, "false": False, "null": None, "nil": None}
_NUMBER_START = frozenset("0123456789+-.")
_NUMBER_END = frozenset("0123456789.")
_FLOATING = "0123456789.eE+- \t"
_MAX_DEPTH = 64
_MEMO_LIMIT = 32_768
_BLOCK_CHARS = 1 << 20
_BATCH_LINES = 1024
_new_tuple = tuple.__new__


class _LineError(Exception):
    """A malformed line: ``args`` are the message and the 0-based column in the raw line."""


def _word_value(word: str) -> Any:
    """Convert a bare word: int, float, true/false/null/nil, else the word itself."""
    if word[0] in _NUMBER_START and word[-1] in _NUMBER_END and word.isascii() and "_" not in word:
        # float() accepts exactly our number syntax once inf/nan (which end in a
        # letter), '_' separators and non-ASCII digits are ruled out.
        try:
            number = float(word)
        except ValueError:
            return word
        if "." in word or "e" in word or "E" in word:
            return number
        return int(word)
    return _CONSTANTS.get(word, word)


def _unescape(text: str) -> str:
    if "\\" not in text:
        return text
    return _ESCAPE.sub(lambda m: _ESCAPES.get(m[1], m[0]), text)


def _remember(memo: dict[str, Any], key: str, value: Any) -> None:
    if len(memo) >= _MEMO_LIMIT:  # bounded: unique values would grow it forever
        memo.clear()
    memo[key] = value


def _is_comment(line: str, pos: int) -> bool:
    return line.startswith("#", pos) or line.startswith("//", pos)


class _Names(dict):  # type: ignore[type-arg]
    """Raw text -> event type or field name (validated): files repeat them."""

    def __missing__(self, text: str) -> str:
        name = text.strip()
        if _NAME.fullmatch(name) is None:
            raise Decline
        _remember(self, text, name)
        return name


def _scalar(text: str) -> Any:
    """Read a scalar token as the careful parser would; raise Decline for anything else."""
    word = text.strip()
    if not word:
        raise Decline
    if word[0] == '"':
        if len(word) < 2 or word[-1] != '"' or word.count('"') != 2 or "\\" in word:
            raise Decline  # escapes, commas or braces inside: the careful parser
        return word[1:-1]
    if _BARE.fullmatch(word) is None:
        raise Decline
    return _word_value(word)


class _Pairs(dict):  # type: ignore[type-arg]
    """Raw ``key: scalar`` text -> (field, value); ``dict(map(pairs.__getitem__, ...))``
    builds a flat event's fields in C when every pair was seen before."""

    __slots__ = ("names",)

    def __init__(self, names: _Names) -> None:
        super().__init__()
        self.names = names

    def __missing__(self, part: str) -> tuple[str, Any]:
        text, colon, token = part.partition(":")
        if not colon:
            raise Decline
        key = self.names[text]
        try:
            value = float(token)
        except ValueError:
            value = _scalar(token)
        else:  # float() also takes inf, nan, 1_0 and non-ASCII digits: those are words
            if ("." in token or "e" in token or "E" in token) and not token.strip(_FLOATING):
                return key, value  # readings rarely repeat: not worth a memo slot
            value = _scalar(token)
        pair = key, value
        _remember(self, part, pair)
        return pair


def _event_time(fields: dict[str, Any], now: int) -> int:
    return parse_timestamp(fields["timestamp"]) if "timestamp" in fields else now


def _timed(table: Table) -> list[TimedEvent]:
    """The rows of *table* as TimedEvents."""
    events = map(Event, table.types, table.fields(), table.timestamps)
    return list(map(_new_tuple, repeat(TimedEvent), zip(table.offsets, events, strict=True)))


def _facts(t: TimedEvent) -> tuple[Any, ...]:
    fields = [(k, type(v), v) for k, v in t.event.fields.items()]  # 1 == 1.0 == True
    return t.offset_ns, t.event.event_type, t.event.timestamp, fields


class _Parser:
    """Parse event-file lines, keeping pacing state and memos across :meth:`feed` calls."""

    def __init__(self, *, filename: str | None, base_ns: int, jsonl: bool) -> None:
        self.filename, self.base_ns, self.jsonl = filename, base_ns, jsonl
        self.batch_ns = 0
        self.names = _Names()
        self.pairs = _Pairs(self.names)
        self.shape: Shape | None = None  # the layout of the latest block it read
        self.strings = Interned(_MEMO_LIMIT)

    def feed(self, lines: list[str], line0: int) -> list[TimedEvent]:
        """Parse *lines* (no newlines), the first being 0-based line *line0* of the file."""
        out: list[TimedEvent] = []
        for part in self.feed_parts(lines, line0):
            out += _timed(part) if type(part) is Table else part
        return out

    def feed_parts(self, lines: list[str], line0: int) -> list[list[TimedEvent] | Table]:
        """As :meth:`feed`, in file order, with what line shapes read left as Tables."""
        parts: list[list[TimedEvent] | Table] = []
        out: list[TimedEvent] = []
        end = len(lines)
        while end and not lines[end - 1]:  # what follows the final newline
            end -= 1
        for start in range(0, end, _BATCH_LINES):
            stop = min(start + _BATCH_LINES, end)
            block = lines[start:stop]
            table = None if self.jsonl else self._shaped(block)
            if table is not None:
                if out:
                    parts.append(out)
                    out = []
                parts.append(table)
                continue
            offsets = shapes.paced(block) if block[0][:1] == "@" else [self.batch_ns] * len(block)
            converted = None if self.jsonl or offsets is None else shapes.bulk(block, self.names)
            if converted is not None:
                base, (types, dicts, timed) = self.base_ns, converted
                try:
                    whens = [
                        _event_time(d, base + o) if timed else base + o
                        for d, o in zip(dicts, offsets, strict=True)
                    ]
                except BadRequest:
                    pass  # line by line, to name the line
                else:
                    new, items = _new_tuple, zip(offsets, types, dicts, whens, strict=True)
                    out += [new(TimedEvent, (o, Event(t, f, w))) for o, t, f, w in items]
                    continue
            self._feed_lines(lines, start, stop, line0, out)
        if out:
            parts.append(out)
        return parts

    def _shaped(self, block: list[str]) -> Table | None:
        """*block* read by a line shape (``evt_shapes``), or None."""
        shape, names, base, batch = self.shape, self.names, self.base_ns, self.batch_ns
        strings, sample = self.strings, block[0].strip()
        try:
            got = None if shape is None else shape.read(block, names, base, batch, strings)
            for any_type in (False, True):  # its first line's type, else any type
                if got is not None:
                    return got
                tried, shape = shape, shapes.learn(sample, any_type=any_type)
                if shape is None or not self._agrees(shape, sample):
                    return None
                if tried is None or shape.regex != tried.regex:
                    got = shape.read(block, names, base, batch, strings)
                    self.shape = shape if got is not None else self.shape
        except ValueError:  # e.g. an int past the digit limit: the careful parser's call
            return None
        return got

    def _agrees(self, shape: Shape, line: str) -> bool:
        """Tell whether *shape* reads *line* exactly as the careful parser does."""
        try:
            timed = self._careful(line)
        except _LineError:
            return False
        got = shape.read([line], self.names, self.base_ns, self.batch_ns)
        return got is not None and timed is not None and _facts(_timed(got)[0]) == _facts(timed)

    def _feed_lines(
        self, lines: list[str], start: int, stop: int, line0: int, out: list[TimedEvent]
    ) -> None:
        append, base, batch = out.append, self.base_ns, self.batch_ns
        new_timed, flat, jsonl = _new_tuple, self._flat, self.jsonl
        scan = shapes.JSON_DECODER.scan_once
        for index in range(start, stop):
            line = lines[index].strip()
            if not line:
                continue
            head = line[0]
            offset = batch
            try:
                if jsonl and head != "{":
                    raise Decline
                if head in "#/@{B":
                    if head == "#" or line.startswith("//"):
                        continue
                    if head == "B" and line.startswith("BATCH"):
                        raise Decline
                    if head == "@":
                        token, _, line = line.partition(" ")
                        delay = shapes.duration_ns(token[1:])
                        if delay is None:
                            raise Decline
                        offset, line = delay, line.lstrip()
                    if line[:1] == "{":
                        obj, end = scan(line, 0)
                        if end != len(line):
                            raise Decline
                        event = event_from_json(obj, now_ns=base + offset)
                        append(new_timed(TimedEvent, (offset, event)))
                        continue
                append(flat(line, offset, base + offset))
            except (Decline, ValueError, StopIteration, BadRequest):
                timed = self._careful_at(lines, index, line0)
                batch = self.batch_ns
                if timed is not None:
                    append(timed)

    def _flat(self, line: str, offset: int, when: int) -> TimedEvent:
        """Parse a flat ``Type { k: v, ... }`` line of scalars; raise Decline for others."""
        if line[-1:] != "}":
            raise Decline
        name, _, body = line[:-1].partition("{")
        fields = dict(map(self.pairs.__getitem__, body.split(",")))
        event_type = self.names[name]
        when = _event_time(fields, when)  # a BadRequest sends the line to _careful
        return _new_tuple(TimedEvent, (offset, Event(event_type, fields, when)))

    def _careful_at(self, lines: list[str], index: int, line0: int) -> TimedEvent | None:
        """Parse ``lines[index]`` with the careful parser; raise EventSyntaxError if bad."""
        try:
            return self._careful(lines[index])
        except _LineError as exc:
            message, column = exc.args
            start = line0 + sum(len(line) + 1 for line in lines[:index])
            source = "\n" * line0 + "\n".join(lines)
            raise EventSyntaxError(
                message, source=source, offset=start + column, filename=self.filename
            ) from None

    def _careful(self, raw: str) -> TimedEvent | None:
        """Parse one raw line completely; raise _LineError at the first problem."""
        line = raw.rstrip()
        pos = _WS.match(line).end()
        if pos == len(line):
            return None
        if self.jsonl and line[pos] != "{":
            message = "expected a JSON object (this is a JSON Lines file)"
            raise _LineError(message, pos)
        if _is_comment(line, pos):
            return None
        if _BATCH.match(line, pos):
            self.batch_ns = self._batch(line, pos)
            return None
        offset = self.batch_ns
        if line[pos] == "@":
            token = line[pos:].split(None, 1)[0]
            delay = shapes.duration_ns(token[1:])
            if delay is None:
                message = (
                    f"bad timing prefix {token!r}: expected @<delay> with a unit "
                    f"ns, us, ms, s, m, h or d (bare = ms), e.g. @5s or @100ms"
                )
                raise _LineError(message, pos)
            start = _WS.match(line, pos + len(token)).end()
            if start == len(line):
                message = f"timing prefix {token!r} must be followed by a space and an event"
                raise _LineError(message, pos + len(token))
            offset, pos = delay, start
        now = self.base_ns + offset
        if line[pos] == "{":
            return TimedEvent(offset, self._json_event(line, pos, now))
        event_type, fields = self._evt_event(line, pos)
        try:
            return TimedEvent(offset, Event(event_type, fields, _event_time(fields, now)))
        except BadRequest as exc:
            raise _LineError(str(exc), pos) from None

    def _batch(self, line: str, pos: int) -> int:
        words = line[pos:].split(None, 2)
        delay = shapes.duration_ns(words[1]) if len(words) > 1 else None
        if delay is None or (len(words) > 2 and not _is_comment(words[2], 0)):
            what = f"bad BATCH delay {' '.join(words[1:])!r}" if len(words) > 1 else "no delay"
            message = (
                f"{what}: expected BATCH <delay>, the time after the start of the file "
                f"in ms or with a unit ns, us, ms, s, m, h or d (e.g. BATCH 100, BATCH 2s)"
            )
            raise _LineError(message, line.find(words[1], pos + 5) if len(words) > 1 else pos)
        return delay

    def _json_event(self, line: str, pos: int, now: int) -> Event:
        try:
            obj = shapes.JSON_DECODER.decode(line[pos:])
        except ValueError as exc:  # a JSONDecodeError, or NaN/Infinity
            message = f"invalid JSON: {getattr(exc, 'msg', exc)}"
            raise _LineError(message, pos + getattr(exc, "pos", 0)) from None
        try:
            return event_from_json(obj, now_ns=now)
        except BadRequest as exc:
            raise _LineError(str(exc), pos) from None

    def _evt_event(self, line: str, pos: int) -> tuple[str, dict[str, Any]]:
        match = _NAME.match(line, pos)
        if match is None:
            message = (
                "expected an event: Type { field: value, ... }, Type(value, ...), "
                "a JSON object, BATCH <delay> or a comment"
            )
            raise _LineError(message, pos)
        event_type = match[0]
        pos = _WS.match(line, match.end()).end()
        opener = line[pos : pos + 1]
        if opener == "{":
            fields, pos = self._items(line, pos, "}", 0)
        elif opener == "(":
            items, pos = self._items(line, pos, ")", 0)
            fields = {f"field_{i}": value for i, value in enumerate(items)}
        else:
            message = f"expected '{{' or '(' after the event type {event_type!r}"
            raise _LineError(message, pos)
        pos = _WS.match(line, pos).end()
        if line.startswith(";", pos):
            pos = _WS.match(line, pos + 1).end()
        if pos < len(line) and not _is_comment(line, pos):
            message = f"unexpected text after the event: {line[pos:]!r}"
            raise _LineError(message, pos)
        return event_type, fields

    def _items(self, line: str, start: int, closer: str, depth: int) -> tuple[Any, int]:
        """Parse ``{k: v, ...}`` (a dict), ``[v, ...]`` or ``(v, ...)`` opening at *start*.

        Returns it and the index after *closer*; a trailing comma is allowed.
        """
        keyed = closer == "}"
        items: Any = {} if keyed else []
        pos = _WS.match(line, start + 1).end()
        while pos == len(line) or line[pos] != closer:
            if pos == len(line):
                message = f"{line[start]!r} is never closed"
                raise _LineError(message, start)
            if keyed:
                key, pos = self._key(line, pos)
                pos = _WS.match(line, pos).end()
                if not line.startswith(":", pos):
                    message = f"expected ':' after the field name {key!r}"
                    raise _LineError(message, pos)
                items[key], pos = self._value(line, _WS.match(line, pos + 1).end(), depth)
            else:
                value, pos = self._value(line, pos, depth)
                items.append(value)
            pos = _WS.match(line, pos).end()
            if line.startswith(",", pos):
                pos = _WS.match(line, pos + 1).end()
            elif pos < len(line) and line[pos] != closer:
                message = f"expected ',' or {closer!r}, found {line[pos]!r}"
                raise _LineError(message, pos)
        return items, pos + 1

    def _key(self, line: str, pos: int) -> tuple[str, int]:
        match = _NAME.match(line, pos)
        if match is not None:
            return match[0], match.end()
        if line[pos] in _STRINGS:
            return self._string(line, pos)
        message = f"expected a field name, found {line[pos]!r}"
        raise _LineError(message, pos)

    def _string(self, line: str, pos: int) -> tuple[str, int]:
        match = _STRINGS[line[pos]].match(line, pos)
        if match is None:
            message = "unterminated string"
            raise _LineError(message, pos)
        return _unescape(match[1]), match.end()

    def _value(self, line: str, pos: int, depth: int) -> tuple[Any, int]:
        head = line[pos : pos + 1]
        if head in _STRINGS:
            return self._string(line, pos)
        if head == "[" or head == "{":
            if depth >= _MAX_DEPTH:
                message = f"values nested more than {_MAX_DEPTH} deep"
                raise _LineError(message, pos)
            return self._items(line, pos, "]" if head == "[" else "}", depth + 1)
        match = _BARE.match(line, pos)
        if match is None:
            found = f"found {head!r}" if head else "found the end of the line"
            message = f"expected a value, {found}"
            raise _LineError(message, pos)
        word = match[0].rstrip()
        return _word_value(word), pos + len(word)


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause the cyclic GC: parsing allocates millions of acyclic objects."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def parse_evt(text: str, *, filename: str | None = None, base_ns: int = 0) -> list[TimedEvent]:
    """Parse ``.evt`` *text* (JSON-object lines included) into events, in file order.

    *filename* names the source in error messages; *base_ns* is the event
    time of offset 0 (ns since the epoch; 0 = the epoch, deterministic).
    Raises :class:`~varpulis.errors.EventSyntaxError` at the first bad line.
    """
    return _parse(text, filename, base_ns, jsonl=False)


def parse_jsonl(text: str, *, filename: str | None = None, base_ns: int = 0) -> list[TimedEvent]:
    """Parse JSON Lines *text*: one event object per non-blank line, offsets all 0.

    Event time: the event's timestamp (see
    :func:`~varpulis.events.event_from_json`), else *base_ns*.
    """
    return _parse(text, filename, base_ns, jsonl=True)


def _parse(text: str, filename: str | None, base_ns: int, *, jsonl: bool) -> list[TimedEvent]:
    with _collector_paused():
        return _Parser(filename=filename, base_ns=base_ns, jsonl=jsonl).feed(text.split("\n"), 0)


def _is_jsonl(name: str, format: str | None) -> bool:
    if format is None:
        return name.endswith((".jsonl", ".ndjson"))
    if format not in ("evt", "jsonl"):
        message = f"unknown event file format {format!r}: expected 'evt' or 'jsonl'"
        raise BadRequest(message)
    return format == "jsonl"


def read_event_file(
    path: str | os.PathLike[str], *, base_ns: int = 0, format: str | None = None
) -> list[TimedEvent]:
    """Read and parse the event file *path* (``-`` = standard input) at once.

    *format* is ``"evt"`` or ``"jsonl"``; by default a ``.jsonl``/``.ndjson``
    name means JSON Lines and anything else (stdin too) ``.evt``. Files are
    UTF-8. Raises OSError if unreadable, EventSyntaxError if malformed.
    """
    name = os.fspath(path)
    jsonl = _is_jsonl(name, format)
    text = sys.stdin.read() if name == "-" else Path(name).read_text(encoding="utf-8")
    return _parse(text, "<stdin>" if name == "-" else name, base_ns, jsonl=jsonl)


def iter_events(
    source: str | os.PathLike[str] | TextIO,
    *,
    base_ns: int = 0,
    format: str | None = None,
    block_chars: int = _BLOCK_CHARS,
) -> Iterator[TimedEvent]:
    """Yield the events of an event file lazily, reading *block_chars* at a time.

    *source* is a path (``-`` = standard input) or an open text stream (read,
    not closed). Same results as :func:`read_event_file` in constant memory;
    the file is opened on the first ``next()`` and closed when the iterator
    is exhausted or closed. Errors surface when their block is reached.
    """
    blocks = iter_event_blocks(source, base_ns=base_ns, format=format, block_chars=block_chars)
    return chain.from_iterable(blocks)


def iter_event_blocks(
    source: str | os.PathLike[str] | TextIO,
    *,
    base_ns: int = 0,
    format: str | None = None,
    block_chars: int = _BLOCK_CHARS,
    tables: bool = False,
) -> Iterator[Any]:
    """As :func:`iter_events`, in non-empty lists of TimedEvents, for bulk consumers.

    With *tables*, runs of lines read by a line shape come as
    :class:`~varpulis.lang.evt_shapes.Table` parts instead (columns: no field
    dicts or events are built). What is yielded is new and owned by the receiver.
    """
    path = isinstance(source, (str, os.PathLike))
    name = os.fspath(source) if path else getattr(source, "name", None)  # type: ignore[arg-type]
    filename = "<stdin>" if name == "-" else str(name or "<stream>")
    parser = _Parser(filename=filename, base_ns=base_ns, jsonl=_is_jsonl(filename, format))
    return _iterate(parser, source, block_chars, tables)


def _iterate(parser: _Parser, source: Any, block_chars: int, tables: bool) -> Iterator[Any]:
    if isinstance(source, (str, os.PathLike)):
        if os.fspath(source) != "-":
            with open(source, encoding="utf-8") as stream:
                yield from _iterate(parser, stream, block_chars, tables)
            return
        source = sys.stdin
    line0, rest = 0, ""
    while True:
        block = source.read(block_chars)
        if not block:
            lines = [rest] if rest else []
        else:
            block = rest + block
            cut = block.rfind("\n")
            if cut < 0:
                rest = block
                continue
            lines, rest = block[:cut].split("\n"), block[cut + 1 :]
        with _collector_paused():
            parts = parser.feed_parts(lines, line0) if tables else [parser.feed(lines, line0)]
        line0 += len(lines)
        yield from filter(len, parts)
        if not block:
            return
