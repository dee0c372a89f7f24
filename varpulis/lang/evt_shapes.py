"""The ``.evt`` parser's fast paths: whole blocks of lines at C speed.

A *shape* is the layout of a flat event line as event files repeat it: an
optional ``@<digits><unit>`` prefix, the event type, ``{``, the same field
names in the same order with the same spacing, values of the same kind (a
``"..."`` string without backslash, a ``-12.5`` float, a ``-12`` int,
``true``/``false``), ``}``. :func:`learn` builds a :class:`Shape` from a
sample line, its type spelt out or (``any_type``) read per line;
:meth:`Shape.read` runs its one multiline regex over a whole block
(``findall``) and accepts the block only when every line matched, so a block
is read entirely by the shape or left to the caller's other paths. Values are
converted column by column (``map(float, ...)``) into a :class:`Table`; field
dicts come from one generated function per shape. What a shape accepts reads
exactly as the careful parser in :mod:`varpulis.lang.evt` reads it (the caller
checks the sample against it; property tests check random blocks): anything
else (comments, ``BATCH``, escapes, ``timestamp`` fields, nesting, other number
spellings) makes the shape decline. :func:`bulk` is the older whole-block path
through JSON for canonical lines of mixed layouts; :func:`paced` and
:func:`duration_ns` read ``@``/``BATCH`` delays. Shapes are immutable and may
be shared; per-file state (memos) belongs to the caller.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from typing import Any

__all__ = [
    "JSON_DECODER",
    "Decline",
    "Interned",
    "Shape",
    "Table",
    "bulk",
    "dict_builder",
    "duration_ns",
    "learn",
    "paced",
]

_S = 1_000_000_000
#: Delay units as the careful parser reads them (bare = ms).
UNITS_NS = {"ns": 1, "us": 1_000, "ms": 1_000_000, "": 1_000_000, "s": _S, "m": 60 * _S,
            "h": 3600 * _S, "d": 86_400 * _S}  # fmt: skip
_DURATION = re.compile(r"([0-9]+)(?:\.([0-9]+))?(ns|us|ms|s|m|h|d)?", re.ASCII)
_NAME = r"[^\W\d][\w.\-]*"  # the careful parser's event type and field name syntax
_SP = r"[ \t]*"
# Value kinds: the regex of a token and its conversion (None: the text itself).
_KINDS: dict[str, tuple[str, Callable[[str], Any] | None]] = {
    "s": (r'"([^"\\\n]*)"', None),
    "f": (r"(-?[0-9]+\.[0-9]+)", float),
    "i": (r"(-?[0-9]{1,18})", int),  # longer ints: the careful parser (digit limits)
    "b": (r"(true|false)", {"true": True, "false": False}.__getitem__),
}
_SAMPLE_HEAD = re.compile(rf"(?:@([0-9]+)(ns|us|ms|s|m|h|d)?[ \t]+)?({_NAME}){_SP}\{{{_SP}")
_SAMPLE_PAIR = re.compile(
    rf"({_NAME}){_SP}:{_SP}(\"[^\"\\\n]*\"|[^,{{}}\[\]()\"'\s]+){_SP}(?:,{_SP})?"
)
# Lines with these go line by line: escapes, comments, pacing, blank lines, arrays.
_NOT_BULK = ("\\", "#", "@", "BATCH", "\n\n", "[", "]")
_TO_JSON = ((" { ", '",{"'), (", ", ',"'), (": ", '":'), (" }\n", '},"'))
_BUILDERS: dict[int, Callable[..., Callable[..., dict[str, Any]]]] = {}


def dict_builder(keys: tuple[str, ...]) -> Callable[..., dict[str, Any]]:
    """A function of ``len(keys)`` values returning ``{keys[0]: v0, ...}``.

    The generated source holds only the identifiers ``k<i>``/``a<i>``: the
    keys are closure values, never source text.
    """
    width = len(keys)
    make = _BUILDERS.get(width)
    if make is None:
        params = ", ".join(f"k{i}" for i in range(width))
        args = ", ".join(f"a{i}" for i in range(width))
        body = ", ".join(f"k{i}: a{i}" for i in range(width))
        text = f"def make({params}):\n    return lambda {args}: {{{body}}}\n"
        namespace: dict[str, Any] = {"__builtins__": {}}
        exec(compile(text, "<varpulis.lang.evt_shapes>", "exec"), namespace)  # noqa: S102
        make = _BUILDERS[width] = namespace["make"]
    return make(*keys)


def _kind(token: str) -> str | None:
    for kind, (pattern, _) in _KINDS.items():
        if re.fullmatch(pattern, token):
            return kind
    return None


class Interned(dict):  # type: ignore[type-arg]
    """Text -> one shared equal string: files repeat their values (``"AAPL"``), and a
    shared string is stored once and hashes once. Bounded: cleared at *limit*."""

    __slots__ = ("limit",)

    def __init__(self, limit: int = 32_768) -> None:
        super().__init__()
        self.limit = limit

    def __missing__(self, text: str) -> str:
        if len(self) >= self.limit:
            self.clear()
        self[text] = text
        return text


class Table:
    """Consecutive lines read by one shape, as columns (what :meth:`Shape.read` returns).

    ``types`` holds each row's event type, ``columns`` the values of field
    ``keys[i]`` for every row (sequences the receiver may keep, never mutated
    here), ``offsets`` each row's pacing offset and ``timestamps`` its event
    time, in ns. :meth:`fields` builds the rows' field dicts.
    """

    __slots__ = ("columns", "keys", "make", "offsets", "timestamps", "types")

    def __init__(
        self,
        types: list[str],
        keys: tuple[str, ...],
        columns: list[Sequence[Any]],
        offsets: list[int],
        timestamps: list[int],
        make: Callable[..., dict[str, Any]],
    ) -> None:
        self.types, self.keys, self.columns, self.offsets = types, keys, columns, offsets
        self.timestamps, self.make = timestamps, make

    def __len__(self) -> int:
        return len(self.types)

    def fields(self) -> list[dict[str, Any]]:
        """One new field dict per row, keys in the line's order."""
        return list(map(self.make, *self.columns))


