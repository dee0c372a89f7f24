"""Random input never breaks the front end: only VarpulisError, and no blow-up.

The one-second hypothesis deadline is a guard against exponential
backtracking (a hang would show as seconds or minutes), not a speed target;
bench/parse.py measures speed.
"""

from __future__ import annotations

from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from varpulis.errors import VarpulisError
from varpulis.lang import parse
from varpulis.lang.validate import diagnose

TOKENS = [
    "stream", "fn", "let", "var", "const", "if", "elif", "else", "while", "for", "in", "return",
    "emit", "context", "connector", "pattern", "event", "import", "as", "where", "all", "not",
    "and", "or", "then", "SEQ", "AND", "OR", "NOT", "within", "partition", "by", "merge", "join",
    "timer", "true", "false", "null", "x", "A", "price", "a.b", "0", "42", "1.5", "5m", "10s",
    '"s"', '"a\\"b"', "(", ")", "[", "]", "{", "}", ",", ":", ":=", "=", "==", "!=", "<", "<=",
    ">", ">=", "+", "-", "*", "/", "%", "**", "..", "..=", "->", ".", ".where", ".emit", ".within",
    "?", "|", "&", "^", "~", "#c", "//c", "/*c*/", "{i}", "\n", "\n    ", "\n        ", " ", "\t",
    "'", "@", "$", "\\", ";",
]  # fmt: skip

soup = st.lists(st.sampled_from(TOKENS), max_size=200).map(" ".join)
raw = st.text(max_size=400)
FUZZ = settings(
    max_examples=300, deadline=timedelta(seconds=1), suppress_health_check=[HealthCheck.too_slow]
)


def _parse_or_error(source: str) -> None:
    try:
        program = parse(source)
    except VarpulisError:
        return
    diagnose(program)  # the validator accepts whatever the parser accepts


@FUZZ
@given(soup)
def test_token_soup(source: str) -> None:
    _parse_or_error(source)


@FUZZ
@given(raw)
def test_random_text(source: str) -> None:
    _parse_or_error(source)


@settings(max_examples=25, deadline=timedelta(seconds=1))
@given(st.integers(min_value=1, max_value=400), st.sampled_from(["(", "[", "-", "not ", "a + "]))
def test_adversarial_nesting_and_chains(depth: int, piece: str) -> None:
    closer = {"(": ")", "[": "]"}.get(piece, "")
    _parse_or_error("let x = " + piece * depth + "1" + closer * depth)


@settings(max_examples=20, deadline=timedelta(seconds=1))
@given(st.integers(min_value=1, max_value=10_000 // 40))
def test_ten_kilobytes_of_valid_program(lines: int) -> None:
    source = "".join(f"stream S{i} = A{i} .where(x > {i} and y < 2.5) .emit(v: x * 2)\n"
                     for i in range(lines))  # fmt: skip
    assert len(parse(source).decls) == lines
