"""varpulis run / simulate: pacing, outputs, summary line, errors."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from varpulis.cli import main
from varpulis.runtime.engine import Engine
from varpulis.simulate import simulate

PROGRAM = "stream Hi = StockTick .where(price > 50.0) .emit(symbol: symbol, price: price)\n"
EVENTS = (
    'StockTick { symbol: "AAPL", price: 151.25, volume: 100 }\n'
    'StockTick { symbol: "MSFT", price: 20.5, volume: 10 }\n'
    "BATCH 2s\n"
    'StockTick { symbol: "AAPL", price: 60.0, volume: 5 }\n'
)


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    program, events = tmp_path / "hi.vpl", tmp_path / "ticks.evt"
    program.write_text(PROGRAM)
    events.write_text(EVENTS)
    return program, events


class FakeClock:
    """A clock that only moves when the simulation sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_paced_replay_waits_for_offsets(files: tuple[Path, Path]) -> None:
    clock = FakeClock()
    out = io.StringIO()
    stats = simulate(Engine(PROGRAM), str(files[1]), out=out, clock=clock, sleep=clock.sleep,
                     base_ns=0)  # fmt: skip
    assert clock.sleeps == [2.0]
    assert [json.loads(line) for line in out.getvalue().splitlines()] == [
        {"event_type": "Hi", "symbol": "AAPL", "price": 151.25},
        {"event_type": "Hi", "symbol": "AAPL", "price": 60.0},
    ]
    assert (stats.events, stats.outputs, stats.errors) == (3, 2, 0)


def test_immediate_never_sleeps_and_event_time_follows_offsets(files: tuple[Path, Path]) -> None:
    clock = FakeClock()
    engine = Engine("stream S = StockTick .window(2s) .aggregate(n: count()) .emit(n: n)")
    out = io.StringIO()
    simulate(engine, str(files[1]), out=out, immediate=True, clock=clock, sleep=clock.sleep,
             base_ns=0, flush_at_end=True)  # fmt: skip
    assert clock.sleeps == []
    # the third event is 2 s later in event time: it closes the first window
    assert [json.loads(line)["n"] for line in out.getvalue().splitlines()] == [2, 1]


def test_cli_simulate_summary_and_output_file(
    files: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    program, events = files
    target = tmp_path / "out.jsonl"
    args = ["simulate", "-p", str(program), "-e", str(events), "--immediate", "-o", str(target)]
    assert main(args) == 0
    captured = capsys.readouterr()
    assert captured.out == ""
    last = captured.err.strip().splitlines()[-1]
    assert last.startswith("processed 3 events in ") and last.endswith(", 2 output events")
    assert len(target.read_text().splitlines()) == 2


def test_cli_run_prints_outputs(
    files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    program, events = files
    assert main(["run", str(program), "--events", str(events)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [json.loads(line)["price"] for line in lines] == [151.25, 60.0]


def test_runtime_errors_are_reported_and_counted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    program = tmp_path / "bad.vpl"
    program.write_text("stream S = T .emit(v: x * 2.5)\n")
    events = tmp_path / "e.evt"
    events.write_text('T { x: "a" }\nT { x: 2 }\n')
    assert main(["simulate", "-p", str(program), "-e", str(events), "--immediate"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out) == {"event_type": "S", "v": 5.0}
    assert "1 runtime error(s)" in captured.err
    assert captured.err.strip().splitlines()[-1].endswith("1 output events")


def test_event_file_syntax_error_names_file_line_column(
    files: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.evt"
    bad.write_text('StockTick { symbol: "A" }\nStockTick { price: }\n')
    assert main(["simulate", "-p", str(files[0]), "-e", str(bad), "--immediate"]) == 3
    err = capsys.readouterr().err
    assert f"{bad}:line 2, column" in err and "^" in err


@pytest.mark.e2e
def test_simulate_as_a_process(files: tuple[Path, Path]) -> None:
    program, events = files
    proc = subprocess.run(
        [sys.executable, "-m", "varpulis", "simulate", "-p", str(program), "-e", str(events),
         "--immediate", "--quiet"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""
    assert proc.stderr.strip().splitlines()[-1].endswith("2 output events")
