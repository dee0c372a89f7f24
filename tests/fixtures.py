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


#: vpl-spec T1-9: a chain across two contexts (``.emit(context: ...)``).
CROSS_CONTEXT_CHAIN = """
context ingest
context analytics

stream Filtered = SensorReading
    .context(ingest)
    .where(temperature > 50.0)
    .emit(context: analytics, sensor: sensor_id, temp: temperature)

stream Analysis = Filtered
    .context(analytics)
    .where(temp > 100.0)
    .emit(alert_sensor: sensor, alert_temp: temp)
"""

#: vpl-spec T1-6: functions with loops and ``emit``.
CLASSIFY_AND_GEN = """
fn classify(n: int) -> str:
    if n > 10:
        return "big"
    elif n > 5:
        return "mid"
    else:
        return "small"

fn gen(count: int):
    var total = 0
    for i in 0..count:
        if i == 2:
            continue
        total := total + i
        emit Item(i: i, label: classify(i * 4), total: total)
    emit Done(total: total, avg: total / count)
"""


def mandelbrot_py(cx: float, cy: float, max_iter: int) -> int:
    """The plain-Python reference of the example's ``fn mandelbrot`` (same float order)."""
    zr = zi = 0.0
    for i in range(max_iter):
        r2, i2 = zr * zr, zi * zi
        if r2 + i2 > 4.0:
            return i
        zi = 2.0 * zr * zi + cy
        zr = r2 - i2 + cx
    return max_iter
