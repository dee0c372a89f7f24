"""`python -m varpulis server` as a real process: banner, tutorial Part 1, signals, state."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
import requests

from tests.utils import Child, poll_for, varpulis_cmd

pytestmark = pytest.mark.e2e

TUTORIAL_A = 'stream A = EventA .emit(result: "from-a")'
H = {"x-api-key": "test"}


def _start(*args: str, env: dict[str, str] | None = None) -> tuple[Child, str]:
    child = Child(varpulis_cmd("server", "--port", "0", *args), env=env)
    url = child.read_until(r"API:\s+(https?://[\d.]+:\d+)/api/v1/").group(1)
    poll_for(lambda: requests.get(url + "/health", timeout=1).ok, what="/health")
    return child, url


def _stop(child: Child, sig: int = signal.SIGTERM) -> None:
    code = child.stop(sig)
    assert code == 0, child.output()


def test_tutorial_part1() -> None:
    child, url = _start("--api-key", "test")
    with child:
        port = url.rsplit(":", 1)[1]
        child.read_until(r"Auth:      enabled \(API key required\)")
        poll_for(lambda: f"INFO varpulis: Server listening on 127.0.0.1:{port}"
                 in "".join(child.stderr), what="listening log line")  # fmt: skip
        r = requests.post(url + "/api/v1/pipelines", headers=H, timeout=10,
                          json={"name": "pipeline-a", "source": TUTORIAL_A})  # fmt: skip
        assert r.status_code == 201, child.output()
        pid = r.json()["id"]
        r = requests.post(f"{url}/api/v1/pipelines/{pid}/events", headers=H, timeout=10,
                          json={"event_type": "EventA", "fields": {"x": 42}})  # fmt: skip
        assert r.json() == {"accepted": True,
                            "output_events": [{"event_type": "A", "result": "from-a"}]}  # fmt: skip
        assert requests.get(url + "/api/v1/pipelines", timeout=10).status_code == 401
        _stop(child)
        assert "server stopped" in "".join(child.stderr)


def test_sigint_and_env_fallbacks() -> None:
    child, url = _start(env={"VARPULIS_API_KEY": "envkey", "VARPULIS_MAX_PIPELINES": "1"})
    with child:
        h = {"x-api-key": "envkey"}
        ok = requests.post(url + "/api/v1/pipelines", headers=h, timeout=10,
                           json={"name": "a", "source": TUTORIAL_A})  # fmt: skip
        assert ok.status_code == 201
        full = requests.post(url + "/api/v1/pipelines", headers=h, timeout=10,
                             json={"name": "b", "source": TUTORIAL_A})  # fmt: skip
        assert full.status_code == 429
        _stop(child, signal.SIGINT)


def test_open_banner_without_key() -> None:
    child, url = _start()
    with child:
        child.read_until(r"Auth:      disabled \(no --api-key: API is open\)")
        assert requests.get(url + "/api/v1/pipelines", timeout=10).json()["total"] == 0
        _stop(child)


def test_tls_flags_need_each_other(tmp_path: Path) -> None:
    child = Child(varpulis_cmd("server", "--port", "0", "--tls-cert", str(tmp_path / "c")))
    with child:
        assert child.proc.wait(30) == 2, child.output()
        poll_for(lambda: "--tls-cert requires --tls-key" in "".join(child.stderr))


def test_state_dir_restart_keeps_ids(tmp_path: Path) -> None:
    state = str(tmp_path / "state")
    child, url = _start("--api-key", "test", "--state-dir", state)
    with child:
        ids = []
        for name in ("a", "b"):
            r = requests.post(url + "/api/v1/pipelines", headers=H, timeout=10,
                              json={"name": name, "source": TUTORIAL_A})  # fmt: skip
            ids.append(r.json()["id"])
        _stop(child)
    # Graceful restart, then a kill -9 and another restart: ids and names survive both.
    for stop in ("term", "kill"):
        child, url = _start("--api-key", "test", "--state-dir", state)
        with child:
            assert child.read_until(r"Pipelines: (\d+) running").group(1) == "2"
            listed = requests.get(url + "/api/v1/pipelines", headers=H, timeout=10).json()
            assert [(p["id"], p["name"]) for p in listed["pipelines"]] == [
                (ids[0], "a"),
                (ids[1], "b"),
            ]
            r = requests.post(f"{url}/api/v1/pipelines/{ids[1]}/events", headers=H, timeout=10,
                              json={"event_type": "EventA", "fields": {}})  # fmt: skip
            assert r.json()["output_events"] == [{"event_type": "A", "result": "from-a"}]
            if stop == "term":
                _stop(child)
            else:
                child.kill()
