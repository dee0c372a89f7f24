"""Event files: the original Varpulis ``.evt`` format and JSON Lines.

One event per line: ``Type { field: value, ... }``, ``Type(v1, v2)`` (fields
``field_0``, ``field_1``, ...) or a JSON object (``{"event_type": T, "data"|
"fields": {...}}`` or flat, see :func:`varpulis.events.event_from_json`).
Blank lines and lines starting with ``#`` or ``//`` are skipped; a ``# ...``
or ``// ...`` comment may also follow an event. Values: ``true``/``false``,
``null``/``nil``, ``"..."`` or ``'...'`` strings (escapes ``\\n \\t \\" \\'
\\\\`` are processed, any other backslash is kept), ints, floats (``1.5``,
``-2``, ``1e3``), ``[...]`` arrays, ``{k: v}`` maps, and bare words, which
are strings (``active``, ``2024-01-01T00:00:05Z``; ``inf``/``nan`` too).
Pacing: ``BATCH <delay>`` makes the following events due ``<delay>`` after
the start of the file (absolute, not cumulative: the original's player);
an ``@<delay> `` prefix sets the due time of its own line only. A delay is
an integer or decimal with a unit ``ns us ms s m h d``, bare = ms. Each
event comes back as a :class:`TimedEvent` in file order (a paced player
delivers them stable-sorted by offset). Event time (our decision, the
original uses the epoch): the event's ``timestamp`` field when present (RFC
3339 or epoch ms, kept as a field), else ``base_ns + offset_ns``, so time
windows work on files. A malformed line raises
:class:`~varpulis.errors.EventSyntaxError` with the file, 1-based line and
column and a caret snippet. Parsing is single-threaded per call and pauses
the cyclic garbage collector while it runs (it creates no cycles).
"""

from __future__ import annotations

import gc
import json
import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple, TextIO

from varpulis.errors import BadRequest, EventSyntaxError
from varpulis.events import Event, event_from_json, parse_timestamp

__all__ = ["TimedEvent", "iter_events", "parse_evt", "parse_jsonl", "read_event_file"]


class TimedEvent(NamedTuple):
    """One event of an event file and when a paced replay delivers it."""

    offset_ns: int
    """Delivery time in ns after the start of the file (``BATCH``/``@`` pacing)."""
    event: Event
    """The event; its ``timestamp`` is its event time (see the module docstring)."""


_S = 1_000_000_000
_UNITS_NS = {"ns": 1, "us": 1_000, "ms": 1_000_000, "": 1_000_000, "s": _S, "m": 60 * _S}
_UNITS_NS.update(h=3600 * _S, d=86_400 * _S)
_DURATION = re.compile(r"([0-9]+)(?:\.([0-9]+))?(ns|us|ms|s|m|h|d)?", re.ASCII)
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
_new_tuple = tuple.__new__


def _reject_constant(name: str) -> Any:
    message = f"{name} is not valid JSON"
    raise ValueError(message)


# NaN/Infinity are Python extensions to JSON; the original rejects them, so do we.
_JSON = json.JSONDecoder(parse_constant=_reject_constant)


class _Slow(Exception):
    """The fast path declines a line; the careful parser takes it."""


class _LineError(Exception):
    """A malformed line: *message* at 0-based *column* of the raw line."""

    def __init__(self, message: str, column: int) -> None:
        super().__init__(message)
        self.message, self.column = message, column


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


def _duration_ns(text: str) -> int | None:
    """Return the delay *text* (``5s``, ``100``, ``1.5m``) in ns, None if malformed."""
    match = _DURATION.fullmatch(text)
    if match is None:
        return None
    whole, fraction, unit = match.groups()
    scale = _UNITS_NS[unit or ""]
    nanos = int(whole) * scale
    if fraction:
        nanos += int(fraction) * scale // 10 ** len(fraction)
    return nanos


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
            raise _Slow
        _remember(self, text, name)
        return name


class _Scalars(dict):  # type: ignore[type-arg]
    """Raw token -> string, int, bool, None or bare word, as the careful parser reads it."""

    def __missing__(self, text: str) -> Any:
        word = text.strip()
        if not word:
            raise _Slow
        value: Any
        if word[0] == '"':
            if len(word) < 2 or word[-1] != '"' or word.count('"') != 2 or "\\" in word:
                raise _Slow  # escapes, commas or braces inside: the careful parser
            value = word[1:-1]
        elif _BARE.fullmatch(word) is None:
            raise _Slow
        else:
            value = _word_value(word)
        _remember(self, text, value)
        return value


