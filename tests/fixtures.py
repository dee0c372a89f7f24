"""Shared test data: VPL text taken from the shipped examples, never copied."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def example_functions(path: str = "examples/mandelbrot/distributed/mandelbrot_worker_0.vpl") -> str:
    """The ``fn`` declarations of an example program (from the first ``fn`` to the first stream)."""
    text = (ROOT / path).read_text(encoding="utf-8")
    return text[text.index("fn ") : text.index("\nstream ")] + "\n"


#: ``fn mandelbrot(cx, cy, max_iter)`` and ``fn compute_tile(x_off, y_off, size, max_iter)``.
MANDELBROT_FNS = example_functions()
