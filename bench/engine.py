"""Engine throughput on the original's scenario shapes (a script; never a test).

For each scenario, 100,000 generated events are written as ``.evt`` text and
run twice in the same process: through ``varpulis simulate --immediate``
(``varpulis.simulate.simulate``, including ``.evt`` parsing), and through a
hand-written pure-Python loop that parses the same text with one regex and
does the same work. The two alternate *--repeat* times; prints the best
events/s of both and the median ratio engine/hand-written over the pairs
(targets: filter and VWAP ≥ 0.8, sequence ≥ 0.8, Kleene ≥ 0.5).

    python bench/engine.py [--events 100000] [--repeat 5] [--only filter,vwap,seq,kleene]
"""

from __future__ import annotations

import argparse
import os
import random
import re
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

# Run as a script, bench/ (which holds kernels.py) would shadow the ``kernels`` package.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]
sys.path.insert(0, os.path.dirname(_HERE))

from varpulis.runtime.engine import Engine  # noqa: E402
from varpulis.simulate import simulate  # noqa: E402

SYMBOLS = ["AAPL", "MSFT", "GOOG", "AMZN", "TSLA", "META", "NVDA", "IBM"]
LINE = re.compile(
    r'@(\d+)ms (\w+) \{ symbol: "(\w+)", price: ([\d.]+), volume: (\d+), id: (\d+) \}'
)

PROGRAMS = {
    "filter": "stream Hi = StockTick .where(price > 50.0) .emit(symbol: symbol, price: price)",
    "vwap": (
        "stream Vwap = StockTick .partition_by(symbol) .window(100)"
        " .aggregate(vwap: sum(price * volume) / sum(volume), volume: sum(volume))"
        " .emit(symbol: _partition, vwap: vwap, volume: volume)"
    ),
    "seq": "stream Match = A as a -> B as b .where(a.id == b.id) .within(60s) .emit(id: a.id)",
    "kleene": (
        "stream Rise = StockTick as a -> all StockTick where price > a.price as b"
        " .within(50ms) .emit(start: a.price, top: b.price, n: len(b))"
    ),
}


def generate(scenario: str, n: int, seed: int = 7) -> str:
    rnd = random.Random(seed)
    lines = []
    for i in range(n):
        kind = "StockTick" if scenario in ("filter", "vwap", "kleene") else rnd.choice("AB")
        sym = rnd.choice(SYMBOLS)
        price = round(rnd.uniform(10, 100), 2)
        lines.append(
            f'@{i}ms {kind} {{ symbol: "{sym}", price: {price}, volume: {rnd.randint(1, 500)},'
            f" id: {rnd.randint(0, 50)} }}"
        )
    return "\n".join(lines) + "\n"


def parse_lines(text: str):  # noqa: ANN201 - the baseline's own minimal parser
    for m in LINE.finditer(text):
        yield (int(m[1]) * 1_000_000, m[2], m[3], float(m[4]), int(m[5]), int(m[6]))


def hand_filter(text: str) -> int:
    out = []
    for _, _, sym, price, _, _ in parse_lines(text):
        if price > 50.0:
            out.append({"event_type": "Hi", "symbol": sym, "price": price})
    return len(out)


def hand_vwap(text: str) -> int:
    windows: dict[str, list] = defaultdict(list)
    out = []
    for _, _, sym, price, volume, _ in parse_lines(text):
        win = windows[sym]
        win.append((price, volume))
        if len(win) == 100:
            pv = sum(p * v for p, v in win)
            vol = sum(float(v) for _, v in win)
            out.append({"event_type": "Vwap", "symbol": sym, "vwap": pv / vol, "volume": vol})
            windows[sym] = []
    return len(out)


def hand_seq(text: str) -> int:
    pending: list[tuple[int, int]] = []
    out = []
    for ts, kind, _, _, _, ident in parse_lines(text):
        if kind == "A":
            pending.append((ts, ident))
        else:
            for start, a_id in pending:
                if ts - start <= 60 * 10**9 and a_id == ident:
                    out.append({"event_type": "Match", "id": a_id})
            pending = []
    return len(out)


def hand_kleene(text: str) -> int:
    runs: list[list] = []  # [start_ts, start_price, top, n]
    out = []
    for ts, _, _, price, _, _ in parse_lines(text):
        runs = [r for r in runs if ts - r[0] <= 50 * 10**6]
        for r in runs:
            if price > r[1]:
                r[2], r[3] = price, r[3] + 1
                out.append({"event_type": "Rise", "start": r[1], "top": price, "n": r[3]})
        runs.append([ts, price, None, 0])
    return len(out)


BASELINES: dict[str, Callable[[str], int]] = {
    "filter": hand_filter,
    "vwap": hand_vwap,
    "seq": hand_seq,
    "kleene": hand_kleene,
}


def timed(fn: Callable[[], int]) -> tuple[float, int]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--only", default="filter,vwap,seq,kleene")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for scenario in args.only.split(","):
            text = generate(scenario, args.events)
            path = Path(tmp, f"{scenario}.evt")
            path.write_text(text)

            def engine_run(scenario: str = scenario, path: Path = path) -> int:
                engine = Engine(PROGRAMS[scenario])
                return simulate(engine, str(path), immediate=True, base_ns=0).outputs

            # Interleaved pairs: this shared machine's speed drifts between runs, so
            # each ratio compares an engine run with the hand-written run next to it.
            pairs = []
            for _ in range(args.repeat):
                t_engine, n_engine = timed(engine_run)
                t_hand, n_hand = timed(lambda text=text, s=scenario: BASELINES[s](text))
                pairs.append((t_engine, t_hand))
            check = "same outputs" if n_engine == n_hand else f"OUTPUTS DIFFER ({n_hand})"
            ratio = statistics.median(hand / engine for engine, hand in pairs)
            best_engine = min(engine for engine, _ in pairs)
            best_hand = min(hand for _, hand in pairs)
            print(
                f"{scenario:>7}: engine {args.events / best_engine:>9,.0f} ev/s ({n_engine} out)"
                f" | hand-written {args.events / best_hand:>9,.0f} ev/s | ratio "
                f"{ratio:.2f} (median of {args.repeat} pairs) | {check}",
                flush=True,
            )


if __name__ == "__main__":
    main()