class _Pairs(dict):  # type: ignore[type-arg]
    """Raw ``key: scalar`` text -> (field, value); ``dict(map(pairs.__getitem__, ...))``
    builds a flat event's fields in C when every pair was seen before."""

    __slots__ = ("names", "scalars")

    def __init__(self, names: _Names, scalars: _Scalars) -> None:
        super().__init__()
        self.names, self.scalars = names, scalars

    def __missing__(self, part: str) -> tuple[str, Any]:
        text, colon, token = part.partition(":")
        if not colon:
            raise _Slow
        key = self.names[text]
        try:
            value = float(token)
        except ValueError:
            value = self.scalars[token]
        else:  # float() also takes inf, nan, 1_0 and non-ASCII digits: those are words
            if ("." in token or "e" in token or "E" in token) and not token.strip(_FLOATING):
                return key, value  # readings rarely repeat: not worth a memo slot
            value = self.scalars[token]
        pair = key, value
        _remember(self, part, pair)
        return pair


class _Parser:
    """Parse event-file lines, keeping pacing state and memos across :meth:`feed` calls."""

    def __init__(self, *, filename: str | None, base_ns: int, jsonl: bool) -> None:
        self.filename, self.base_ns, self.jsonl = filename, base_ns, jsonl
        self.batch_ns = 0
        self.names = _Names()
        self.pairs = _Pairs(self.names, _Scalars())
        self.delays: dict[str, int] = {}

    # ------------------------------------------------------------------ driving

    def feed(self, lines: list[str], line0: int) -> list[TimedEvent]:
        """Parse *lines* (no newlines), the first being 0-based line *line0* of the file."""
        if self.jsonl:
            return self._feed_jsonl(lines, line0)
        out: list[TimedEvent] = []
        append = out.append
        base, batch = self.base_ns, self.batch_ns
        delays, name_of, pair_of = self.delays, self.names.__getitem__, self.pairs.__getitem__
        scan, new_timed = _JSON.scan_once, _new_tuple
        for index, raw in enumerate(lines):
            line = raw.strip()
            if not line:
                continue
            head = line[0]
            offset = batch
            if head in "#/@{B":
                if head == "#" or line.startswith("//"):
                    continue
                if head == "B" and line.startswith("BATCH"):
                    self._careful_at(lines, index, line0, append)
                    batch = self.batch_ns
                    continue
                if head == "@":
                    token, _, line = line.partition(" ")
                    delay = delays.get(token)
                    if delay is None:
                        delay = _duration_ns(token[1:])
                        if delay is not None:
                            _remember(delays, token, delay)
                    line = line.lstrip()
                    if delay is None or not line:
                        self._careful_at(lines, index, line0, append)
                        continue
                    offset, head = delay, line[0]
                if head == "{":
                    try:
                        obj, end = scan(line, 0)
                        if end != len(line):
                            raise _Slow
                        event = event_from_json(obj, now_ns=base + offset)
                    except (_Slow, ValueError, StopIteration, BadRequest):
                        self._careful_at(lines, index, line0, append)
                        continue
                    append(new_timed(TimedEvent, (offset, event)))
                    continue
            try:  # the common flat `Type { k: v, ... }` line with scalar values
                if line[-1] != "}":
                    raise _Slow
                name, _, body = line[:-1].partition("{")
                fields = dict(map(pair_of, body.split(",")))
                event_type = name_of(name)
                if "timestamp" in fields:
                    try:
                        when = parse_timestamp(fields["timestamp"])
                    except BadRequest:
                        raise _Slow from None
                else:
                    when = base + offset
                append(new_timed(TimedEvent, (offset, Event(event_type, fields, when))))
            except _Slow:
                self._careful_at(lines, index, line0, append)
        return out

    def _feed_jsonl(self, lines: list[str], line0: int) -> list[TimedEvent]:
        out: list[TimedEvent] = []
        append, scan, base = out.append, _JSON.scan_once, self.base_ns
        for index, raw in enumerate(lines):
            line = raw.strip()
            if not line:
                continue
            try:
                obj, end = scan(line, 0)
                if end != len(line):
                    raise _Slow
                append(_new_tuple(TimedEvent, (0, event_from_json(obj, now_ns=base))))
            except (_Slow, ValueError, StopIteration, BadRequest):
                self._careful_at(lines, index, line0, append)
        return out

    def _careful_at(self, lines: list[str], index: int, line0: int, append: Any) -> None:
        """Parse ``lines[index]`` with the careful parser; raise EventSyntaxError if bad."""
        try:
            timed = self._careful(lines[index])
        except _LineError as exc:
            start = line0 + sum(len(line) + 1 for line in lines[:index])
            source = "\n" * line0 + "\n".join(lines)
            raise EventSyntaxError(
                exc.message,
                source=source,
                offset=start + exc.column,
                filename=self.filename,
            ) from None
        if timed is not None:
            append(timed)

    # ---------------------------------------------------------------- careful parser

    def _careful(self, raw: str) -> TimedEvent | None:
        """Parse one raw line completely; raise _LineError at the first problem."""
        line = raw.rstrip()
        pos = _WS.match(line).end()
        if pos == len(line):
            return None
        if self.jsonl:
            if line[pos] != "{":
                message = "expected a JSON object (this is a JSON Lines file)"
                raise _LineError(message, pos)
            return TimedEvent(0, self._json_event(line, pos, self.base_ns))
        if _is_comment(line, pos):
            return None
        if _BATCH.match(line, pos):
            self.batch_ns = self._batch(line, pos)
            return None
        offset = self.batch_ns
        if line[pos] == "@":
            token = line[pos:].split(None, 1)[0]
            delay = _duration_ns(token[1:])
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
        when = now
        if "timestamp" in fields:
            try:
                when = parse_timestamp(fields["timestamp"])
            except BadRequest as exc:
                raise _LineError(str(exc), pos) from None
        return TimedEvent(offset, Event(event_type, fields, when))

    def _batch(self, line: str, pos: int) -> int:
        words = line[pos:].split(None, 2)
        delay = _duration_ns(words[1]) if len(words) > 1 else None
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
            obj = _JSON.decode(line[pos:])
        except json.JSONDecodeError as exc:
            message = f"invalid JSON: {exc.msg}"
            raise _LineError(message, pos + exc.pos) from None
        except ValueError as exc:
            message = f"invalid JSON: {exc}"
            raise _LineError(message, pos) from None
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
            fields, pos = self._map(line, pos, 0)
        elif opener == "(":
            items, pos = self._sequence(line, pos, ")", 0)
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

    def _map(self, line: str, start: int, depth: int) -> tuple[dict[str, Any], int]:
        """Parse ``{k: v, ...}`` opening at *start*; return it and the index after ``}``."""
        fields: dict[str, Any] = {}
        pos = start + 1
        while True:
            pos = _WS.match(line, pos).end()
            if pos == len(line):
                message = "'{' is never closed"
                raise _LineError(message, start)
            if line[pos] == "}":
                return fields, pos + 1
            key, pos = self._key(line, pos)
            pos = _WS.match(line, pos).end()
            if not line.startswith(":", pos):
                message = f"expected ':' after the field name {key!r}"
                raise _LineError(message, pos)
            fields[key], pos = self._value(line, _WS.match(line, pos + 1).end(), depth)
            pos = self._after_item(line, _WS.match(line, pos).end(), "}", start)

    def _sequence(self, line: str, start: int, closer: str, depth: int) -> tuple[list[Any], int]:
        """Parse ``(v, ...)`` or ``[v, ...]`` opening at *start*."""
        items: list[Any] = []
        pos = start + 1
        while True:
            pos = _WS.match(line, pos).end()
            if pos == len(line):
                message = f"{line[start]!r} is never closed"
                raise _LineError(message, start)
            if line[pos] == closer:
                return items, pos + 1
            value, pos = self._value(line, pos, depth)
            items.append(value)
            pos = self._after_item(line, _WS.match(line, pos).end(), closer, start)

    def _after_item(self, line: str, pos: int, closer: str, start: int) -> int:
        if pos == len(line):
            message = f"{line[start]!r} is never closed"
            raise _LineError(message, start)
        if line[pos] == ",":
            return pos + 1
        if line[pos] == closer:
            return pos  # the caller's loop sees the closer
        message = f"expected ',' or {closer!r}, found {line[pos]!r}"
        raise _LineError(message, pos)

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
            if head == "[":
                return self._sequence(line, pos, "]", depth + 1)
            return self._map(line, pos, depth + 1)
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
    with _collector_paused():
        return _Parser(filename=filename, base_ns=base_ns, jsonl=False).feed(text.split("\n"), 0)


