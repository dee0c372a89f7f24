"""Contexts as processes: 4 Mandelbrot tiles on 4 contexts vs inline (a script; never a test).

Runs ``examples/mandelbrot/mandelbrot_server.vpl`` (without its MQTT sink) twice
in the same run: once in one inline Engine (the tiles one after another), once in
a :class:`~varpulis.runtime.contexts.ContextRuntime` over ``ipc`` (one forkserver
process per context, so the 4 tiles run in parallel), injecting 4 tiles (by
default the four central ones) in one batch with a flush barrier. Both sides use
``process_chunks``: the tiles run as numpy kernels and their pixels come back as
columnar batches (over the transport as ``columns`` frames), never as per-pixel
dicts. Verifies that both
give the same pixel count and iteration checksum, and prints both times and the
ratio (target ≥ 1.6× on 2 cores), then the deploy-to-ready time of all 16
contexts (target ≤ 3 s).

    python bench/contexts.py [--row 1] [--size 250] [--max-iter 256] [--transport ipc]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

# Run as a script, bench/ would shadow the ``transports`` package (bench/transports.py),
# here and in the context processes, which inherit sys.path.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]
sys.path.insert(0, os.path.dirname(_HERE))

from kernels.columnar import ColumnarBatch  # noqa: E402
from varpulis.events import Event  # noqa: E402
from varpulis.runtime.contexts import ContextRuntime  # noqa: E402
from varpulis.runtime.engine import Engine  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def source(size: int, max_iter: int) -> str:
    src = (ROOT / "examples/mandelbrot/mandelbrot_server.vpl").read_text()
    src = src.replace("250, 256)", f"{size}, {max_iter})").replace("* 250", f"* {size}")
    return src.replace('.to(MqttOut, topic: "mandelbrot/pixels")', "")


def checksum(outputs: list[Event | ColumnarBatch]) -> tuple[int, int, int]:
    """(pixels, Σ iterations, diverged pixels) over events and batches."""
    pixels = total = diverged = 0
    for out in outputs:
        if isinstance(out, ColumnarBatch):
            pixels += len(out)
            total += int(out.columns["iterations"].sum())
            diverged += int(out.columns["diverged"].sum())
        else:
            pixels += 1
            total += out.fields["iterations"]
            diverged += bool(out.fields["diverged"])
    return pixels, total, diverged


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiles", default="11,12,21,22",
                        help="the tiles (rowcol) to compute; default: the four central ones, the "
                             "heaviest (Σ 40.2M iterations), two mirror pairs that two cores "
                             "can share evenly")  # fmt: skip
    parser.add_argument(
        "--row",
        type=int,
        help="the 4 tiles of this row instead (row 1: its "
        "tile 12 holds 62 %% of the work, so 2 cores cap the speed-up at ≈1.6x)",
    )
    parser.add_argument("--size", type=int, default=250)
    parser.add_argument("--max-iter", type=int, default=256)
    parser.add_argument("--transport", default="ipc", choices=["ipc", "tcp"])
    args = parser.parse_args()
    src = source(args.size, args.max_iter)
    names = [f"{args.row}{c}" for c in range(4)] if args.row is not None else args.tiles.split(",")
    tiles = [Event(f"ComputeTile{name}", {}) for name in names]

    started = time.perf_counter()
    rt = ContextRuntime(src, transport=args.transport)
    ready = time.perf_counter() - started
    try:
        rt.process(Event("Warmup", {}), wait=True)
        started = time.perf_counter()
        parallel = rt.process_chunks(tiles, wait=True)
        t_contexts = time.perf_counter() - started
    finally:
        rt.close()

    engine = Engine(src)
    started = time.perf_counter()
    inline = [out for tile in tiles for out in engine.process_chunks(tile)]
    t_inline = time.perf_counter() - started

    a, b = checksum(inline), checksum(parallel)
    assert a == b, f"checksums differ: inline {a} vs contexts {b}"
    print(f"{len(tiles)} tiles {','.join(names)} of {args.size}x{args.size} "
          f"(max_iter {args.max_iter}): "
          f"{a[0]:,} pixels, Σ iterations {a[1]:,}, diverged {a[2]:,} (both modes)")  # fmt: skip
    print(f"inline (1 engine):          {t_inline:7.3f} s")
    print(f"contexts ({args.transport}, {len(tiles)} processes): {t_contexts:7.3f} s")
    print(f"speed-up:                   {t_inline / t_contexts:7.2f}x  (target >= 1.6x on 2 cores)")
    print(f"16 contexts deploy-to-ready: {ready:6.3f} s  (target <= 3 s)")


if __name__ == "__main__":
    main()
