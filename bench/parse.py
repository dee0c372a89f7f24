"""Parse speed of the VPL front end (a script; never run as a test).

Prints the parse time of the Mandelbrot worker program and of a generated
2,000-line program (lines/s), with a same-run baseline: CPython's own parser
(``ast.parse``) on a Python program of the same number of lines.

    python bench/parse.py [--lines 2000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import ast
import time
from collections.abc import Callable
from pathlib import Path

from varpulis.lang import parse
from varpulis.lang.validate import validate

ROOT = Path(__file__).resolve().parents[1]


def generate(lines: int) -> str:
    """A VPL program of *lines* lines: streams with filters/emits and functions with loops."""
    out: list[str] = []
    i = 0
    while len(out) < lines:
        out += [
            f"stream S{i} = Tick{i % 7}",
            f'    .where(price > {i}.5 and symbol == "S{i}")',
            f"    .emit(sym: symbol, p: price * 2 + {i}, ok: not (volume < 10))",
            "",
            f"fn f{i}(a: int, b: float) -> float:",
            "    var t = 0.0",
            "    for k in 0..a:",
            "        if k % 2 == 0:",
            "            t := t + b * k",
            "        else:",
            "            t := t - 1",
            "    return t",
            "",
        ]
        i += 1
    return "\n".join(out[:lines]) + "\n"


def generate_python(lines: int) -> str:
    """A Python program of the same shape, for the baseline."""
    out: list[str] = []
    i = 0
    while len(out) < lines:
        out += [
            f"s{i} = [e for e in tick{i % 7}",
            f'      if e.price > {i}.5 and e.symbol == "S{i}"]',
            f"out{i} = dict(sym=symbol, p=price * 2 + {i}, ok=not (volume < 10))",
            "",
            f"def f{i}(a: int, b: float) -> float:",
            "    t = 0.0",
            "    for k in range(a):",
            "        if k % 2 == 0:",
            "            t = t + b * k",
            "        else:",
            "            t = t - 1",
            "    return t",
            "",
        ]
        i += 1
    return "\n".join(out[:lines]) + "\n"


def best_of(repeat: int, fn: Callable[[], object]) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, default=2000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()

    worker = (ROOT / "examples/mandelbrot/distributed/mandelbrot_worker_0.vpl").read_text()
    parse(worker)  # warm-up: regex compilation, grammar streamlining
    t = best_of(args.repeat, lambda: parse(worker))
    n = worker.count("\n")
    print(f"mandelbrot_worker_0.vpl: {n} lines in {t * 1000:.1f} ms ({n / t:,.0f} lines/s)")

    vpl = generate(args.lines)
    py = generate_python(args.lines)
    t_vpl = best_of(args.repeat, lambda: parse(vpl))
    t_val = best_of(args.repeat, lambda: validate(parse(vpl))) - t_vpl
    t_py = best_of(args.repeat, lambda: ast.parse(py))
    print(
        f"generated program: {args.lines} lines ({len(vpl) / 1024:.0f} KiB) parsed in "
        f"{t_vpl * 1000:.0f} ms ({args.lines / t_vpl:,.0f} lines/s); validation "
        f"+{max(t_val, 0) * 1000:.0f} ms"
    )
    print(
        f"baseline: CPython ast.parse of {args.lines} similar Python lines: {t_py * 1000:.1f} ms "
        f"({args.lines / t_py:,.0f} lines/s); ratio VPL/CPython {t_vpl / t_py:.0f}x"
    )


if __name__ == "__main__":
    main()
