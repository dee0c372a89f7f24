"""``varpulis cluster up``: a coordinator, N workers (and a broker) with one command.

The supervisor starts every member as a child process running this same
``varpulis`` (``python -m varpulis coordinator|server``), so a member behaves
exactly as when started by hand. It reads each child's banner for its real
URL (ports may be 0), waits until every worker is registered and ``ready`` at
the coordinator, prints a table of endpoints, forwards the children's output
prefixed with their names, restarts a child that exits with exponential
backoff (same port, same worker id: the coordinator reconciles it), and stops
everything on SIGINT/SIGTERM (children get SIGTERM, then SIGKILL after a
grace period). ``varpulis cluster status`` prints the coordinator's view.

Nothing here imports the coordinator or the worker: they are reached over
their command lines and REST APIs only.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

import requests

from varpulis.connectors.broker import start_broker, terminate

__all__ = ["Cluster", "ClusterConfig", "Member", "backoff_delay", "main_status", "main_up"]

_API_LINE = re.compile(r"^API:\s+(https?://[^/\s]+)")


def backoff_delay(restarts: int, first: float = 1.0, cap: float = 30.0) -> float:
    """Seconds to wait before restart number *restarts* (0-based): 1, 2, 4 … *cap*."""
    return min(cap, first * 2 ** min(restarts, 16))


class Member:
    """One supervised child: its command, its banner URL, its output, its restarts.

    ``argv`` is the command after ``python -m varpulis``; ``pin_port`` rewrites
    ``--port 0`` to the port the first run reported, so a restart comes back
    at the same address. Output lines go to *out* prefixed with the name.
    """

    def __init__(self, name: str, argv: Sequence[str], *, out: TextIO | None = None,
                 env: dict[str, str] | None = None) -> None:  # fmt: skip
        self.name = name
        self.argv = list(argv)
        self.out = out if out is not None else sys.stdout
        # children stop by themselves when this process is gone, even killed (web.py)
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1",
                    "VARPULIS_SUPERVISOR_PID": str(os.getpid()), **(env or {})}  # fmt: skip
        self.proc: subprocess.Popen[str] | None = None
        self.url: str | None = None
        self.restarts = 0
        self.next_start = 0.0
        self._url_seen = threading.Event()
        self._lock = threading.Lock()

    def start(self) -> None:
        """Start (or restart) the child; its banner URL is awaited with :meth:`wait_url`."""
        self._url_seen.clear()
        cmd = [sys.executable, "-m", "varpulis", *self.argv]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, env=self.env, start_new_session=True)  # fmt: skip
        threading.Thread(target=self._pump, args=(self.proc,), daemon=True,
                         name=f"output-{self.name}").start()  # fmt: skip

    def _pump(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            match = _API_LINE.match(line)
            if match and not self._url_seen.is_set():
                self.url = match.group(1)
                self._pin_port(self.url)
                self._url_seen.set()
            with self._lock:
                self.out.write(f"{self.name:<12}| {line}")
                self.out.flush()

    def _pin_port(self, url: str) -> None:
        port = url.rsplit(":", 1)[-1]
        if "--port" in self.argv:
            at = self.argv.index("--port") + 1
            if self.argv[at] == "0":
                self.argv[at] = port

    def wait_url(self, timeout: float) -> str:
        """The URL from the banner; raises TimeoutError (or RuntimeError if it exited)."""
        deadline = time.monotonic() + timeout
        while not self._url_seen.wait(0.05):
            if self.proc is not None and self.proc.poll() is not None:
                message = f"{self.name} exited with status {self.proc.returncode} before its banner"
                raise RuntimeError(message)
            if time.monotonic() >= deadline:
                message = f"{self.name} printed no banner within {timeout} s"
                raise TimeoutError(message)
        assert self.url is not None
        return self.url

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after *grace* seconds; idempotent."""
        if self.proc is not None:
            terminate(self.proc, grace)


@dataclass(frozen=True, slots=True)
class ClusterConfig:
    """What ``varpulis cluster up`` starts (its flags)."""

    workers: int = 4
    host: str = "127.0.0.1"
    port: int = 9100
    base_port: int = 9000
    api_key: str | None = "admin"
    worker_key: str | None = "test"
    broker: str = "none"
    broker_port: int = 1883
    heartbeat_interval: float = 5.0
    heartbeat_timeout: float = 15.0
    ready_timeout: float = 60.0
    extra_worker_args: tuple[str, ...] = field(default_factory=tuple)