def parse_jsonl(text: str, *, filename: str | None = None, base_ns: int = 0) -> list[TimedEvent]:
    """Parse JSON Lines *text*: one event object per non-blank line, offsets all 0.

    Event time: the event's timestamp (see
    :func:`~varpulis.events.event_from_json`), else *base_ns*.
    """
    with _collector_paused():
        return _Parser(filename=filename, base_ns=base_ns, jsonl=True).feed(text.split("\n"), 0)


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
    if name == "-":
        text, filename = sys.stdin.read(), "<stdin>"
    else:
        text, filename = Path(name).read_text(encoding="utf-8"), name
    parse = parse_jsonl if _is_jsonl(name, format) else parse_evt
    return parse(text, filename=filename, base_ns=base_ns)


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
    is exhausted or closed. Errors surface when their line is reached.
    """
    if isinstance(source, (str, os.PathLike)):
        name = os.fspath(source)
        filename = "<stdin>" if name == "-" else name
    else:
        name = filename = getattr(source, "name", None) or "<stream>"
    parser = _Parser(filename=filename, base_ns=base_ns, jsonl=_is_jsonl(str(name), format))
    return _iterate(parser, source, block_chars)


def _iterate(parser: _Parser, source: Any, block_chars: int) -> Iterator[TimedEvent]:
    if isinstance(source, (str, os.PathLike)):
        if os.fspath(source) != "-":
            with open(source, encoding="utf-8") as stream:
                yield from _iterate(parser, stream, block_chars)
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
            events = parser.feed(lines, line0)
        line0 += len(lines)
        yield from events
        if not block:
            return
