"""Mandelbrot through VPL kernels vs hand-written numpy vs plain Python (a script; never a test).

(a) The full 1000×1000 image at max_iter 256 as the 16 tiles of
``examples/mandelbrot/mandelbrot_server.vpl``: each ``ComputeTileRC`` event runs
``.process(compute_tile(...))`` in one inline :class:`Engine` (the MQTT sink
replaced by a counting sink that takes columnar batches), against a hand-written
numpy implementation of the whole image (shrinking active set, compacted when
fewer than 85 % of the pixels are still running) and plain Python (the
``mandelbrot`` function of the example, on a strided subset of the pixels and
extrapolated: it takes minutes in full). All in the same run, ``--repeat`` times;
medians are printed, with the Σ iterations (must be 47,554,279) and the diverged
pixels (830,733). Target: VPL ≤ 2.0× numpy. (b) If ``bench/kernels_filter.py``
exists (the batch-filter benchmark), its ``main()`` runs afterwards.

    python bench/kernels.py [--repeat 3] [--python-stride 10]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

# Run as a script, bench/ would shadow the ``kernels`` and ``transports`` packages.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]
sys.path.insert(0, os.path.dirname(_HERE))

import numpy as np  # noqa: E402

from varpulis.connectors.base import Sink  # noqa: E402
from varpulis.events import Event  # noqa: E402
from varpulis.runtime.engine import Engine  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SIZE, MAX_ITER = 1000, 256
CHECKSUM, DIVERGED = 47_554_279, 830_733


class CountingSink(Sink):
    """Counts rows; takes columnar batches as they are (no per-row work)."""

    def send(self, events: list[Event]) -> None:
        self.sent += len(events)

    def send_batch(self, batch: object) -> None:
        self.sent += len(batch)  # type: ignore[arg-type]


def vpl(engine: Engine) -> tuple[int, int, int]:
    """The 16 tiles through the engine: (pixels, Σ iterations, diverged)."""
    pixels = total = diverged = 0
    for r in range(4):
        for c in range(4):
            for chunk in engine.process_chunks(Event(f"ComputeTile{r}{c}", {})):
                its = chunk.columns["iterations"]
                pixels += len(its)
                total += int(its.sum())
                diverged += int(chunk.columns["diverged"].sum())
    return pixels, total, diverged


def hand_numpy(size: int = SIZE, max_iter: int = MAX_ITER, keep: float = 0.85) -> np.ndarray:
    """Iterations per pixel (px-major), the textbook numpy way with lazy compaction."""
    px, py = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
    cx = -2.0 + px.ravel() * 3.0 / 1000.0
    cy = -1.5 + py.ravel() * 3.0 / 1000.0
    out = np.full(cx.size, max_iter, np.int64)
    idx = np.arange(cx.size)
    zr, zi = np.zeros(cx.size), np.zeros(cx.size)
    alive = np.ones(cx.size, np.bool_)
    with np.errstate(all="ignore"):
        for i in range(max_iter):
            r2, i2 = zr * zr, zi * zi
            gone = (r2 + i2 > 4.0) & alive
            if gone.any():
                out[idx[gone]] = i
                alive &= ~gone
                left = int(np.count_nonzero(alive))
                if left == 0:
                    break
                if left < keep * len(alive):
                    idx, zr, zi, r2, i2 = idx[alive], zr[alive], zi[alive], r2[alive], i2[alive]
                    cx, cy = cx[alive], cy[alive]
                    alive = np.ones(len(idx), np.bool_)
            zi = 2.0 * zr * zi + cy
            zr = r2 - i2 + cx
    return out


def mandelbrot_py(cx: float, cy: float, max_iter: int) -> int:
    """The example's ``fn mandelbrot`` in plain Python (same float operations)."""
    zr = zi = 0.0
    for i in range(max_iter):
        r2, i2 = zr * zr, zi * zi
        if r2 + i2 > 4.0:
            return i
        zi = 2.0 * zr * zi + cy
        zr = r2 - i2 + cx
    return max_iter


def plain_python(stride: int) -> tuple[float, int]:
    """Seconds and Σ iterations over every *stride*-th pixel in x and y."""
    started = time.perf_counter()
    total = 0
    for px in range(0, SIZE, stride):
        cx = -2.0 + px * 3.0 / 1000.0
        for py in range(0, SIZE, stride):
            total += mandelbrot_py(cx, -1.5 + py * 3.0 / 1000.0, MAX_ITER)
    return time.perf_counter() - started, total


def timed(fn: object, *args: object) -> tuple[float, float, object]:
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn(*args)  # type: ignore[operator]
    return time.perf_counter() - wall, time.process_time() - cpu, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--python-stride", type=int, default=10)
    args = parser.parse_args()
    src = (ROOT / "examples/mandelbrot/mandelbrot_server.vpl").read_text(encoding="utf-8")
    engine = Engine(src, sinks=CountingSink)
    vpl_wall, vpl_cpu, np_wall, np_cpu = [], [], [], []
    for _ in range(args.repeat):
        wall, cpu, result = timed(vpl, engine)
        assert result == (SIZE * SIZE, CHECKSUM, DIVERGED), f"VPL checksum {result}"
        vpl_wall.append(wall)
        vpl_cpu.append(cpu)
        wall, cpu, its = timed(hand_numpy)
        assert int(its.sum()) == CHECKSUM and int((its < MAX_ITER).sum()) == DIVERGED  # type: ignore[union-attr]
        np_wall.append(wall)
        np_cpu.append(cpu)
    stride = args.python_stride
    py_seconds, py_total = plain_python(stride)
    sinks = sum(s.sent for s in engine._sinks.values())
    metrics = engine.metrics()
    med = statistics.median
    print(f"Mandelbrot {SIZE}x{SIZE}, max_iter {MAX_ITER}: Σ iterations {CHECKSUM:,}, "
          f"diverged pixels {DIVERGED:,} (VPL and numpy, every run)")  # fmt: skip
    print(f"  {'':34} {'wall s':>8} {'cpu s':>8}   (median of {args.repeat})")
    print(f"  {'VPL, 16 tiles, inline Engine':34} {med(vpl_wall):8.3f} {med(vpl_cpu):8.3f}")
    print(f"  {'hand-written numpy, whole image':34} {med(np_wall):8.3f} {med(np_cpu):8.3f}")
    full = py_seconds * stride * stride
    print(f"  {'plain Python (extrapolated)':34} {full:8.1f}          "
          f"measured {py_seconds:.2f} s on every {stride}th pixel in x and y "
          f"({(SIZE // stride) ** 2:,} px, Σ {py_total:,}) × {stride * stride}")  # fmt: skip
    ratio, ratio_cpu = med(vpl_wall) / med(np_wall), med(vpl_cpu) / med(np_cpu)
    print(f"  VPL / numpy: {ratio:.2f}x wall, {ratio_cpu:.2f}x cpu  (target <= 2.0)")
    print(f"  numpy / plain Python: {full / med(np_wall):.0f}x faster")
    calls = sum(metrics["vectorised"].values())
    fallbacks = sum(f["calls"] for f in metrics["fallback"].values())
    print(f"  sink rows over all runs {sinks:,}; kernel calls {calls}, fallbacks {fallbacks}")
    if (Path(_HERE) / "kernels_filter.py").exists():
        import importlib.util

        spec = importlib.util.spec_from_file_location(
            "kernels_filter", Path(_HERE) / "kernels_filter.py"
        )
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        print()
        sys.argv = sys.argv[:1]
        module.main()


if __name__ == "__main__":
    main()
