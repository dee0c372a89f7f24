"""The ``varpulis`` command line: argparse subcommands with VARPULIS_* env fallbacks.

Exit codes: 0 success, 1 runtime error, 2 usage error (argparse), 3 invalid
VPL. Each subcommand lives in a ``cmd_*`` function; flags that may come from
the environment use :class:`EnvDefault`, which shows the variable in --help.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections import Counter
from collections.abc import Sequence
from typing import Any

from varpulis import __version__
from varpulis.errors import VarpulisError, VPLError

__all__ = ["EXIT_INVALID", "EnvDefault", "build_parser", "main"]

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_INVALID = 0, 1, 2, 3


class EnvDefault(argparse.Action):
    """Take the flag's value from $ENVVAR when the flag is absent; --help names it."""

    def __init__(
        self, envvar: str, required: bool = False, default: Any = None, **kwargs: Any
    ) -> None:
        default = os.environ.get(envvar, default)
        kwargs["help"] = f"{kwargs.get('help', '')} [env: {envvar}]".strip()
        super().__init__(default=default, required=required and default is None, **kwargs)
        self.envvar = envvar

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        setattr(namespace, self.dest, values)


def _read_source(path: str) -> str:
    if path == "-":
        return sys.stdin.read()
    with open(path, encoding="utf-8") as fh:
        return fh.read()


def _load(path: str) -> Any:
    """Parse and validate the program at *path* (``-``: stdin); return (program, warnings)."""
    from varpulis.lang import parse, parse_file
    from varpulis.lang.validate import validate

    program = parse(_read_source(path), "<stdin>") if path == "-" else parse_file(path)
    return program, validate(program)


def _summary(program: Any) -> str:
    from varpulis.lang import ast

    kinds = Counter(type(d).__name__ for d in program.decls)
    parts = []
    for cls, word in (
        (ast.StreamDecl, "stream"), (ast.FnDecl, "function"), (ast.ContextDecl, "context"),
        (ast.ConnectorDecl, "connector"), (ast.PatternDecl, "pattern"), (ast.EventDecl, "event"),
    ):  # fmt: skip
        n = kinds.get(cls.__name__, 0)
        if n:
            parts.append(f"{n} {word}{'s' if n != 1 else ''}")
    return ", ".join(parts) or "no declarations"


def cmd_check(args: argparse.Namespace) -> int:
    """Parse and validate each file; one summary line per file."""
    status = EXIT_OK
    for path in args.files:
        try:
            program, warnings = _load(path)
        except VPLError as exc:
            print(exc.render(), file=sys.stderr)
            print(f"{path}: invalid", file=sys.stderr)
            status = EXIT_INVALID
            continue
        except OSError as exc:
            print(f"{path}: cannot read: {exc.strerror}", file=sys.stderr)
            status = max(status, EXIT_ERROR)
            continue
        for warning in warnings:
            print(warning.render(program.source, path), file=sys.stderr)
        note = f", {len(warnings)} warning(s)" if warnings else ""
        print(f"{path}: OK ({_summary(program)}{note})")
    return status


def cmd_parse(args: argparse.Namespace) -> int:
    """Print the AST of a file as JSON."""
    from varpulis.lang import parse
    from varpulis.lang.dump import to_data

    name = "<stdin>" if args.file == "-" else args.file
    program = parse(_read_source(args.file), name)
    json.dump(to_data(program, spans=args.spans), sys.stdout, indent=2)
    print()
    return EXIT_OK


def _simulate(args: argparse.Namespace, program: str, events: str, **options: Any) -> int:
    from varpulis.simulate import load_engine, simulate

    engine = load_engine(program, step_budget=args.step_budget)
    quiet = getattr(args, "quiet", False)
    output = getattr(args, "output", None)
    sink = None
    try:
        if output:
            sink = open(output, "w", encoding="utf-8")  # noqa: SIM115 - closed below
        stats = simulate(engine, events, out=sink or (None if quiet else sys.stdout), **options)
    finally:
        if sink is not None:
            sink.close()
        sys.stdout.flush()
    if stats.errors:
        print(f"{stats.errors} runtime error(s); see the log above", file=sys.stderr)
    print(stats.summary(), file=sys.stderr)
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    """Run a program; with --events, over an event file as fast as possible."""
    if args.events is None:
        return _run_live(args)
    return _simulate(args, args.program, args.events, immediate=True, preload=False,
                     flush_at_end=args.flush_at_end)  # fmt: skip


