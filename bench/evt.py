"""Parse speed of ``.evt`` event files (a script; never run as a test).

Generates StockTick lines (``StockTick { symbol: "AAPL", price: 151.25, volume:
100 }``, prices mostly unique) and prints lines/s of :func:`parse_evt`, with
same-run baselines: a hand-written minimal parser for exactly that line shape
(one regex, ``str.split``, conversion by first character, no validation) run
as is and with the garbage collector paused as parse_evt does, and
``json.loads`` of the equivalent JSON Lines. Runs are interleaved and the
median of *--repeat* is reported, because this machine's speed drifts.

    python bench/evt.py [--lines 100000] [--repeat 7]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import re
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

# Run as a script, bench/ (which holds kernels.py) would shadow the ``kernels`` package.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]
sys.path.insert(0, os.path.dirname(_HERE))

from varpulis.events import Event  # noqa: E402
from varpulis.lang.evt import parse_evt, parse_jsonl  # noqa: E402

SYMBOLS = ("AAPL", "GOOG", "MSFT", "AMZN", "TSLA", "META", "NVDA", "IBM")


def generate(lines: int, seed: int = 1) -> list[tuple[str, float, int]]:
    rng = random.Random(seed)
    return [
        (rng.choice(SYMBOLS), rng.randrange(1_000, 100_000) / 100, rng.randrange(1, 10_000))
        for _ in range(lines)
    ]


def as_evt(ticks: list[tuple[str, float, int]]) -> str:
    return "".join(
        f'StockTick {{ symbol: "{s}", price: {p!r}, volume: {v} }}\n' for s, p, v in ticks
    )


def as_jsonl(ticks: list[tuple[str, float, int]]) -> str:
    return "".join(
        json.dumps({"event_type": "StockTick", "symbol": s, "price": p, "volume": v}) + "\n"
        for s, p, v in ticks
    )


LINE = re.compile(r"(\w+) \{ (.*) \}")


def minimal(text: str) -> list[tuple[int, Event]]:
    """Just that line shape: no comments, pacing, escapes, nesting or error positions."""
    out = []
    for line in text.splitlines():
        match = LINE.match(line)
        assert match is not None
        event_type, body = match.groups()
        fields: dict[str, Any] = {}
        for part in body.split(", "):
            key, value = part.split(": ", 1)
            if value[0] == '"':
                fields[key] = value[1:-1]
            elif "." in value:
                fields[key] = float(value)
            else:
                fields[key] = int(value)
        out.append((0, Event(event_type, fields, 0)))
    return out


def minimal_gc_paused(text: str) -> list[tuple[int, Event]]:
    gc.disable()
    try:
        return minimal(text)
    finally:
        gc.enable()


def json_loads(text: str) -> list[Any]:
    return [json.loads(line) for line in text.splitlines()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args()
    ticks = generate(args.lines)
    evt_text, jsonl_text = as_evt(ticks), as_jsonl(ticks)
    # The same events written otherwise: these take the line-by-line paths.
    paced = "".join(f"@{i}ms {line}\n" for i, line in enumerate(evt_text.splitlines()))
    compact = evt_text.replace(" { ", "{").replace(": ", ":").replace(", ", ",").replace(" }", "}")
    runs: dict[str, tuple[Callable[[str], Any], str]] = {
        "parse_evt": (parse_evt, evt_text),
        "minimal regex+split parser": (minimal, evt_text),
        "minimal parser, GC paused": (minimal_gc_paused, evt_text),
        "json.loads per JSONL line": (json_loads, jsonl_text),
        "parse_jsonl": (parse_jsonl, jsonl_text),
        "parse_evt, @<n>ms prefixes": (parse_evt, paced),
        "parse_evt, no spaces": (parse_evt, compact),
    }
    expected = [t.event for t in parse_evt(evt_text)]
    assert expected == [e for _, e in minimal(evt_text)]
    assert expected == [t.event for t in parse_jsonl(jsonl_text)]
    assert expected == [t.event for t in parse_evt(compact)]
    assert [e.fields for e in expected] == [t.event.fields for t in parse_evt(paced)]
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(args.repeat):
        for name, (parse, text) in runs.items():
            start = time.perf_counter()
            result = parse(text)
            times[name].append(time.perf_counter() - start)
            del result
    rate = {name: args.lines / statistics.median(ts) for name, ts in times.items()}
    print(f"{args.lines:,} StockTick lines, median of {args.repeat} interleaved runs")
    for name in runs:
        print(f"  {name:<28} {rate[name]:>12,.0f} lines/s")
    ours = rate["parse_evt"]
    for name in list(runs)[1:4]:
        print(f"  parse_evt / {name:<28} {ours / rate[name]:.2f}x")


if __name__ == "__main__":
    main()
