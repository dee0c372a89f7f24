"""``varpulis coordinator`` on the command line: flags (each with a VARPULIS_* fallback).

:func:`add_coordinator_parser` registers the subcommand on the main parser;
:func:`cmd_coordinator` checks the flags and runs the coordinator until
SIGINT/SIGTERM. The heavy imports (bottle, waitress, prometheus) happen only
when the command runs.
"""

from __future__ import annotations

import argparse
import sys

from varpulis.cli import EXIT_USAGE, EnvDefault, add_service_log_level, apply_service_log_level

__all__ = ["add_coordinator_parser", "cmd_coordinator"]


def _seconds(text: str) -> float:
    value = float(text)
    if not value > 0:
        message = f"must be a positive number of seconds, got {text!r}"
        raise argparse.ArgumentTypeError(message)
    return value


def cmd_coordinator(args: argparse.Namespace) -> int:
    """Run the coordinator until SIGINT/SIGTERM."""
    from varpulis.cluster import CoordinatorConfig, run_coordinator

    if bool(args.tls_cert) != bool(args.tls_key):
        message = "varpulis coordinator: --tls-cert and --tls-key must be given together"
        print(message, file=sys.stderr)
        return EXIT_USAGE
    apply_service_log_level(args)  # --log-level, else RUST_LOG (as for the worker)
    config = CoordinatorConfig(
        host=args.host,
        port=args.port,
        api_key=args.api_key or None,
        worker_key=args.worker_key or None,
        heartbeat_interval=args.heartbeat_interval,
        heartbeat_timeout=args.heartbeat_timeout,
        http_timeout=args.http_timeout,
        state_dir=args.state_dir,
        placement=args.placement,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        threads=args.threads,
    )
    return run_coordinator(config)


def add_coordinator_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``varpulis coordinator``."""
    p = sub.add_parser(
        "coordinator", help="run the cluster control plane (workers, groups, routing, health)"
    )

    def flag(*names: str, envvar: str, **kw: object) -> None:
        p.add_argument(*names, action=EnvDefault, envvar=envvar, **kw)  # type: ignore[arg-type]

    flag(
        "--host",
        envvar="VARPULIS_COORDINATOR_HOST",
        default="127.0.0.1",
        help="address to listen on",
    )
    flag(
        "--port",
        "-p",
        envvar="VARPULIS_COORDINATOR_PORT",
        type=int,
        default=9100,
        help="TCP port; 0 picks a free one (the banner shows it)",
    )
    flag(
        "--api-key",
        envvar="VARPULIS_API_KEY",
        help="require this x-api-key on /api/v1/cluster/* (default: API open)",
    )
    flag(
        "--worker-key",
        envvar="VARPULIS_WORKER_KEY",
        help="another key accepted on register/heartbeat; without it, loopback callers "
        "may register with any key",
    )
    flag(
        "--heartbeat-interval",
        envvar="VARPULIS_HEARTBEAT_INTERVAL",
        type=_seconds,
        default=5.0,
        help="seconds between health sweeps",
    )
    flag(
        "--heartbeat-timeout",
        envvar="VARPULIS_HEARTBEAT_TIMEOUT",
        type=_seconds,
        default=15.0,
        help="seconds without heartbeat before a worker is unhealthy",
    )
    flag(
        "--http-timeout",
        envvar="VARPULIS_HTTP_TIMEOUT",
        type=_seconds,
        default=10.0,
        help="seconds a call to a worker may take",
    )
    flag(
        "--state-dir",
        envvar="VARPULIS_COORDINATOR_STATE_DIR",
        help="persist workers, groups, placements and tombstones here; restored at start",
    )
    flag(
        "--placement",
        envvar="VARPULIS_PLACEMENT",
        default="round-robin",
        choices=["round-robin", "least-loaded"],
        help="default placement strategy of pipelines without an available worker_affinity",
    )
    flag(
        "--tls-cert",
        envvar="VARPULIS_TLS_CERT",
        help="PEM certificate chain: serve HTTPS (needs --tls-key)",
    )
    flag("--tls-key", envvar="VARPULIS_TLS_KEY", help="PEM private key for --tls-cert")
    flag(
        "--threads",
        envvar="VARPULIS_COORDINATOR_THREADS",
        type=int,
        default=16,
        help="HTTP worker threads",
    )
    add_service_log_level(p)
    p.set_defaults(func=cmd_coordinator)
    return p