def _run_live(args: argparse.Namespace) -> int:
    import signal
    import threading

    from varpulis.simulate import load_engine, run_live

    engine = load_engine(args.program, step_budget=args.step_budget)
    if not engine.source_configs():
        engine.close()
        print(
            "varpulis run: the program reads no connector (.from(...)) and no --events was "
            "given. Feed a file (--events FILE, '-' for stdin), or deploy the program to "
            "'varpulis server' and inject events over REST.",
            file=sys.stderr,
        )
        return EXIT_USAGE
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    print(f"running {args.program}; Ctrl-C stops", file=sys.stderr, flush=True)
    stats = run_live(engine, out=sys.stdout, stop=stop)
    print(stats.summary(), file=sys.stderr)
    return EXIT_OK


def cmd_simulate(args: argparse.Namespace) -> int:
    """Replay an event file through a program (paced unless --immediate)."""
    return _simulate(args, args.program, args.events, immediate=args.immediate,
                     preload=args.preload, flush_at_end=args.flush_at_end)  # fmt: skip


_RUST_LEVELS = {
    "trace": "debug",
    "debug": "debug",
    "info": "info",
    "warn": "warning",
    "warning": "warning",
    "error": "error",
    "off": "critical",
}


def _rust_log_level(value: str) -> str | None:
    """The level of a RUST_LOG value (``info``, ``varpulis=debug,warn``); None if unknown."""
    directives = [d.strip() for d in value.split(",") if d.strip()]
    bare = [d for d in directives if "=" not in d]
    pick = bare[-1] if bare else (directives[0].split("=", 1)[1] if directives else "")
    return _RUST_LEVELS.get(pick.lower())


def apply_service_log_level(args: argparse.Namespace) -> None:
    """A long-running service's logging: its --log-level, else RUST_LOG when VARPULIS_LOG
    is not set; waitress keeps its WARNING backlog messages but not its INFO chatter."""
    level = getattr(args, "server_log_level", None)
    if level is None and "VARPULIS_LOG" not in os.environ and os.environ.get("RUST_LOG"):
        level = _rust_log_level(os.environ["RUST_LOG"])
    if level:
        logging.getLogger().setLevel(getattr(logging, level.upper()))
    logging.getLogger("waitress").setLevel(max(logging.WARNING, logging.getLogger().level))


def add_service_log_level(p: argparse.ArgumentParser) -> None:
    """The subcommand-level ``--log-level`` of ``server`` and ``coordinator``."""
    p.add_argument(
        "--log-level",
        dest="server_log_level",
        default=None,
        choices=["debug", "info", "warning", "error"],
        help="log verbosity (same as the global flag) [env: VARPULIS_LOG, RUST_LOG]",
    )


def cmd_server(args: argparse.Namespace) -> int:
    """Run a worker: the REST API over a pipeline manager, until SIGINT/SIGTERM."""
    from varpulis.server import ServerConfig, run_server

    if bool(args.tls_cert) != bool(args.tls_key):
        given, missing = (
            ("--tls-cert", "--tls-key") if args.tls_cert else ("--tls-key", "--tls-cert")
        )
        print(f"varpulis server: {given} requires {missing}", file=sys.stderr)
        return EXIT_USAGE
    if args.heartbeat_interval <= 0:
        print("varpulis server: --heartbeat-interval must be > 0 seconds", file=sys.stderr)
        return EXIT_USAGE
    apply_service_log_level(args)
    config = ServerConfig(
        host=args.host,
        port=args.port,
        api_key=args.api_key or None,
        metrics=args.metrics,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        state_dir=args.state_dir,
        max_pipelines=args.max_pipelines,
        max_output_events=args.max_output_events,
        threads=args.threads,
        coordinator=args.coordinator or None,
        worker_id=args.worker_id or None,
        advertise_address=args.advertise_address or None,
        coordinator_key=args.coordinator_key or None,
        heartbeat_interval=args.heartbeat_interval,
    )
    return run_server(config)


