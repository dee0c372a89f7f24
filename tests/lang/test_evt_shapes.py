"""The .evt parser's line shapes and block API: what they read, the careful parser reads alike."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tests.lang.test_evt import MS, S, reference, rows, typed
from varpulis.errors import EventSyntaxError
from varpulis.lang import evt, evt_shapes
from varpulis.lang.evt import iter_events, parse_evt, read_event_file

SHAPE_VALUES = st.one_of(
    st.integers(min_value=-(10**20), max_value=10**20).map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.sampled_from(["1.5", "-0.0", "007", "-0", "00.50", "+1.5", "1e3", ".5", "1.", "true"]),
    st.sampled_from(["false", "null", "nil", "bare", "inf", "1_0", "٣", "1 2"]),
    st.text(st.sampled_from([*"ab ,:{}[]()#@'", "\\", "\t", "é"]), max_size=6).map(
        lambda s: f'"{s}"'
    ),
)
SHAPE_PREFIXES = st.sampled_from(["", "", "@5ms ", "@12 ", "@3s ", "@1.5s ", "@7ms\t", "@9m "])
SHAPE_SPACES = st.sampled_from(
    [(" ", ": ", ", ", " "), ("", ":", ",", ""), ("\t", " : ", " , ", "")]
)


@st.composite
def shaped_blocks(draw: st.DrawFn) -> list[str]:
    """Blocks of lines that mostly share a layout, with some lines that break it."""
    keys = draw(st.lists(st.sampled_from(["a", "b_1", "timestamp", "x.y", "é"]), max_size=4))
    pad, colon, comma, end = draw(SHAPE_SPACES)
    pools = {k: draw(st.lists(SHAPE_VALUES, min_size=1, max_size=3)) for k in keys}
    lines = []
    for _ in range(draw(st.integers(min_value=1, max_value=6))):
        name = draw(st.sampled_from(["A", "B", "Tick.x", "1A", "BATCH"]))
        body = comma.join(f"{k}{colon}{draw(st.sampled_from(pools[k]))}" for k in keys)
        trailer = draw(st.sampled_from(["", "", ",", " ", " # c", ";"]))
        lines.append(f"{draw(SHAPE_PREFIXES)}{name}{pad}{{{pad}{body}{trailer}{end}}}")
    return lines


@settings(max_examples=800)
@given(shaped_blocks(), st.integers(min_value=0, max_value=10**12))
@example(['@5ms A { a: "x", b_1: 1.5, x.y: 3 }'] * 3, 0)
@example(['A { a: "x", b_1: 1.5 }', 'A { a: "x", b_1: 2 }'], 0)
@example(["A { a: 1 }", "A { a: 12345678901234567890 }"], 0)
@example(["A { a: 1 }", "BATCH { a: 2 }"], 0)
@example(["A { a: true }", "A { a: false }"], 0)
@example(['A { s: "x" }', 'B { s: "y" }', 'A { s: "z" }'], 0)
@example(["@1ms A { a: 1 }", "@2ms BATCH { a: 2 }", "@3ms\tA { a: 3 }"], 5)
def test_line_shapes_agree_with_the_careful_parser(lines: list[str], base: int) -> None:
    text = "\n".join(lines)
    try:
        expected: Any = rows(reference(text, base_ns=base))
    except evt._LineError as exc:
        expected = exc.args[0]
    try:
        got: Any = rows(parse_evt(text, base_ns=base))
    except EventSyntaxError as exc:
        got = exc.message
    assert got == expected
    shape = evt_shapes.learn(lines[0])
    if shape is not None and not isinstance(expected, str):
        try:  # what a shape reads, it reads as the careful parser does
            table = shape.read(lines, evt._Names(), base, 0)
        except ValueError:
            table = None  # a number Python will not convert: the careful parser decides
        if table is not None:
            got_rows = list(zip(table.offsets, table.types, map(typed, table.fields()),
                                table.timestamps, strict=True))  # fmt: skip
            assert got_rows == expected


def test_shaped_blocks_report_the_bad_line_and_keep_batch_offsets() -> None:
    lines = [f'@{i}ms Tick {{ symbol: "S{i % 3}", price: {i}.5, volume: {i} }}' for i in range(30)]
    text = "\n".join(["BATCH 2s", *[line.split(" ", 1)[1] for line in lines], *lines])
    got = parse_evt(text)
    assert rows(got) == rows(reference(text))
    assert {t.offset_ns for t in got[:30]} == {2 * S}
    assert [t.offset_ns for t in got[30:]] == [i * MS for i in range(30)]
    broken = [*lines[:20], "@20ms Tick { symbol: , price: 1.5 }", *lines[21:]]
    with pytest.raises(EventSyntaxError) as info:
        parse_evt("\n".join(broken), filename="t.evt")
    assert (info.value.line, info.value.column) == (21, 22)


def test_iter_event_blocks_yields_what_iter_events_does(tmp_path: Path) -> None:
    path = tmp_path / "e.evt"
    path.write_text("".join(f"@{i}ms T {{ v: {i} }}\n" for i in range(500)) + "# end\n")
    blocks = list(evt.iter_event_blocks(path, block_chars=256))
    assert len(blocks) > 1 and all(blocks)
    flat = [t for block in blocks for t in block]
    assert rows(flat) == rows(list(iter_events(path))) == rows(read_event_file(path))