class Shape:
    """One line layout (see the module docstring); :meth:`read` applies it to blocks."""

    __slots__ = ("converters", "event_type", "keys", "make", "regex", "scale")

    def __init__(self, pattern: str, unit: str | None, keys: tuple[str, ...],
                 kinds: tuple[str, ...], event_type: str | None) -> None:  # fmt: skip
        #: ns per unit of the ``@`` prefix; None: the shape has no prefix.
        self.scale = None if unit is None else UNITS_NS[unit]
        #: The one event type the regex spells out, or None: any type (a column).
        self.event_type = event_type
        self.keys = keys
        self.converters = tuple(_KINDS[k][1] for k in kinds)
        self.make = dict_builder(keys)
        self.regex = re.compile(pattern, re.MULTILINE)

    def read(
        self,
        block: list[str],
        names: Any,
        base_ns: int,
        offset_ns: int,
        strings: Interned | None = None,
    ) -> Table | None:
        """Read every line of *block* (no newlines), or None when some line does not fit.

        Event types go through *names* (a mapping from text to the canonical
        name string), string values through *strings* when given; a row's
        offset is its ``@`` prefix, else *offset_ns*, and its event time
        *base_ns* + its offset. Raises ValueError for a number Python will not
        convert (the caller's careful parser then decides).
        """
        rows = self.regex.findall("\n".join(block))
        count = len(rows)
        if count != len(block) or not rows:
            return None
        # findall gives tuples of groups, or the group itself when there is one
        columns: list[Any] = list(zip(*rows, strict=True)) if self.regex.groups > 1 else [rows]
        if self.scale is None:
            offsets = [offset_ns] * count
            timestamps = [base_ns + offset_ns] * count
        else:
            offsets = list(map(self.scale.__mul__, map(int, columns.pop(0))))
            timestamps = list(map(base_ns.__add__, offsets)) if base_ns else offsets
        if self.event_type is None:
            types = list(map(names.__getitem__, columns.pop(0)))
        else:
            types = [names[self.event_type]] * count
        share = None if strings is None else strings.__getitem__
        values = [
            list(map(convert, column))
            if convert is not None
            else column
            if share is None
            else list(map(share, column))
            for convert, column in zip(self.converters, columns, strict=True)
        ]
        return Table(types, self.keys, values, offsets, timestamps, self.make)


