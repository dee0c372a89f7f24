"""Cut VPL source text into logical lines, and expand ``{var}`` placeholders.

A *logical line* is one statement, declaration or block header: a physical
line plus every line that continues it. A line continues the previous one when
a bracket is still open, or when it starts with ``.`` (a chained stream
operation), ``->`` (a sequence step) or ``within``/``partition`` (a named
pattern's clauses). Logical lines keep their offsets into the original text,
so every position reported later is exact; nothing is rewritten.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from varpulis.errors import VPLSyntaxError

__all__ = ["MAX_NESTING", "LogicalLine", "blank_comments", "map_back", "split_lines", "substitute"]

#: Deepest bracket nesting accepted (deeper input is rejected before parsing).
MAX_NESTING = 32

_SCAN = re.compile(
    r'"(?:[^"\\\n]|\\.)*"?'  # a string (possibly unterminated)
    r"|#[^\n]*|//[^\n]*"  # line comments
    r"|/\*[\s\S]*?(?:\*/|\Z)"  # block comment
    r"|[()\[\]{}]|\n"
)
_SKIP = re.compile(r"(?:\s+|#[^\n]*|//[^\n]*|/\*[\s\S]*?\*/)*")
_CONTINUES = re.compile(r"\.(?!\.)|->|(?:within|partition)\b")
_STRING = re.compile(r'"(?:[^"\\\n]|\\.)*"')
_CLOSERS = {")": "(", "]": "[", "}": "{"}
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True, slots=True)
class LogicalLine:
    """Offsets ``[start, end)`` of one logical line and its indentation (columns)."""

    start: int
    end: int
    indent: int


def _error(source: str, offset: int, message: str, hint: str | None = None) -> VPLSyntaxError:
    return VPLSyntaxError(message, source=source, offset=offset, hint=hint)


def _breaks(source: str) -> list[int]:
    """Offsets of the newlines that end a physical line outside any bracket."""
    stack: list[tuple[str, int]] = []
    breaks = []
    for m in _SCAN.finditer(source):
        tok = m.group()
        first = tok[0]
        if first == "\n":
            if not stack:
                breaks.append(m.start())
        elif first in "([{":
            stack.append((first, m.start()))
            if len(stack) > MAX_NESTING:
                msg = f"brackets nested deeper than {MAX_NESTING} levels"
                raise _error(source, m.start(), msg)
        elif first in ")]}":
            if not stack or stack[-1][0] != _CLOSERS[first]:
                msg = f"unmatched {first!r}"
                raise _error(source, m.start(), msg)
            stack.pop()
        elif first == '"' and not _STRING.fullmatch(tok):
            raise _error(source, m.start(), "unterminated string", "close it on this line")
        elif tok.startswith("/*") and not tok.endswith("*/"):
            raise _error(source, m.start(), "unterminated /* comment")
    if stack:
        opener, offset = stack[-1]
        closer = {v: k for k, v in _CLOSERS.items()}[opener]
        msg = f"{opener!r} is never closed"
        hint = f"add the matching {closer!r}"
        if "//" in source[offset:]:
            hint += "; note that '//' starts a comment, which hides the rest of its line"
        raise _error(source, offset, msg, hint)
    breaks.append(len(source))
    return breaks


def blank_comments(source: str) -> str:
    """Return *source* with every comment replaced by spaces (newlines kept).

    Offsets are unchanged, so the grammar can run on the result without
    checking for comments between every pair of tokens.
    """
    if "#" not in source and "/" not in source:
        return source
    return _SCAN.sub(_blank, source)


def _blank(m: re.Match[str]) -> str:
    tok = m.group()
    if tok[0] == "#" or tok.startswith(("//", "/*")):
        return re.sub(r"[^\n]", " ", tok)
    return tok


def split_lines(source: str) -> list[LogicalLine]:
    """Cut *source* into logical lines; raise VPLSyntaxError for bad brackets/strings."""
    lines: list[LogicalLine] = []
    begin = 0
    for brk in _breaks(source):
        first = _SKIP.match(source, begin, brk).end()
        if first < brk:
            indent = first - (source.rfind("\n", 0, first) + 1)
            if lines and _CONTINUES.match(source, first):
                lines[-1] = LogicalLine(lines[-1].start, brk, lines[-1].indent)
            else:
                lines.append(LogicalLine(first, brk, indent))
        begin = brk + 1
    return lines


def substitute(text: str, env: Mapping[str, int]) -> tuple[str, list[tuple[int, int]]]:
    """Replace ``{var}`` placeholders of *env* in *text*.

    Returns the new text and breakpoints ``(new_offset, old_offset)`` that map
    positions in the new text back to the old one (see :func:`map_back`).
    """
    out: list[str] = []
    points = [(0, 0)]
    last = 0
    size = 0
    for m in _PLACEHOLDER.finditer(text):
        name = m.group(1)
        if name not in env:
            continue
        out.append(text[last : m.start()])
        size += m.start() - last
        value = str(env[name])
        points.append((size, m.start()))
        out.append(value)
        size += len(value)
        last = m.end()
        points.append((size, last))
    out.append(text[last:])
    return "".join(out), points


def map_back(points: list[tuple[int, int]], offset: int) -> int:
    """Map an *offset* in substituted text to the original text."""
    best = points[0]
    for point in points:
        if point[0] > offset:
            break
        best = point
    return best[1] + (offset - best[0])
