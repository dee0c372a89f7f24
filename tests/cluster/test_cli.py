"""``varpulis coordinator`` as a process: the tutorial's banner, env fallbacks, SIGTERM."""

from __future__ import annotations

import signal

import requests

from tests.utils import Child, varpulis_cmd
from varpulis.cli import build_parser


def test_banner_health_and_graceful_stop() -> None:
    with Child(varpulis_cmd("coordinator", "--port", "0", "--api-key", "admin")) as child:
        url = child.read_until(r"^API:\s+(http://127\.0\.0\.1:\d+)/api/v1/cluster/$").group(1)
        child.read_until(r"^Auth:      enabled \(API key required\)$")
        assert child.stdout[:2] == ["Varpulis Coordinator\n", "=" * 23 + "\n"]
        body = requests.get(url + "/health", timeout=5).json()
        assert (body["role"], body["status"], body["version"]) == (
            "coordinator",
            "healthy",
            "0.6.0",
        )
        assert requests.get(url + "/api/v1/cluster/workers", timeout=5).status_code == 401
        assert child.stop(signal.SIGTERM) == 0, child.output()
        assert "INFO varpulis_cluster: Coordinator listening on" in "".join(child.stderr)


def test_flags_default_and_env_fallbacks(monkeypatch) -> None:
    args = build_parser().parse_args(["coordinator"])
    assert (
        args.host,
        args.port,
        args.api_key,
        args.heartbeat_interval,
        args.heartbeat_timeout,
        args.http_timeout,
        args.placement,
    ) == ("127.0.0.1", 9100, None, 5.0, 15.0, 10.0, "round-robin")
    monkeypatch.setenv("VARPULIS_HEARTBEAT_TIMEOUT", "0.6")
    monkeypatch.setenv("VARPULIS_PLACEMENT", "least-loaded")
    monkeypatch.setenv("VARPULIS_WORKER_KEY", "wk")
    args = build_parser().parse_args(["coordinator", "--heartbeat-interval", "0.2"])
    assert (args.heartbeat_interval, args.heartbeat_timeout, args.placement, args.worker_key) == (
        0.2,
        0.6,
        "least-loaded",
        "wk",
    )
    help_text = build_parser()._subparsers._group_actions[0].choices["coordinator"].format_help()
    for env in (
        "VARPULIS_API_KEY",
        "VARPULIS_WORKER_KEY",
        "VARPULIS_HEARTBEAT_INTERVAL",
        "VARPULIS_HEARTBEAT_TIMEOUT",
        "VARPULIS_HTTP_TIMEOUT",
        "VARPULIS_PLACEMENT",
        "VARPULIS_COORDINATOR_STATE_DIR",
    ):
        assert env in help_text
