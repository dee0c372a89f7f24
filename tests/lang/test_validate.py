"""Validator: every check, with position and hint."""

from __future__ import annotations

import pytest

from varpulis.errors import VPLSemanticError
from varpulis.lang import parse
from varpulis.lang.validate import diagnose, validate

HEADER = 'connector Out = mqtt(host: "localhost")\ncontext c1\n'


def errors(source: str) -> list[str]:
    return [d.message for d in diagnose(parse(source)) if d.severity == "error"]


@pytest.mark.parametrize(
    ("source", "message", "hint"),
    [
        ("stream S = A .emit(v: 1)\nstream S = B .emit(v: 2)", "duplicate stream 'S'", None),
        ("fn f():\n    return 1\nfn f():\n    return 2", "duplicate fn 'f'", None),
        ("context c\ncontext c", "duplicate context 'c'", None),
        ('connector X = mqtt()\nconnector X = file()', "duplicate connector 'X'", None),
        ("event E:\n    a: int\nevent E:\n    b: int", "duplicate event 'E'", None),
        ("pattern P = SEQ(A, B)\npattern P = SEQ(A, C)", "duplicate pattern 'P'", None),
        ("pattern P = SEQ(A, B)\nstream P = A .emit(v: 1)", "both a stream and a pattern", None),
        ("stream S = A .emit(v: lenn(x))", "unknown function 'lenn'", "did you mean 'len'?"),
        ("stream S = A .emit(v: len(x, y))", "len() takes 1 argument(s), 2 given", None),
        ("stream S = A .emit(v: substring(x))", "substring() takes 2 to 3 argument(s)", None),
        ("stream S = A .emit(v: upper(s: x))", "takes no keyword arguments", None),
        ("fn f(a: int):\n    return a\nstream S = A .emit(v: f(1, 2))",
         "fn 'f' takes 1 argument(s), 2 given", None),
        ("fn f(a: int):\n    return a\nstream S = A .emit(v: f(b: 1))",
         "fn 'f' has no parameter 'b'", "its parameters are a"),
        ("fn f(a: int, a: int):\n    return a", "two parameters named 'a'", None),
        ("fn f():\n    return g(1)", "unknown function 'g'", None),
        ("stream S = A .whre(x > 1)", "unknown operation .whre()", "did you mean 'where'?"),
        ("stream S = A .filter(x > 1)", "unknown operation .filter()", "use .where(...)"),
        ("stream S = A .where(x > 1, y)", ".where() takes 1 positional argument(s), 2 given", None),
        ("stream S = A .window(5m, slide: 1m)", ".window() has no parameter 'slide'", None),
        ("stream S = A .having(n > 1)", ".having() must follow .aggregate(...)", None),
        ("stream S = A .window(3) .window(4)", "second .window()", None),
        ("stream S = A .window(3) .aggregate(n: count()) .aggregate(m: count())",
         "second .aggregate()", None),
        ("stream S = A .within(5s)", ".within(...) only applies to a sequence", None),
        ("stream S = A .not(B)", ".not(...) only applies to a sequence", None),
        ("stream S = A .where(1)", ".where() needs a condition, not 1", None),
        (HEADER + "stream S = A .to(Outt)", "unknown connector 'Outt'", "did you mean 'Out'?"),
        (HEADER + "stream S = A .from(Nope)", "unknown connector 'Nope'", "declare it"),
        (HEADER + "stream S = A .context(c2)", "unknown context 'c2'", "declare it: context c2"),
        (HEADER + "stream S = A .emit(context: c9, v: 1)", "unknown context 'c9'", None),
        ("stream S = A .window(3) .aggregate(n: cnt())", "unknown aggregate function 'cnt'",
         "did you mean 'count'?"),
        ("stream S = A .window(3) .aggregate(n: x)", "an aggregate item must be a function", None),
        ("stream S = A .window(3) .aggregate()", "needs at least one alias", None),
        ("stream S = A as a -> B as a .emit(v: 1)", "alias 'a' is used twice", None),
        ("let x = 1\nx := 2", "cannot assign to let 'x'", "declare it with 'var x"),
        ("y := 2", "assignment to undeclared variable 'y'", None),
        ("stream S = A .log(lvl: \"info\")", ".log() has no parameter 'lvl'", None),
    ],
)  # fmt: skip
def test_errors(source: str, message: str, hint: str | None) -> None:
    found = [d for d in diagnose(parse(source)) if d.severity == "error"]
    assert any(message in d.message for d in found), [d.message for d in found]
    if hint:
        assert any(message in d.message and hint in (d.hint or "") for d in found)


@pytest.mark.parametrize(
    "source",
    [
        HEADER + "stream S = A .context(c1) .where(x > 1) .emit(context: c1, v: x) .to(Out)",
        "var n = 0\nn := n + 1\nconst K = 2\nlet t = K * 3",
        "stream S = A .window(3) .aggregate(n: count(), d: count(distinct(k)), r: max(v) - min(v),"
        " half: avg(v) * 0.5, e: ema(v, 12)) .having(n > 1) .emit(n: n)",
        "stream S = A as a -> all B where v > a.v as b .within(5m) .not(C) .emit(n: len(b))",
        "pattern P = SEQ(A as a, B+ as b) within 1m\nstream S = P .within(5s) .emit(x: a.x)",
        "fn f(a: int, b: int) -> int:\n    return a + b\nstream S = A .emit(v: f(b: 1, a: 2))",
        "fn len(x: int) -> int:\n    return 1\nstream S = A .emit(v: len(1))",
    ],
)
def test_valid_programs(source: str) -> None:
    assert errors(source) == []


def test_validate_raises_first_error_with_position() -> None:
    source = "stream S = A\n    .emit(v: lenn(x))\n    .whre(y)\n"
    with pytest.raises(VPLSemanticError) as info:
        validate(parse(source))
    err = info.value
    assert (err.line, err.column) == (2, 14)
    assert err.hint == "did you mean 'len'?"
    assert err.to_json()["code"] == "invalid_program"


def test_diagnostics_are_in_source_order() -> None:
    found = diagnose(parse("stream S = A .whre(x)\nstream T = B .emit(v: nope(1))"))
    assert [d.offset for d in found] == sorted(d.offset for d in found)
    assert len(found) == 2


def test_warning_for_a_misspelt_source() -> None:
    found = diagnose(parse("stream Hot = Reading .where(t > 1)\nstream Alert = Hott .emit(v: 1)"))
    (warning,) = found
    assert warning.severity == "warning"
    assert warning.message == "'Hott' is not a declared event type, stream or pattern"
    assert warning.hint == "did you mean 'Hot'?"
    assert validate(parse("stream A = Reading .emit(v: 1)")) == []  # undeclared types are fine


def test_declared_events_make_unknown_sources_warnings() -> None:
    source = "event Reading:\n    t: float\nstream S = Raeding .emit(v: 1)"
    (warning,) = validate(parse(source))
    assert "'Raeding'" in warning.message and warning.hint == "did you mean 'Reading'?"
