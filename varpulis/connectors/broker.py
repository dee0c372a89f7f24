"""Start an MQTT broker the project controls: mosquitto if installed, else embedded amqtt.

:func:`start_broker` runs the broker as a **child process** (mosquitto with a
generated config file in a temporary directory, or ``python -m
varpulis.connectors.broker`` serving the pure-Python amqtt broker), listening
only on the given host and port; port 0 picks a free port first. It returns
once the broker accepts TCP connections (or raises :class:`BrokerError` at the
deadline, with the child's output). The returned :class:`BrokerHandle` stops
the child (SIGTERM, then SIGKILL after a grace period), can :meth:`restart`
it on the same port and directory (mosquitto with ``persistence=True`` then
keeps its sessions), and is a context manager. Nothing here touches a broker
already running on the machine. No thread is started; the child's output goes
to a log file in the temporary directory.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from varpulis.errors import VarpulisError

__all__ = [
    "BROKER_KINDS",
    "BrokerError",
    "BrokerHandle",
    "find_mosquitto",
    "free_port",
    "resolve_kind",
    "start_broker",
    "terminate",
]

logger = logging.getLogger("varpulis.connectors.broker")

BROKER_KINDS = ("auto", "mosquitto", "embedded")
_MOSQUITTO_PATHS = (
    "/usr/sbin/mosquitto",
    "/usr/local/sbin/mosquitto",
    "/opt/homebrew/sbin/mosquitto",
)


class BrokerError(VarpulisError):
    """A broker could not be started (binary missing, port busy, did not come up)."""

    code, http_status = "broker_error", 500


def find_mosquitto() -> str | None:
    """Return the path of the mosquitto binary ($PATH, then the usual sbin dirs), or None."""
    found = shutil.which("mosquitto")
    if found:
        return found
    return next((p for p in _MOSQUITTO_PATHS if os.access(p, os.X_OK)), None)


def _amqtt_available() -> bool:
    try:
        import amqtt.broker  # noqa: F401
    except ImportError:
        return False
    return True


def resolve_kind(kind: str) -> str:
    """Map ``auto`` to ``mosquitto`` or ``embedded``; check the choice is usable."""
    if kind not in BROKER_KINDS:
        msg = f"unknown broker kind {kind!r} (choose from {', '.join(BROKER_KINDS)})"
        raise BrokerError(msg)
    if kind == "auto":
        if find_mosquitto():
            return "mosquitto"
        kind = "embedded"
    if kind == "mosquitto" and not find_mosquitto():
        msg = "broker kind 'mosquitto': no mosquitto binary on $PATH or in /usr/sbin"
        raise BrokerError(msg)
    if kind == "embedded" and not _amqtt_available():
        msg = "broker kind 'embedded' needs amqtt: pip install 'varpulis[broker]'"
        raise BrokerError(msg)
    return kind


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port that was free on *host* a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        # ignore TIME_WAIT sockets, as the brokers themselves do
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _accepts(host: str, port: int, timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _mosquitto_config(host: str, port: int, workdir: Path, persistence: bool) -> str:
    # max_queued_messages 0: a slow subscriber must not make the broker drop
    # QoS 0 messages (mosquitto 2 drops beyond 1000 queued per client).
    lines = [
        f"listener {port} {host}",
        "allow_anonymous true",
        "max_queued_messages 0",
        "max_inflight_messages 0",
        "set_tcp_nodelay true",
        f"persistence {'true' if persistence else 'false'}",
        "log_type error",
        "log_type warning",
        "log_dest stderr",
    ]
    if persistence:
        lines += [f"persistence_location {workdir}/", "autosave_interval 0"]
    return "\n".join(lines) + "\n"


class BrokerHandle:
    """A broker child process: ``host``, ``port``, ``kind``, ``url``; :meth:`stop` ends it."""

    def __init__(self, kind: str, host: str, port: int, *, persistence: bool = False,
                 start_timeout: float = 10.0) -> None:  # fmt: skip
        self.kind, self.host, self.port = kind, host, port
        self.persistence = persistence
        self.start_timeout = start_timeout
        self.workdir = Path(tempfile.mkdtemp(prefix=f"varpulis-broker-{kind}-"))
        self.process: subprocess.Popen[bytes] | None = None
        self._log: Any = None

    @property
    def url(self) -> str:
        """``mqtt://host:port``."""
        return f"mqtt://{self.host}:{self.port}"

    def _command(self) -> list[str]:
        if self.kind == "mosquitto":
            conf = self.workdir / "mosquitto.conf"
            conf.write_text(_mosquitto_config(self.host, self.port, self.workdir, self.persistence))
            return [find_mosquitto() or "mosquitto", "-c", str(conf)]
        return [sys.executable, "-m", "varpulis.connectors.broker", self.host, str(self.port)]

    def output(self) -> str:
        """What the broker process printed so far (its log file)."""
        path = self.workdir / "broker.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def start(self) -> BrokerHandle:
        """Launch the child; wait until it accepts connections (BrokerError at the deadline)."""
        if self.process is not None and self.process.poll() is None:
            return self
        # A broker already listening there would pass the readiness probe below.
        if not _port_free(self.host, self.port):
            msg = (f"{self.kind} broker: port {self.port} on {self.host} is already in use "
                   f"(choose another --port, or 0 for a free one)")  # fmt: skip
            raise BrokerError(msg)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._log = open(self.workdir / "broker.log", "ab")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            self._command(), stdout=self._log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, cwd=self.workdir,
        )  # fmt: skip
        deadline = time.monotonic() + self.start_timeout
        while not _accepts(self.host, self.port):
            if self.process.poll() is not None or time.monotonic() >= deadline:
                why = (f"exited with status {self.process.returncode}"
                       if self.process.poll() is not None else
                       f"not accepting connections after {self.start_timeout} s")  # fmt: skip
                out = self.output()
                self._terminate()
                msg = f"{self.kind} broker on {self.host}:{self.port} {why}; output:\n{out}"
                raise BrokerError(msg)
            time.sleep(0.02)
        logger.info("%s broker listening on %s", self.kind, self.url)
        return self

    def _terminate(self, grace: float = 5.0) -> None:
        if self.process is not None:
            terminate(self.process, grace)
        if self._log is not None:
            self._log.close()
            self._log = None

    def stop(self, grace: float = 5.0, *, keep_workdir: bool = False) -> None:
        """Stop the broker (SIGTERM, SIGKILL after *grace* s); idempotent."""
        self._terminate(grace)
        if not keep_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def restart(self) -> BrokerHandle:
        """Stop and start again on the same host, port and directory (keeps persistence)."""
        self._terminate()
        return self.start()

    @property
    def running(self) -> bool:
        """True while the child process lives."""
        return self.process is not None and self.process.poll() is None

    def __enter__(self) -> BrokerHandle:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:  # fmt: skip
        self.stop()

    def __repr__(self) -> str:
        return f"BrokerHandle({self.kind!r}, {self.url!r}, running={self.running})"