def learn(line: str, *, any_type: bool = False) -> Shape | None:
    """The shape of the flat event *line* (stripped), or None when it has none.

    The shape's regex keeps the sample's text between its values literally
    (field names, separators and their spacing, and its event type unless
    *any_type*): event files repeat one layout, and literal text is what a
    regex matches fastest.
    """
    head = _SAMPLE_HEAD.match(line)
    if head is None:
        return None
    digits, unit, event_type = head.groups()
    parts = ["^"]
    if digits is not None:
        parts += [r"@([0-9]+)", re.escape(line[head.end(1) : head.start(3)])]
    if any_type:  # unprefixed, ``BATCH`` and a space is a pacing line, whatever follows
        parts += [rf"({_NAME})" if digits is not None else rf"(?!BATCH\s)({_NAME})"]
    else:
        parts += [re.escape(event_type)]
    done = head.end(3)
    pos = head.end()
    keys: list[str] = []
    kinds: list[str] = []
    while pos < len(line) and line[pos] != "}":
        pair = _SAMPLE_PAIR.match(line, pos)
        kind = None if pair is None else _kind(pair[2])
        if pair is None or kind is None:
            return None
        keys.append(pair[1])
        kinds.append(kind)
        parts += [re.escape(line[done : pair.start(2)]), _KINDS[kind][0]]
        done = pos = pair.end(2)
        pos = pair.end()
    if not keys or "timestamp" in keys or len(set(keys)) != len(keys) or line[pos:] != "}":
        return None
    parts += [re.escape(line[done:]), "$"]
    unit = None if digits is None else unit or ""
    literal = None if any_type else event_type
    return Shape("".join(parts), unit, tuple(keys), tuple(kinds), literal)


def _reject_constant(name: str) -> Any:  # NaN, Infinity: Python's JSON extensions
    message = f"{name} is not valid JSON"
    raise ValueError(message)


#: Strict JSON (no NaN/Infinity): JSON lines and :func:`bulk` decode with it.
JSON_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


class Decline(Exception):
    """A fast path declines a line or block: a slower path (at worst the careful parser) runs."""


def bulk(texts: list[str], names: Any) -> tuple[Any, Any, bool] | None:
    """Convert canonical ``Type { k: v, ..., k: v }`` lines at once through JSON, or None.

    Canonical: single spaces exactly so, scalar values spelt as JSON, no backslash.
    The separators `` { ``, ``, ``, ``: `` and `` }`` become JSON punctuation by plain
    replacement. One inside a string would be replaced too and cut the string: the
    JSON then fails to decode or the separator counts disagree with the decoded
    pairs, so a batch that passes reads exactly as the careful parser reads it (a
    property test checks this). Returns (types, fields dicts, any ``timestamp``?).
    """
    count = len(texts)
    text = "\n".join(texts)
    if (
        any(mark in text for mark in _NOT_BULK)
        or not text.endswith(" }")
        or text.count("{") != count
        or text.count("}") != count
        or text.count(" { ") != count
    ):
        return None
    json_text = text[:-2]
    for separator, punctuation in _TO_JSON:
        json_text = json_text.replace(separator, punctuation)
    try:
        items = JSON_DECODER.decode('["' + json_text + "}]")  # [type, fields, type, fields, ...]
        types, dicts = items[0::2], items[1::2]
        pairs = sum(map(len, dicts))
        if (
            len(items) != 2 * count
            or set(map(type, dicts)) != {dict}
            or min(map(len, dicts)) == 0
            or text.count(": ") != pairs
            or text.count(", ") != pairs - count
        ):
            return None
        keys = set().union(*dicts)
        if any(type(name) is not str or names[name] != name for name in {*types, *keys}):
            return None
    except (ValueError, TypeError, Decline):
        return None
    return types, dicts, "timestamp" in keys


def duration_ns(text: str) -> int | None:
    """Return the delay *text* (``5s``, ``100``, ``1.5m``) in ns, None if malformed."""
    digits = text.rstrip("nsumhd")
    if digits.isdigit() and digits.isascii() and text[len(digits) :] in UNITS_NS:
        return int(digits) * UNITS_NS[text[len(digits) :]]
    match = _DURATION.fullmatch(text)
    if match is None:
        return None
    whole, fraction, unit = match.groups()
    scale = UNITS_NS[unit or ""]
    return int(whole) * scale + (int(fraction) * scale // 10 ** len(fraction) if fraction else 0)


def paced(block: list[str]) -> list[int] | None:
    """Split ``@<delay> `` prefixes off *block* in place; their offsets, or None if any fails."""
    heads, _, texts = zip(*[line.partition(" ") for line in block], strict=True)
    delays = {head: duration_ns(head[1:]) if head[:1] == "@" else None for head in set(heads)}
    if None in delays.values():
        return None
    block[:] = texts
    return list(map(delays.__getitem__, heads))
