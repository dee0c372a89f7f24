"""Every shipped example parses and validates; parse output is stable."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from varpulis.lang import parse_file
from varpulis.lang.dump import to_data
from varpulis.lang.validate import validate

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted(ROOT.glob("examples/**/*.vpl"))


def test_corpus_is_not_empty() -> None:
    assert len(EXAMPLES) >= 14


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: str(p.relative_to(ROOT)))
def test_example_parses_and_validates(path: Path) -> None:
    program = parse_file(path)
    assert program.decls
    validate(program)
    json.dumps(to_data(program, spans=True))  # the AST is JSON-serialisable


def test_worker_files_cover_their_row() -> None:
    for row in range(4):
        program = parse_file(ROOT / f"examples/mandelbrot/distributed/mandelbrot_worker_{row}.vpl")
        streams = {d.name: d for d in program.decls if type(d).__name__ == "StreamDecl"}
        assert sorted(streams) == [f"Tile{row}{col}" for col in range(4)]
        for col in range(4):
            stream = streams[f"Tile{row}{col}"]
            assert stream.source.name == f"ComputeTile{row}{col}"
            call = stream.ops[1].args[0]
            assert call.func == "compute_tile"
            assert [a.value for a in call.args] == [col * 250, row * 250, 250, 256]


def test_server_program_has_sixteen_contexts_and_tiles() -> None:
    program = parse_file(ROOT / "examples/mandelbrot/mandelbrot_server.vpl")
    kinds = [type(d).__name__ for d in program.decls]
    assert kinds.count("ContextDecl") == 16 and kinds.count("StreamDecl") == 16


def test_imports_are_spliced(tmp_path: Path) -> None:
    (tmp_path / "lib.vpl").write_text("fn double(x: int) -> int:\n    return x * 2\n")
    (tmp_path / "main.vpl").write_text('import "lib.vpl"\nstream S = A .emit(v: double(x))\n')
    program = parse_file(tmp_path / "main.vpl")
    assert [type(d).__name__ for d in program.decls] == ["FnDecl", "StreamDecl"]
    validate(program)


def test_import_cycle_and_missing_file(tmp_path: Path) -> None:
    from varpulis.errors import VPLSyntaxError

    (tmp_path / "a.vpl").write_text('import "b.vpl"\n')
    (tmp_path / "b.vpl").write_text('import "a.vpl"\n')
    with pytest.raises(VPLSyntaxError, match="import cycle"):
        parse_file(tmp_path / "a.vpl")
    (tmp_path / "c.vpl").write_text('import "missing.vpl"\n')
    with pytest.raises(VPLSyntaxError, match="not found"):
        parse_file(tmp_path / "c.vpl")


def test_diamond_import_includes_once(tmp_path: Path) -> None:
    (tmp_path / "lib.vpl").write_text("fn one() -> int:\n    return 1\n")
    (tmp_path / "x.vpl").write_text('import "lib.vpl"\nstream X = A .emit(v: one())\n')
    (tmp_path / "y.vpl").write_text('import "lib.vpl"\nstream Y = B .emit(v: one())\n')
    (tmp_path / "main.vpl").write_text('import "x.vpl"\nimport "y.vpl"\n')
    program = parse_file(tmp_path / "main.vpl")
    assert [getattr(d, "name", None) for d in program.decls] == ["one", "X", "Y"]
    validate(program)
