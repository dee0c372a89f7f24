"""Speed of compiled VPL functions (a script; never run as a test).

Times the compiled ``mandelbrot`` of vpl-spec T1-8 over one 100×100 tile at
max_iter 256 against a hand-written Python function of the same loop (the
same-run baseline) and prints both, their ratio (target ≤ 1.3) and the
checksum. Then the same for the whole ``compute_tile`` (which also builds the
10,000 ``Pixel`` events) against a hand-written loop that builds the same
events. The work is timed in chunks (tile columns; 10×10 sub-tiles), the two
sides alternately, and each chunk's best time is kept.

    python bench/functions.py [--x 250] [--y 450] [--size 100] [--max-iter 256] [--repeat 7]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

from varpulis.compiler.evalctx import EvalContext
from varpulis.compiler.functions import compile_toplevel
from varpulis.compiler.scope import Scope
from varpulis.events import Event
from varpulis.lang import parse

PROGRAM = """
fn mandelbrot(cx: float, cy: float, max_iter: int) -> int:
    var zr = 0.0
    var zi = 0.0
    var i = 0
    while i < max_iter:
        let r2 = zr * zr
        let i2 = zi * zi
        if r2 + i2 > 4.0:
            return i
        zi := 2.0 * zr * zi + cy
        zr := r2 - i2 + cx
        i := i + 1
    return max_iter

fn compute_tile(x_off: int, y_off: int, size: int, max_iter: int):
    for px in 0..size:
        for py in 0..size:
            let cx = -2.0 + (x_off + px) * 3.0 / 1000.0
            let cy = -1.5 + (y_off + py) * 3.0 / 1000.0
            let iters = mandelbrot(cx, cy, max_iter)
            emit Pixel(x: x_off + px, y: y_off + py, iterations: iters, diverged: iters < max_iter)
"""


def mandelbrot_py(cx: float, cy: float, max_iter: int) -> int:
    """The hand-written baseline: the same loop in plain Python."""
    zr = 0.0
    zi = 0.0
    i = 0
    while i < max_iter:
        r2 = zr * zr
        i2 = zi * zi
        if r2 + i2 > 4.0:
            return i
        zi = 2.0 * zr * zi + cy
        zr = r2 - i2 + cx
        i = i + 1
    return max_iter


def compute_tile_py(x_off: int, y_off: int, size: int, max_iter: int, out: list) -> None:
    """The hand-written baseline of ``compute_tile``: same pixels, same events."""
    for px in range(size):
        for py in range(size):
            cx = -2.0 + (x_off + px) * 3.0 / 1000.0
            cy = -1.5 + (y_off + py) * 3.0 / 1000.0
            iters = mandelbrot_py(cx, cy, max_iter)
            fields = {"x": x_off + px, "y": y_off + py, "iterations": iters}
            fields["diverged"] = iters < max_iter
            out.append(Event("Pixel", fields, 0))


def timed(run: Callable[[], Any]) -> tuple[float, Any]:
    """Seconds one call of *run* takes, and its result."""
    start = time.perf_counter()
    result = run()
    return time.perf_counter() - start, result


def compare(
    vpl: list[Callable[[], Any]], py: list[Callable[[], Any]], repeat: int
) -> tuple[float, float, list, list]:
    """Time matching chunks of work alternately, keep each chunk's best time.

    Summing per-chunk minima over interleaved runs filters out the spikes a
    loaded machine adds, which whole-run timings of either side would keep.
    Returns the two totals and the chunks' results.
    """
    best_vpl, best_py = [float("inf")] * len(vpl), [float("inf")] * len(py)
    out_vpl: list = [None] * len(vpl)
    out_py: list = [None] * len(py)
    for _ in range(repeat):
        for k in range(len(vpl)):
            t, out_vpl[k] = timed(vpl[k])
            best_vpl[k] = min(best_vpl[k], t)
            t, out_py[k] = timed(py[k])
            best_py[k] = min(best_py[k], t)
    return sum(best_vpl), sum(best_py), out_vpl, out_py


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--x", type=int, default=250, help="tile x offset (pixels of 1000)")
    parser.add_argument("--y", type=int, default=450, help="tile y offset (pixels of 1000)")
    parser.add_argument("--size", type=int, default=100, help="tile side, a multiple of 10")
    parser.add_argument("--max-iter", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()

    program = parse(PROGRAM)
    functions = compile_toplevel(program.decls, Scope(source=PROGRAM))
    mandelbrot, compute_tile = functions["mandelbrot"], functions["compute_tile"]
    ctx, fields, max_iter = EvalContext(Event("ComputeTile", {}, 0)), {}, args.max_iter
    columns = [
        [(-2.0 + (args.x + px) * 3.0 / 1000.0, -1.5 + (args.y + py) * 3.0 / 1000.0)
         for py in range(args.size)]
        for px in range(args.size)
    ]  # fmt: skip

    def vpl_column(points: list) -> Callable[[], int]:
        return lambda: sum([mandelbrot(ctx, fields, cx, cy, max_iter) for cx, cy in points])

    def py_column(points: list) -> Callable[[], int]:
        return lambda: sum([mandelbrot_py(cx, cy, max_iter) for cx, cy in points])

    def vpl_tile(x: int, y: int) -> Callable[[], list]:
        def run() -> list:
            ctx.emitted = []
            compute_tile(ctx, fields, x, y, 10, max_iter)
            return ctx.emitted

        return run

    def py_tile(x: int, y: int) -> Callable[[], list]:
        def run() -> list:
            out: list = []
            compute_tile_py(x, y, 10, max_iter, out)
            return out

        return run

    corners = [
        (args.x + i, args.y + j) for i in range(0, args.size, 10) for j in range(0, args.size, 10)
    ]
    print(f"{args.size}x{args.size} tile at ({args.x}, {args.y}), max_iter {max_iter}")
    cases = {
        "mandelbrot": ([vpl_column(c) for c in columns], [py_column(c) for c in columns]),
        "compute_tile": ([vpl_tile(*c) for c in corners], [py_tile(*c) for c in corners]),
    }
    for label, (vpl, py) in cases.items():
        t_vpl, t_py, out_vpl, out_py = compare(vpl, py, args.repeat)
        print(
            f"  {label:<13} compiled VPL {t_vpl * 1e3:8.2f} ms   hand-written Python "
            f"{t_py * 1e3:8.2f} ms   ratio {t_vpl / t_py:.3f}   results equal: {out_vpl == out_py}"
        )
        if label == "mandelbrot":
            print(f"  {'':<13} sum of iterations {sum(out_vpl):,}")


if __name__ == "__main__":
    main()