def _env_flag(value: str | bool | None) -> bool:
    return str(value).lower() in ("1", "true", "yes", "on")


def add_server_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``varpulis server`` (the cluster flags are added by the cluster layer)."""
    p = sub.add_parser("server", help="run a worker: pipelines behind a REST API")
    p.add_argument(
        "--host",
        action=EnvDefault,
        envvar="VARPULIS_HOST",
        default="127.0.0.1",
        help="address to listen on",
    )
    p.add_argument(
        "--port",
        "-p",
        type=int,
        action=EnvDefault,
        envvar="VARPULIS_PORT",
        default=9000,
        help="TCP port; 0 picks a free one (the banner shows it)",
    )
    p.add_argument(
        "--api-key",
        action=EnvDefault,
        envvar="VARPULIS_API_KEY",
        help="require this x-api-key on /api/v1/* (default: API open)",
    )
    p.add_argument(
        "--metrics",
        action="store_const",
        const=True,
        default=_env_flag(os.environ.get("VARPULIS_METRICS")),
        help="serve Prometheus text at GET /metrics [env: VARPULIS_METRICS]",
    )
    p.add_argument(
        "--tls-cert",
        action=EnvDefault,
        envvar="VARPULIS_TLS_CERT",
        help="PEM certificate chain: serve HTTPS (needs --tls-key)",
    )
    p.add_argument(
        "--tls-key",
        action=EnvDefault,
        envvar="VARPULIS_TLS_KEY",
        help="PEM private key for --tls-cert",
    )
    p.add_argument(
        "--state-dir",
        action=EnvDefault,
        envvar="VARPULIS_STATE_DIR",
        help="persist deployed pipelines here; redeployed with the same ids at start",
    )
    p.add_argument(
        "--max-pipelines",
        type=int,
        action=EnvDefault,
        envvar="VARPULIS_MAX_PIPELINES",
        default=100,
        help="deploys beyond this answer 429 pipeline_limit_reached",
    )
    p.add_argument(
        "--max-output-events",
        type=int,
        action=EnvDefault,
        envvar="VARPULIS_MAX_OUTPUT_EVENTS",
        default=10_000,
        help="output events one inject response carries (then truncated: true)",
    )
    p.add_argument(
        "--threads",
        type=int,
        action=EnvDefault,
        envvar="VARPULIS_THREADS",
        default=8,
        help="HTTP worker threads",
    )
    _add_cluster_member_options(p)
    add_service_log_level(p)
    p.set_defaults(func=cmd_server)
    return p


def _add_cluster_member_options(p: argparse.ArgumentParser) -> None:
    """``varpulis server`` flags for joining a coordinator (DESIGN §2)."""
    g = p.add_argument_group("cluster membership (with --coordinator)")
    g.add_argument("--coordinator", action=EnvDefault, envvar="VARPULIS_COORDINATOR",
                   metavar="URL", help="register with this coordinator and heartbeat to it, "
                   "e.g. http://localhost:9100")  # fmt: skip
    g.add_argument("--worker-id", action=EnvDefault, envvar="VARPULIS_WORKER_ID",
                   help="stable worker name (default: a UUID, kept in --state-dir)")  # fmt: skip
    g.add_argument("--advertise-address", action=EnvDefault,
                   envvar="VARPULIS_ADVERTISE_ADDRESS", metavar="URL",
                   help="URL the coordinator calls this worker at (default: "
                   "http://HOST:PORT with the real port; 0.0.0.0 → this machine's IP)")  # fmt: skip
    g.add_argument("--coordinator-key", action=EnvDefault, envvar="VARPULIS_COORDINATOR_KEY",
                   help="x-api-key presented to the coordinator (default: --api-key)")  # fmt: skip
    g.add_argument("--heartbeat-interval", type=float, action=EnvDefault,
                   envvar="VARPULIS_HEARTBEAT_INTERVAL", default=5.0, metavar="SECONDS",
                   help="seconds between heartbeats")  # fmt: skip


def cmd_broker(args: argparse.Namespace) -> int:
    """Run an MQTT broker (mosquitto, else embedded amqtt) until SIGINT/SIGTERM."""
    import signal
    import threading

    from varpulis.connectors.broker import start_broker

    handle = start_broker(args.kind, host=args.host, port=args.port)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    print(f"varpulis broker ({handle.kind}) listening on {handle.url}", flush=True)
    try:
        while not stop.wait(0.5):
            if not handle.running:
                print(f"broker exited; output:\n{handle.output()}", file=sys.stderr)
                return EXIT_ERROR
    finally:
        handle.stop()
    return EXIT_OK


def add_broker_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``varpulis broker``."""
    p = sub.add_parser("broker", help="run an MQTT broker (mosquitto if installed, else embedded)")
    p.add_argument("--host", action=EnvDefault, envvar="VARPULIS_BROKER_HOST",
                   default="127.0.0.1", help="address to listen on")  # fmt: skip
    p.add_argument("--port", type=int, action=EnvDefault, envvar="VARPULIS_BROKER_PORT",
                   default=1883,
                   help="TCP port; 0 picks a free one (the banner shows it)")  # fmt: skip
    p.add_argument("--kind", action=EnvDefault, envvar="VARPULIS_BROKER_KIND", default="auto",
                   choices=["auto", "mosquitto", "embedded"],
                   help="auto: mosquitto if installed, else the embedded amqtt broker")  # fmt: skip
    p.set_defaults(func=cmd_broker)
    return p


