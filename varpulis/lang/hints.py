"""Hints for common VPL mistakes, and did-you-mean suggestions.

Pure functions over the source text around an error: they never raise and
return None when nothing is recognised.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable

__all__ = ["did_you_mean", "syntax_hint"]

_BLOCK_START = re.compile(r"\s*(fn|if|elif|else|while|for|event)\b")
_RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"&&"), "use 'and' instead of '&&'"),
    (re.compile(r"\|\|"), "use 'or' instead of '||'"),
    (re.compile(r"!(?!=)"), "use 'not' instead of '!'"),
    (re.compile(r"'"), "strings use double quotes: \"text\""),
    (re.compile(r"\belse\s+if\b"), "use 'elif' instead of 'else if'"),
    (re.compile(r"\b\d+(?:min|sec|secs|mins|hr|hrs|hours?|days?|millis)\b"),
     "durations use the units ns, us, ms, s, m, h, d (for example 5m or 10s)"),
    (re.compile(r"\?\?"), "'??' is not VPL: use coalesce(a, b)"),
    (re.compile(r"\{[A-Za-z_][A-Za-z0-9_]*\}"),
     "'{name}' placeholders only work inside a top-level 'for name in a..b:' loop"),
)  # fmt: skip


def syntax_hint(line_text: str, column: int) -> str | None:
    """Return a hint for a syntax error at 1-based *column* of *line_text*."""
    before, at = line_text[: column - 1], line_text[column - 1 :]
    if at.startswith("=") and not at.startswith("=="):
        if re.search(r"\b(let|var|const)\s+\w+\s*(:\s*\S+\s*)?$", before) is None:
            return "use '==' to compare; '=' only appears in let/var/const declarations"
    for pattern, hint in _RULES:
        if pattern.search(line_text):
            return hint
    code = re.sub(r'"(?:[^"\\]|\\.)*"', '""', line_text)
    if "//" in code.lstrip()[2:] or re.search(r"\S\s*//", code):
        return "'//' starts a comment: the rest of the line was ignored"
    if _BLOCK_START.match(line_text) and not line_text.rstrip().endswith(":"):
        return "a block header ends with ':' and its body is indented on the next lines"
    return None


def did_you_mean(word: str, choices: Iterable[str], cutoff: float = 0.6) -> str | None:
    """Return ``"did you mean 'x'?"`` for the closest of *choices*, or None."""
    close = difflib.get_close_matches(word, sorted(set(choices)), n=1, cutoff=cutoff)
    return f"did you mean {close[0]!r}?" if close else None