class Cluster:
    """A coordinator, its workers and optionally a broker, as child processes."""

    def __init__(self, config: ClusterConfig, *, out: TextIO | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:  # fmt: skip
        self.config = config
        self.out = out if out is not None else sys.stdout
        self.clock = clock
        self.broker: Any = None
        self.coordinator: Member | None = None
        self.workers: list[Member] = []
        self.session = requests.Session()
        if config.api_key:
            self.session.headers["x-api-key"] = config.api_key

    # ------------------------------------------------------------------ start

    def start(self) -> None:
        """Start every member and return once all workers are ready at the coordinator."""
        c = self.config
        if c.broker != "none":
            self.broker = start_broker(c.broker, host=c.host, port=c.broker_port)
        coordinator = ["coordinator", "--host", c.host, "--port", str(c.port),
                       "--heartbeat-interval", f"{c.heartbeat_interval:g}",
                       "--heartbeat-timeout", f"{c.heartbeat_timeout:g}"]  # fmt: skip
        if c.api_key:
            coordinator += ["--api-key", c.api_key]
        if c.worker_key:
            coordinator += ["--worker-key", c.worker_key]
        self.coordinator = Member("coordinator", coordinator, out=self.out)
        self.coordinator.start()
        coordinator_url = self.coordinator.wait_url(c.ready_timeout)
        for i in range(c.workers):
            port = 0 if c.base_port == 0 else c.base_port + i
            argv = ["server", "--host", c.host, "--port", str(port),
                    "--coordinator", coordinator_url, "--worker-id", f"worker-{i}",
                    "--heartbeat-interval", f"{c.heartbeat_interval:g}"]  # fmt: skip
            if c.worker_key:
                argv += ["--api-key", c.worker_key]
            member = Member(f"worker-{i}", [*argv, *c.extra_worker_args], out=self.out)
            member.start()
            self.workers.append(member)
        for member in self.workers:
            member.wait_url(c.ready_timeout)
        self.wait_ready(c.ready_timeout)

    def worker_states(self) -> dict[str, str]:
        """``{worker id: status}`` as the coordinator reports it."""
        assert self.coordinator is not None and self.coordinator.url is not None
        url = f"{self.coordinator.url}/api/v1/cluster/workers"
        response = self.session.get(url, timeout=5)
        response.raise_for_status()
        return {w["id"]: w["status"] for w in response.json()["workers"]}

    def wait_ready(self, timeout: float) -> None:
        """Poll the coordinator until every worker is ``ready``; TimeoutError at the deadline."""
        deadline = self.clock() + timeout
        wanted = {m.name for m in self.workers}
        states: dict[str, str] = {}
        while True:
            try:
                states = self.worker_states()
                if all(states.get(name) == "ready" for name in wanted):
                    return
            except (requests.RequestException, ValueError, KeyError):
                pass
            if self.clock() >= deadline:
                message = f"workers not ready within {timeout} s: {states or 'no answer'}"
                raise TimeoutError(message)
            time.sleep(0.05)

    def table(self) -> str:
        """The endpoints, one line per member."""
        rows = [("coordinator", self.coordinator.url if self.coordinator else "-", "")]
        rows += [(m.name, m.url or "-", "ready") for m in self.workers]
        if self.broker is not None:
            rows.append(("broker", self.broker.url, self.broker.kind))
        width = max(len(r[1]) for r in rows)
        lines = ["Varpulis Cluster", "=" * 23]
        lines += [f"{name:<12} {url:<{width}}  {note}".rstrip() for name, url, note in rows]
        if self.coordinator and self.coordinator.url:
            lines.append(f"Cluster API: {self.coordinator.url}/api/v1/cluster/")
        return "\n".join(lines)

    # ------------------------------------------------------------------ run

    def supervise(self, now: float) -> list[str]:
        """Restart members that exited, with backoff; return the names restarted now."""
        restarted = []
        for member in [m for m in (self.coordinator, *self.workers) if m is not None]:
            if member.alive:
                continue
            if member.next_start == 0.0:
                delay = backoff_delay(member.restarts)
                member.next_start = now + delay
                code = member.proc.returncode if member.proc else None
                self._say(f"{member.name} exited (status {code}); restarting in {delay:.0f} s")
                continue
            if now >= member.next_start:
                member.restarts += 1
                member.next_start = 0.0
                member.start()
                restarted.append(member.name)
        return restarted

    def run(self, stop: threading.Event) -> None:
        """Supervise until *stop* is set."""
        while not stop.wait(0.5):
            self.supervise(self.clock())

    def close(self, grace: float = 10.0) -> None:
        """Stop workers, then the coordinator, then the broker."""
        for member in self.workers:
            member.stop(grace)
        if self.coordinator is not None:
            self.coordinator.stop(grace)
        if self.broker is not None:
            self.broker.stop()
        self.session.close()

    def _say(self, text: str) -> None:
        self.out.write(f"{'cluster':<12}| {text}\n")
        self.out.flush()


# --------------------------------------------------------------------------- CLI


def main_up(config: ClusterConfig, *, stop: threading.Event | None = None) -> int:
    """Run ``varpulis cluster up`` until SIGINT/SIGTERM (or *stop*); return the exit code."""
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
    cluster = Cluster(config)
    try:
        try:
            cluster.start()
        except (TimeoutError, RuntimeError, OSError) as exc:
            print(f"varpulis cluster: {exc}", file=sys.stderr)
            return 1
        print(cluster.table(), flush=True)
        cluster.run(stop)
    finally:
        cluster.close()
    return 0


def main_status(url: str, api_key: str | None, *, out: TextIO | None = None) -> int:
    """Print the coordinator's workers and groups; 1 when it cannot be reached."""
    out = out if out is not None else sys.stdout
    headers = {"x-api-key": api_key} if api_key else {}
    try:
        workers = requests.get(f"{url}/api/v1/cluster/workers", headers=headers, timeout=10)
        topology = requests.get(f"{url}/api/v1/cluster/topology", headers=headers, timeout=10)
        workers.raise_for_status()
        topology.raise_for_status()
    except requests.RequestException as exc:
        print(f"varpulis cluster status: {url}: {exc}", file=sys.stderr)
        return 1
    print(f"{'WORKER':<20} {'STATUS':<10} {'PIPELINES':>9}  ADDRESS", file=out)
    for w in workers.json().get("workers", []):
        running = f"{w.get('pipelines_running', 0)}/{w.get('max_pipelines', '?')}"
        print(f"{w['id']:<20} {w['status']:<10} {running:>9}  {w['address']}", file=out)
    for group in topology.json().get("groups", []):
        print(f"\ngroup {group['group_name']} ({group['group_id']})", file=out)
        for p in group.get("pipelines", []):
            print(f"  {p['name']:<24} on {p['worker_id']} {p['worker_address']}", file=out)
    return 0


def add_cluster_parser(sub: argparse._SubParsersAction, env_default: type) -> None:
    """Register ``varpulis cluster up|status`` (*env_default*: the CLI's EnvDefault action)."""
    p = sub.add_parser("cluster", help="start a local cluster or show a coordinator's view")
    csub = p.add_subparsers(dest="cluster_command", metavar="ACTION")
    csub.required = True
    up = csub.add_parser("up", help="start a coordinator and N workers; Ctrl-C stops them")

    def opt(parser: argparse.ArgumentParser, flag: str, env: str, help_: str, **kw: Any) -> None:
        parser.add_argument(flag, action=env_default, envvar=env, help=help_, **kw)

    opt(up, "--workers", "VARPULIS_WORKERS", "number of workers", type=int, default=4)
    opt(up, "--host", "VARPULIS_HOST", "address every member listens on", default="127.0.0.1")
    opt(up, "--port", "VARPULIS_COORDINATOR_PORT", "coordinator port (0: free port)",
        type=int, default=9100)  # fmt: skip
    opt(up, "--base-port", "VARPULIS_BASE_PORT",
        "worker i listens on BASE_PORT + i (0: free ports)", type=int, default=9000)  # fmt: skip
    opt(up, "--api-key", "VARPULIS_API_KEY", "the coordinator's API key", default="admin")
    opt(up, "--worker-key", "VARPULIS_WORKER_KEY",
        "the workers' API key (also accepted by the coordinator for registration)",
        default="test")  # fmt: skip
    opt(up, "--broker", "VARPULIS_BROKER", "MQTT broker to start alongside", default="none",
        choices=["auto", "mosquitto", "embedded", "none"])  # fmt: skip
    opt(up, "--broker-port", "VARPULIS_BROKER_PORT", "MQTT broker port", type=int, default=1883)
    opt(up, "--heartbeat-interval", "VARPULIS_HEARTBEAT_INTERVAL", "seconds between heartbeats",
        type=float, default=5.0)  # fmt: skip
    opt(up, "--heartbeat-timeout", "VARPULIS_HEARTBEAT_TIMEOUT",
        "seconds without heartbeat before a worker is unhealthy", type=float,
        default=15.0)  # fmt: skip
    opt(up, "--ready-timeout", "VARPULIS_READY_TIMEOUT",
        "seconds to wait for every worker to be ready", type=float, default=60.0)  # fmt: skip
    up.set_defaults(func=_cmd_up)

    status = csub.add_parser("status", help="print the coordinator's workers and groups")
    opt(status, "--coordinator", "VARPULIS_COORDINATOR", "coordinator URL",
        default="http://127.0.0.1:9100")  # fmt: skip
    opt(status, "--api-key", "VARPULIS_API_KEY", "the coordinator's API key", default="admin")
    status.set_defaults(func=_cmd_status)


def _cmd_up(args: argparse.Namespace) -> int:
    config = ClusterConfig(
        workers=args.workers, host=args.host, port=args.port, base_port=args.base_port,
        api_key=args.api_key or None, worker_key=args.worker_key or None, broker=args.broker,
        broker_port=args.broker_port, heartbeat_interval=args.heartbeat_interval,
        heartbeat_timeout=args.heartbeat_timeout, ready_timeout=args.ready_timeout,
    )  # fmt: skip
    return main_up(config)


def _cmd_status(args: argparse.Namespace) -> int:
    return main_status(args.coordinator.rstrip("/"), args.api_key or None)
