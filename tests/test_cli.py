"""The command line: check, parse, --help, --version, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from varpulis import __version__
from varpulis.cli import EXIT_INVALID, build_parser, main

ROOT = Path(__file__).resolve().parents[1]


def test_check_examples(capsys: pytest.CaptureFixture[str]) -> None:
    files = [str(p) for p in sorted(ROOT.glob("examples/**/*.vpl"))]
    assert main(["check", *files]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == len(files)
    worker = next(line for line in out if "mandelbrot_worker_0.vpl" in line)
    assert worker.endswith("OK (4 streams, 2 functions, 4 contexts, 1 connector)")


def test_check_invalid_file_exits_3(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good.vpl"
    good.write_text("stream S = A .emit(v: 1)\n")
    bad = tmp_path / "bad.vpl"
    bad.write_text("stream S = A\n    .where(a && b)\n")
    assert main(["check", str(good), str(bad)]) == EXIT_INVALID
    captured = capsys.readouterr()
    assert f"{good}: OK (1 stream)" in captured.out
    err = captured.err
    assert "syntax error:" in err and "line 2, column 15" in err
    assert "hint: use 'and' instead of '&&'" in err
    assert f"{bad}: invalid" in err


def test_check_semantic_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.vpl"
    bad.write_text("stream S = A .whre(x > 1)\n")
    assert main(["check", str(bad)]) == EXIT_INVALID
    err = capsys.readouterr().err
    assert "semantic error:" in err and "did you mean 'where'?" in err


def test_check_missing_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "/nonexistent/x.vpl"]) == 1
    assert "cannot read" in capsys.readouterr().err


def test_parse_prints_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "p.vpl"
    src.write_text('stream A = EventA .emit(result: "from-a")\n')
    assert main(["parse", "--spans", str(src)]) == 0
    data = json.loads(capsys.readouterr().out)
    (stream,) = data["decls"]
    assert stream["node"] == "StreamDecl" and stream["name"] == "A"
    assert stream["ops"][0]["kwargs"] == [["result", {"node": "Literal", "value": "from-a",
                                                      "span": [32, 40]}]]  # fmt: skip


def test_help_lists_env_variables() -> None:
    text = build_parser().format_help()
    assert "check" in text and "[env: VARPULIS_LOG]" in text


@pytest.mark.e2e
def test_module_entry_point_version() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "varpulis", "--version"], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == f"varpulis {__version__}"


@pytest.mark.e2e
def test_usage_error_exits_2() -> None:
    proc = subprocess.run([sys.executable, "-m", "varpulis", "frobnicate"], capture_output=True)
    assert proc.returncode == 2


@pytest.mark.e2e
def test_installed_command_checks_examples() -> None:
    files = [str(p) for p in sorted(ROOT.glob("examples/**/*.vpl"))]
    proc = subprocess.run(
        [sys.executable, "-m", "varpulis", "check", *files], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count(": OK (") == len(files)


def test_server_cluster_flags_and_env_fallbacks(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("VARPULIS_COORDINATOR", "http://env:9100")
    monkeypatch.setenv("VARPULIS_HEARTBEAT_INTERVAL", "0.5")
    args = build_parser().parse_args(["server", "--worker-id", "worker-0"])
    assert (args.coordinator, args.worker_id, args.heartbeat_interval) == (
        "http://env:9100", "worker-0", 0.5)  # fmt: skip
    assert (args.advertise_address, args.coordinator_key) == (None, None)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["server", "--help"])
    text = capsys.readouterr().out
    for var in ("VARPULIS_COORDINATOR", "VARPULIS_WORKER_ID", "VARPULIS_ADVERTISE_ADDRESS",
                "VARPULIS_COORDINATOR_KEY", "VARPULIS_HEARTBEAT_INTERVAL"):  # fmt: skip
        assert f"[env: {var}]" in " ".join(text.split()), var


def test_server_flags_reach_the_config(monkeypatch: pytest.MonkeyPatch) -> None:
    import varpulis.server

    seen = []
    monkeypatch.setattr(varpulis.server, "run_server", lambda config: seen.append(config) or 0)
    assert main(["server", "--api-key", "test", "--coordinator", "http://localhost:9100",
                 "--worker-id", "w1", "--advertise-address", "http://w1:9000",
                 "--coordinator-key", "admin", "--heartbeat-interval", "2"]) == 0  # fmt: skip
    c = seen[0]
    assert (c.coordinator, c.worker_id, c.advertise_address, c.coordinator_key,
            c.heartbeat_interval, c.api_key) == ("http://localhost:9100", "w1", "http://w1:9000",
                                                 "admin", 2.0, "test")  # fmt: skip
    assert main(["server", "--heartbeat-interval", "0"]) == 2
