"""``varpulis server``: a worker that runs VPL pipelines behind a REST API.

:func:`start_worker` builds the pipeline manager (restoring ``--state-dir``), the
bottle app and a waitress server, and returns a running :class:`WorkerServer`
(used in-process by tests and by the CLI alike). :func:`run_server` is the CLI
body: it starts a worker, prints the banner (stdout, flushed; the ``API:`` line
carries the real URL, also for ``--port 0``), then waits for SIGINT/SIGTERM and
shuts down gracefully: stop accepting, finish in-flight requests, close every
pipeline and its sinks. With ``--coordinator`` the worker also runs a
:class:`~varpulis.server.registration.Registration` thread, started once the
HTTP server listens (so the coordinator can call back at once) and stopped
first on shutdown; it never deregisters (a stopped worker turns unhealthy at
the coordinator, whose failover moves its pipelines).
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from dataclasses import dataclass

from varpulis.server.app import make_worker_app
from varpulis.server.pipelines import PipelineManager, RuntimeFactory, default_runtime
from varpulis.server.registration import (
    Registration,
    RegistrationConfig,
    advertise_address,
    manager_status,
    stable_worker_id,
)
from varpulis.web import ServerHandle, TlsConfig, serve, wait_for_shutdown

__all__ = [
    "ServerConfig",
    "WorkerServer",
    "make_registration",
    "run_server",
    "start_worker",
]

logger = logging.getLogger("varpulis")


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """Everything ``varpulis server`` is configured with (the CLI flags)."""

    host: str = "127.0.0.1"
    port: int = 9000
    api_key: str | None = None
    metrics: bool = False
    tls_cert: str | None = None
    tls_key: str | None = None
    state_dir: str | None = None
    max_pipelines: int = 100
    max_output_events: int = 10_000
    threads: int = 8
    #: Cluster membership (DESIGN §2): none of it is used without ``coordinator``.
    coordinator: str | None = None
    worker_id: str | None = None  # None: a UUID (kept in --state-dir when there is one)
    advertise_address: str | None = None  # None: http(s)://<host>:<real port>
    coordinator_key: str | None = None  # None: the worker's own api_key
    heartbeat_interval: float = 5.0
    registration_backoff: tuple[float, float] = (1.0, 30.0)


class WorkerServer:
    """A running worker: ``handle`` (url, port), ``manager``, and ``registration``
    (None without a coordinator); ``close()`` is graceful."""

    def __init__(self, config: ServerConfig, handle: ServerHandle, manager: PipelineManager,
                 registration: Registration | None = None) -> None:  # fmt: skip
        self.config, self.handle, self.manager = config, handle, manager
        self.registration = registration

    @property
    def url(self) -> str:
        return self.handle.url

    def close(self, timeout: float = 10.0) -> None:
        """Stop heartbeating, stop accepting, let in-flight requests finish (≤ *timeout* s),
        close pipelines."""
        if self.registration is not None:
            self.registration.stop(timeout=min(timeout, 2.0))
        self.handle.close(timeout)
        self.manager.close()


def make_registration(config: ServerConfig, handle: ServerHandle,
                      manager: PipelineManager) -> Registration:  # fmt: skip
    """The (not yet started) registration thread of a worker listening on *handle*."""
    assert config.coordinator is not None
    address = config.advertise_address or advertise_address(
        config.host, handle.port, tls=bool(config.tls_cert)
    )
    coordinator = config.coordinator.rstrip("/")
    if "://" not in coordinator:  # "localhost:9100" means plain HTTP
        coordinator = f"http://{coordinator}"
    settings = RegistrationConfig(
        coordinator=coordinator,
        worker_id=config.worker_id or stable_worker_id(config.state_dir),
        address=address,
        api_key=config.api_key,
        coordinator_key=config.coordinator_key or config.api_key,
        max_pipelines=config.max_pipelines,
        heartbeat_interval=config.heartbeat_interval,
        backoff=config.registration_backoff,
    )
    return Registration(settings, manager_status(manager))


def start_worker(
    config: ServerConfig, *, factory: RuntimeFactory = default_runtime, register: bool = True
) -> WorkerServer:
    """Start a worker as *config* says; raises OSError (port, TLS files) or ValueError.

    With ``config.coordinator`` the registration thread is created once the
    server listens, and started unless *register* is False (then the caller
    starts ``worker.registration`` itself, as :func:`run_server` does to log
    in the tutorial's order).
    """
    if bool(config.tls_cert) != bool(config.tls_key):
        message = "--tls-cert and --tls-key must be given together"
        raise ValueError(message)
    if config.heartbeat_interval <= 0:
        message = f"--heartbeat-interval must be > 0 seconds, got {config.heartbeat_interval!r}"
        raise ValueError(message)
    store = None
    if config.state_dir:
        from varpulis.server.persistence import StateStore

        store = StateStore(config.state_dir)
    manager = PipelineManager(factory=factory, max_pipelines=config.max_pipelines,
                              max_outputs=config.max_output_events, store=store)  # fmt: skip
    if store is not None:
        restored = manager.restore(store.load())
        if restored:
            logger.info("restored %d pipeline(s) from %s", len(restored), config.state_dir)
    started = time.monotonic()
    render = None
    if config.metrics:
        from varpulis.server import metrics

        registry = metrics.make_registry(manager, started)

        def render() -> tuple[bytes, str]:
            return metrics.render(registry), metrics.CONTENT_TYPE

    app = make_worker_app(manager, api_key=config.api_key, metrics=render, started=started)
    tls = TlsConfig(config.tls_cert, config.tls_key) if config.tls_cert else None  # type: ignore[arg-type]
    try:
        handle = serve(app, config.host, config.port, tls=tls, threads=config.threads)
    except BaseException:
        manager.close()
        raise
    registration = None
    if config.coordinator:
        registration = make_registration(config, handle, manager)
        if register:
            registration.start()
    return WorkerServer(config, handle, manager, registration)


def _banner(worker: WorkerServer) -> str:
    c = worker.config
    auth = "enabled (API key required)" if c.api_key else "disabled (no --api-key: API is open)"
    state = c.state_dir or "in-memory (no --state-dir)"
    metrics = f"{worker.url}/metrics" if c.metrics else "disabled"
    lines = [
        "Varpulis Server",
        "=" * 23,
        f"API:       {worker.url}/api/v1/",
        f"Health:    {worker.url}/health",
        f"Auth:      {auth}",
        f"TLS:       {'enabled' if c.tls_cert else 'disabled'}",
        f"State:     {state}",
        f"Metrics:   {metrics}",
        f"Pipelines: {len(worker.manager)} running (max {c.max_pipelines})",
    ]
    reg = worker.registration
    if reg is not None:
        r = reg.config
        lines.append(f"Cluster:   worker '{r.worker_id}' at {r.address} -> {r.coordinator}")
    return "\n".join(lines)


def run_server(config: ServerConfig, *, stop: threading.Event | None = None) -> int:
    """Run a worker until SIGINT/SIGTERM (or *stop* is set); return the exit code."""
    stop = stop or threading.Event()
    worker = start_worker(config, register=False)
    # Decoding a 10,000-event batch allocates ~50,000 objects: with the default
    # thresholds that triggers collections which walk the whole heap (grammar,
    # engines) and cost ~25 % of batch throughput. Startup objects are frozen
    # out of collection and young collections run less often; this process is
    # a server, so the global setting is ours to choose.
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)

    def ready() -> None:
        print(_banner(worker), flush=True)
        handle = worker.handle
        if worker.registration is not None:
            worker.registration.announce()
        logger.info("Server listening on %s:%d", handle.host, handle.port)
        if worker.registration is not None:
            worker.registration.start()

    try:
        status = wait_for_shutdown(worker.handle, stop, logger, ready=ready)
    finally:
        worker.close()
    if status:
        return status
    logger.info("server stopped")
    return 0
