"""Syntax errors: exact line, column, message and hint."""

from __future__ import annotations

import pytest

from varpulis.errors import VarpulisError, VPLSyntaxError
from varpulis.lang import parse


def error_of(source: str) -> VPLSyntaxError:
    with pytest.raises(VPLSyntaxError) as info:
        parse(source)
    return info.value


@pytest.mark.parametrize(
    ("source", "line", "column", "message", "hint"),
    [
        ("stream S = A .where(a && b)", 1, 24, "", "use 'and' instead of '&&'"),
        ("stream S = A .where(a || b)", 1, 24, "", "use 'or' instead of '||'"),
        ("stream S = A .where(x = 1)", 1, 23, "", "use '==' to compare"),
        ("stream S = A .emit(s: 'x')", 1, 23, "", "strings use double quotes"),
        ("let a = 1 < 2 < 3", 1, 15, "'<' cannot follow '<'", "comparisons do not chain"),
        ("stream S = A .window(5min)", 1, 22, "", "durations use the units"),
        ("stream S = A .where(x // 2 > 1)", 1, 20, "never closed", None),
        ("let y = (x // 2)", 1, 9, "never closed", "'//' starts a comment"),
        ("fn f(x: int) -> int\n    return x", 1, 20, "Expected ':'", None),
        ("fn f():\n    if x > 1\n        return 1", 2, 13, "Expected ':'",
         "block header ends with"),
        ("fn f():\n    if x:\n        return 1\n    else if y:\n        return 2", 4, 10, "",
         "use 'elif'"),
        ("context t{i}", 1, 10, "", "placeholders only work inside a top-level 'for"),
        ("stream S = A\n    .where(x > 1\n    .emit(y: 1)", 2, 11, "'(' is never closed",
         "add the matching ')'"),
        ("stream S = A .emit(s: \"abc)", 1, 23, "unterminated string", None),
        ("\n\nstream S = A .where(x >)", 3, 24, "Expected expression", None),
        ("fn f():\n    return 1\n        return 2", 3, 9, "unexpected indentation", None),
        ("fn f():\nreturn 1", 1, 1, "expected an indented block after 'fn'", None),
        ("elif x:\n    y", 1, 1, "'elif' without a matching 'if'", None),
        ("return 1", 1, 1, "'return' is only allowed inside a fn body", None),
        ("fn f():\n    stream S = A", 2, 5, "only allowed at the top level", None),
        ("for i in 0..n:\n    context c{i}", 1, 1, "integer literal bounds", None),
        ("let x = 99999999999999999999", 1, 9, "out of range", None),
        ("stream S = A )", 1, 14, "unmatched ')'", None),
    ],
)  # fmt: skip
def test_error_position_message_and_hint(
    source: str, line: int, column: int, message: str, hint: str | None
) -> None:
    err = error_of(source)
    assert (err.line, err.column) == (line, column), err.render()
    assert message in err.message
    if hint is not None:
        assert err.hint is not None and hint in err.hint, err.render()


def test_render_has_caret_under_column() -> None:
    err = error_of("stream S = A\n    .where(price >= )\n")
    rendered = err.render().splitlines()
    assert rendered[0] == "syntax error: line 2, column 21: Expected expression, found ')'"
    assert rendered[1] == "   2 |     .where(price >= )"
    assert rendered[2] == "     |                     ^"


def test_json_body_carries_position() -> None:
    body = error_of("stream S = A .where(x >)").to_json()
    assert body["code"] == "invalid_program"
    assert (body["line"], body["column"]) == (1, 24)
    assert "^" in body["snippet"] and body["message"]


def test_filename_in_message() -> None:
    with pytest.raises(VPLSyntaxError) as info:
        parse("let = 1", filename="prog.vpl")
    assert str(info.value).startswith("prog.vpl:line 1, column 5:")


def test_errors_are_varpulis_errors() -> None:
    assert issubclass(VPLSyntaxError, VarpulisError)
    assert VPLSyntaxError.http_status == 400


def test_position_inside_expanded_loop_maps_to_original_text() -> None:
    source = "for r in 0..2:\n    stream Tile{r} = C{r} .where(x >)\n"
    err = error_of(source)
    assert (err.line, err.column) == (2, 37)


def test_nesting_limit() -> None:
    err = error_of("let x = " + "(" * 40 + "1" + ")" * 40)
    assert "nested deeper" in err.message