def _add_run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--flush-at-end",
        action="store_true",
        help="close open windows after the last event (default: leave them open)",
    )
    p.add_argument("--step-budget", type=int, action=EnvDefault, envvar="VARPULIS_STEP_BUDGET",
                   default=10**8, help="while-loop iterations one fn call may run")  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="varpulis",
        description="Varpulis: streaming complex-event processing with the VPL language.",
    )
    parser.add_argument("--version", action="version", version=f"varpulis {__version__}")
    parser.add_argument(
        "--log-level",
        action=EnvDefault,
        envvar="VARPULIS_LOG",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="log verbosity",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    check = sub.add_parser("check", help="parse and validate VPL files")
    check.add_argument("files", nargs="+", metavar="FILE", help="VPL files ('-' reads stdin)")
    check.set_defaults(func=cmd_check)

    parse = sub.add_parser("parse", help="print the AST of a VPL file as JSON")
    parse.add_argument("file", metavar="FILE", help="a VPL file ('-' reads stdin)")
    parse.add_argument("--spans", action="store_true", help="include source spans")
    parse.set_defaults(func=cmd_parse)

    run = sub.add_parser("run", help="run a VPL program over events")
    run.add_argument("program", metavar="PROGRAM.vpl")
    run.add_argument("--events", metavar="FILE", help=".evt or .jsonl event file ('-': stdin)")
    _add_run_options(run)
    run.set_defaults(func=cmd_run)

    sim = sub.add_parser("simulate", help="replay an event file through a VPL program")
    sim.add_argument("--program", "-p", required=True, metavar="PROGRAM.vpl")
    sim.add_argument("--events", "-e", required=True, metavar="FILE",
                     help=".evt or .jsonl event file ('-': stdin)")  # fmt: skip
    sim.add_argument("--immediate", action="store_true", help="ignore BATCH/@ pacing")
    sim.add_argument("--preload", action="store_true", help="read all events before starting")
    sim.add_argument("--quiet", "-q", action="store_true", help="do not print output events")
    sim.add_argument("--output", "-o", metavar="FILE.jsonl", help="write output events here")
    _add_run_options(sim)
    sim.set_defaults(func=cmd_simulate)

    add_server_parser(sub)
    add_broker_parser(sub)
    from varpulis.cluster.cli import add_coordinator_parser

    add_coordinator_parser(sub)
    from varpulis.supervisor import add_cluster_parser

    add_cluster_parser(sub, EnvDefault)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the process exit code."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, str(args.log_level).upper(), logging.INFO),
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return args.func(args)
    except VPLError as exc:
        print(exc.render(), file=sys.stderr)
        return EXIT_INVALID
    except VarpulisError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
