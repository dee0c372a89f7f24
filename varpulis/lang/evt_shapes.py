"""The ``.evt`` parser's fastest path: whole blocks of flat lines read by one regex.

A *shape* is the layout of a flat event line as event files repeat it: an
optional ``@<digits><unit>`` prefix, any event type, ``{``, the same field names
in the same order with values of the same kind (a ``"..."`` string without
backslash, a ``-12.5`` float, a ``-12`` int, ``true``/``false``), ``}``.
Spaces and tabs around separators may vary. :func:`learn` builds a
:class:`Shape` from a sample line; :meth:`Shape.read` runs one multiline
regex over a whole block (``findall``, in C) and accepts the block only when
every line matched, so a block is either read entirely by the shape or left
to the caller's other paths. Values are converted column by column
(``map(float, ...)``), field dicts built by one generated function per shape.
What a shape accepts reads exactly as the careful parser reads it (the
caller checks the sample against it; property tests check random blocks):
anything else (comments, ``BATCH``, escapes, ``timestamp`` fields, nesting,
other number spellings) makes the shape decline. Shapes are immutable and
may be shared; they hold no per-file state.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

__all__ = ["Shape", "learn"]

_S = 1_000_000_000
#: Delay units as the careful parser reads them (bare = ms).
UNITS_NS = {"ns": 1, "us": 1_000, "ms": 1_000_000, "": 1_000_000, "s": _S, "m": 60 * _S,
            "h": 3600 * _S, "d": 86_400 * _S}  # fmt: skip
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
_BUILDERS: dict[int, Callable[..., Callable[..., dict[str, Any]]]] = {}


def _dict_builder(keys: tuple[str, ...]) -> Callable[..., dict[str, Any]]:
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


class Shape:
    """One line layout (see the module docstring); :meth:`read` applies it to blocks."""

    __slots__ = ("converters", "make", "regex", "scale")

    def __init__(self, pattern: str, unit: str | None, keys: tuple[str, ...],
                 kinds: tuple[str, ...]) -> None:  # fmt: skip
        #: ns per unit of the ``@`` prefix; None: the shape has no prefix.
        self.scale = None if unit is None else UNITS_NS[unit]
        self.converters = tuple(_KINDS[k][1] for k in kinds)
        self.make = _dict_builder(keys)
        self.regex = re.compile(pattern, re.MULTILINE)

    def read(
        self, block: list[str], names: Any
    ) -> tuple[list[str], list[dict[str, Any]], list[int] | None] | None:
        """Read every line of *block* (no newlines), or None when some line does not fit.

        Returns the event types (through *names*, a mapping from text to the
        canonical name string), the field dicts and the ``@`` offsets in ns
        (None when the shape has no prefix).
        """
        rows = self.regex.findall("\n".join(block))
        if len(rows) != len(block) or not rows:
            return None
        columns = list(zip(*rows, strict=True))
        offsets = None
        if self.scale is not None:
            offsets = list(map(self.scale.__mul__, map(int, columns.pop(0))))
        types = list(map(names.__getitem__, columns.pop(0)))
        values = [
            column if convert is None else map(convert, column)
            for convert, column in zip(self.converters, columns, strict=True)
        ]
        return types, list(map(self.make, *values)), offsets


def learn(line: str) -> Shape | None:
    """The shape of the flat event *line* (stripped), or None when it has none.

    The shape's regex keeps the sample's text between its values literally
    (field names, separators and their spacing): event files repeat one layout,
    and literal text is what a regex matches fastest.
    """
    head = _SAMPLE_HEAD.match(line)
    if head is None:
        return None
    digits, unit, _ = head.groups()
    parts = ["^"]
    done = 0
    if digits is not None:
        parts += [r"@([0-9]+)", re.escape(line[head.end(1) : head.start(3)])]
        done = head.start(3)
    parts += [rf"({_NAME})"]
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
    return Shape("".join(parts), None if digits is None else unit or "", tuple(keys), tuple(kinds))