def terminate(proc: subprocess.Popen[Any], grace: float = 5.0) -> None:
    """Stop a child: SIGTERM, then SIGKILL after *grace* seconds; a no-op once it exited."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def start_broker(kind: str = "auto", host: str = "127.0.0.1", port: int = 0, *,
                 persistence: bool = False, start_timeout: float = 10.0,
                 attempts: int = 3) -> BrokerHandle:  # fmt: skip
    """Start a broker of *kind* (``auto``/``mosquitto``/``embedded``) on *host*:*port*.

    Port 0 picks a free port (retried up to *attempts* times if another
    process takes it first); the handle reports the real one. Raises
    :class:`BrokerError` if the kind is unusable or the broker does not accept
    connections within *start_timeout* seconds.
    """
    real = resolve_kind(kind)
    last: BrokerError | None = None
    for _ in range(attempts if port == 0 else 1):
        handle = BrokerHandle(real, host, port or free_port(host), persistence=persistence,
                              start_timeout=start_timeout)  # fmt: skip
        try:
            return handle.start()
        except BrokerError as exc:
            handle.stop()
            last = exc
    assert last is not None
    raise last


# --------------------------------------------------------------------------- embedded


def _amqtt_config(host: str, port: int) -> dict[str, Any]:
    return {
        "listeners": {"default": {"type": "tcp", "bind": f"{host}:{port}"}},
        "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
    }


async def serve_embedded(
    host: str, port: int, stop: asyncio.Event | None = None, shutdown_timeout: float = 1.0
) -> None:
    """Run the amqtt broker on *host*:*port* until *stop* is set (or forever)."""
    from amqtt.broker import Broker

    broker = Broker(_amqtt_config(host, port))
    await broker.start()
    try:
        await (stop or asyncio.Event()).wait()
    finally:
        # amqtt waits up to 5 s for its broadcast loop when clients are connected
        try:
            await asyncio.wait_for(broker.shutdown(), shutdown_timeout)
        except asyncio.TimeoutError:
            logger.warning("embedded broker: shutdown took over %.1f s; exiting", shutdown_timeout)


def _main(argv: list[str]) -> int:
    """``python -m varpulis.connectors.broker HOST PORT``: serve amqtt until SIGTERM/SIGINT."""
    host, port = argv[0], int(argv[1])
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await serve_embedded(host, port, stop)

    asyncio.run(run())
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
