"""The Mandelbrot example's helpers: the PNG renderer and the A/B bench's program rewriting."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest

from varpulis.lang import parse
from varpulis.lang.validate import validate

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "mandelbrot"


def _load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(path.stem + "_example", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_render_writes_a_png_of_the_image(tmp_path: Path) -> None:
    pytest.importorskip("PIL")
    from PIL import Image

    render = _load(EXAMPLES / "render.py")
    pixels = [(x, y, (x * 7 + y) % 257) for x in range(20) for y in range(10)]
    image = render.image_array(pixels, size=20)
    assert image[3, 5] == (5 * 7 + 3) % 257 and image[15, 0] == -1  # row y, column x
    out = render.save_png(image, tmp_path / "m.png")
    with Image.open(out) as png:
        assert png.format == "PNG" and png.size == (20, 20)
        assert png.getpixel((0, 15)) == (40, 40, 40)  # no pixel arrived there
        assert png.getpixel((0, 0)) != png.getpixel((19, 0))


def test_render_reads_objects_and_arrays(tmp_path: Path) -> None:
    render = _load(EXAMPLES / "render.py")
    path = tmp_path / "p.jsonl"
    lines = [
        '{"x": 1, "y": 2, "iterations": 3}',
        "",
        '[{"x": 0, "y": 0, "iterations": 256}, {"x": 2, "y": 1, "iterations": 9}]',
    ]
    path.write_text("\n".join(lines) + "\n")
    assert list(render.read_pixels(path)) == [(1, 2, 3), (0, 0, 256), (2, 1, 9)]


def test_bench_programs_cover_every_tile_once_and_are_valid() -> None:
    bench = _load(EXAMPLES / "distributed" / "bench.py")
    source = (EXAMPLES / "mandelbrot_server.vpl").read_text()
    programs = bench.balanced_programs(source)
    tiles = [t for _, types in programs for t in types]
    assert sorted(tiles) == sorted(f"ComputeTile{r}{c}" for r in range(4) for c in range(4))
    for text, types in programs:
        program = bench.for_broker(text, "127.0.0.1", 1999, 500)
        assert 'host: "127.0.0.1", port: 1999, batch_size: 500' in program
        validate(parse(program))
        assert sorted(re.findall(r"= (ComputeTile\d\d)", program)) == sorted(types)


def test_rewritten_example_files_stay_valid() -> None:
    bench = _load(EXAMPLES / "distributed" / "bench.py")
    for path in [EXAMPLES / "mandelbrot_server.vpl", *sorted(EXAMPLES.glob("distributed/*.vpl"))]:
        program = bench.for_broker(path.read_text(), "10.0.0.1", 1884, 1000)
        assert "port: 1884" in program and "localhost" not in program
        validate(parse(program))
