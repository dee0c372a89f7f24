"""The worker's pipeline manager: deploy, list, get, delete, reload and inject.

A :class:`PipelineManager` owns the deployed :class:`Pipeline` objects. It is
thread-safe: one manager lock guards only the id → pipeline map (never held
while compiling or processing), and each pipeline has its own lock around its
runtime, so injects into different pipelines run in parallel while injects into
one pipeline are serialised (an engine belongs to one thread at a time).
Compiling a program (parse, validate, plan, build) happens outside every lock;
reload swaps the runtime under the pipeline lock only after the new source has
compiled, so a bad source leaves the old pipeline running. The runtime behind a
pipeline is a :class:`PipelineRuntime`, built by a factory; the default
(:func:`inline_runtime`) runs every stream in one inline Engine, and context
processes plug in here: :func:`default_runtime` picks a
:class:`~varpulis.runtime.contexts.ContextRuntime` (one child process per
context) when streams use declared contexts, and injects may then ask to
``wait`` for a flush barrier through every context. With a store, every deploy/delete/reload is
persisted (snapshot and write under one lock, so writes never go back in time).
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from varpulis.errors import BadRequest, PipelineLimitReached, PipelineNotFound, VarpulisError
from varpulis.events import Event, format_timestamp, to_api_json

__all__ = [
    "InlineRuntime",
    "InjectResult",
    "Pipeline",
    "PipelineLimitReached",
    "PipelineManager",
    "PipelineNotFound",
    "PipelineRuntime",
    "RuntimeFactory",
    "default_runtime",
    "inline_runtime",
    "runtime_factory",
]

logger = logging.getLogger(__name__)

MAX_NAME_LENGTH = 256


class PipelineRuntime(Protocol):
    """What runs a pipeline's program. Called under the pipeline's lock only.

    ``process``/``process_batch`` return the outputs produced inline during
    the call, in order; ``metrics`` returns the Engine-style counters;
    ``close`` releases sinks and any worker processes.
    """

    def process(self, event: Event) -> list[Event]: ...

    def process_batch(self, events: Sequence[Event]) -> list[Event]: ...

    def metrics(self) -> dict[str, Any]: ...

    def close(self) -> None: ...


#: Builds the runtime of a VPL source; raises VPLError for an invalid program.
RuntimeFactory = Callable[[str], PipelineRuntime]


class InlineRuntime:
    """Every stream of the program, whatever its context, in one inline Engine."""

    __slots__ = ("engine", "process", "process_batch", "warnings")

    def __init__(self, engine: Any, warnings: list[str]) -> None:
        self.engine = engine
        self.process = engine.process  # bound once: this is the inject hot path
        self.process_batch = engine.process_batch
        self.warnings = warnings

    def process_rows(
        self, event_type: str, rows: list[dict[str, Any]], timestamp: int, *, api: bool = False
    ) -> list[Any]:
        """``process_batch`` of ``Event(event_type, fields, timestamp)`` per dict of *rows*,
        without building the events when the engine's batch path takes them; with
        *api*, the outputs as REST output dicts (``to_api_json``)."""
        plan = getattr(self.engine, "batch_plan", None)
        if plan is not None:
            return plan.process_rows(event_type, rows, timestamp, api=api)
        outputs = self.engine.process_batch([Event(event_type, f, timestamp) for f in rows])
        return list(map(to_api_json, outputs)) if api else outputs

    def metrics(self) -> dict[str, Any]:
        return self.engine.metrics()

    def close(self) -> None:
        self.engine.close()


def inline_runtime(source: str) -> InlineRuntime:
    """Parse, validate, plan and build *source*; raises VPLError when it is invalid."""
    # Imported here so that importing the server package stays cheap.
    from varpulis.compiler.plan import plan_program
    from varpulis.lang import parse
    from varpulis.lang.validate import validate
    from varpulis.runtime.engine import Engine

    program = parse(source)
    warnings = [w.render(source) for w in validate(program)]
    return InlineRuntime(Engine(plan_program(program)), warnings)


def runtime_factory(transport: str = "ipc", **options: Any) -> RuntimeFactory:
    """A factory running context programs in child processes over *transport*
    (``ipc``, ``tcp``, or ``inproc`` for threads), others inline; *options* go
    to :class:`~varpulis.runtime.contexts.ContextRuntime`."""

    def build(source: str) -> PipelineRuntime:
        from varpulis.compiler.plan import plan_program
        from varpulis.lang import parse
        from varpulis.lang.validate import validate
        from varpulis.runtime.engine import Engine

        program = parse(source)
        warnings = [w.render(source) for w in validate(program)]
        plan = plan_program(program)
        if not any(s.context is not None for s in plan.streams):
            return InlineRuntime(Engine(plan), warnings)
        from varpulis.runtime.contexts import ContextRuntime

        return ContextRuntime(plan, transport=transport, warnings=warnings, **options)

    return build


def default_runtime(source: str) -> PipelineRuntime:
    """:func:`runtime_factory` with the transport of ``VARPULIS_CONTEXT_TRANSPORT``
    (default ``ipc``): contexts in child processes, everything else inline."""
    return runtime_factory(os.environ.get("VARPULIS_CONTEXT_TRANSPORT", "ipc"))(source)


@dataclass(eq=False)
class Pipeline:
    """One deployed pipeline. ``runtime`` is replaced by reload, under ``lock``."""

    id: str
    name: str
    source: str
    runtime: PipelineRuntime
    deployed_at_ns: int
    started: float
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    status: str = "running"
    #: The running ``.from(...)`` sources (connectors.sources.start_sources), fed by inject.
    sources: list[Any] = field(default_factory=list, repr=False)

    def info(self, now: float) -> dict[str, Any]:
        """The JSON view: id, name, status, source, uptime_secs, deployed_at."""
        return {
            "id": self.id,
            "name": self.name,
            "status": self.status,
            "source": self.source,
            "uptime_secs": int(now - self.started),
            "deployed_at": format_timestamp(self.deployed_at_ns),
        }

    def record(self) -> dict[str, Any]:
        """What persistence stores to redeploy this pipeline."""
        return {"id": self.id, "name": self.name, "source": self.source,
                "deployed_at_ns": self.deployed_at_ns}  # fmt: skip


@dataclass(slots=True)
class InjectResult:
    """Outputs of one inject call (capped), whether they were cut, how many went in.

    ``api``: the outputs are REST output dicts (``to_api_json``) already, not Events.
    """

    outputs: list[Any]
    truncated: bool
    accepted: int
    api: bool = False


class _Store(Protocol):
    def save(self, records: list[dict[str, Any]]) -> None: ...


class PipelineManager:
    """Deployed pipelines of one worker; every public method is thread-safe.

    ``max_pipelines`` bounds deploys (PipelineLimitReached); ``max_outputs``
    caps the output events one inject returns (the rest are dropped from the
    response, which says ``truncated``; sinks still get everything).
    ``clock`` (monotonic seconds) and ``wall_ns`` (epoch ns) are parameters
    for tests.
    """

    def __init__(
        self,
        *,
        factory: RuntimeFactory = default_runtime,
        max_pipelines: int = 100,
        max_outputs: int = 10_000,
        store: _Store | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self._factory = factory
        self.max_pipelines = max_pipelines
        self.max_outputs = max_outputs
        self._store = store
        self._clock, self._wall_ns = clock, wall_ns
        self._lock = threading.Lock()
        self._persist_lock = threading.Lock()
        self._pipelines: dict[str, Pipeline] = {}
        self._closed = False

    # ------------------------------------------------------------------ lifecycle

    def deploy(self, name: str, source: str, *, pipeline_id: str | None = None,
               deployed_at_ns: int | None = None, persist: bool = True) -> Pipeline:  # fmt: skip
        """Compile *source* and start it as a new pipeline (a fresh UUID unless given)."""
        _check_name(name)
        _check_source(source)
        with self._lock:
            self._check_room(pipeline_id)
        runtime = self._factory(source)  # VPLError → 400, before anything is registered
        pipeline = Pipeline(
            id=pipeline_id or str(uuid.uuid4()),
            name=name,
            source=source,
            runtime=runtime,
            deployed_at_ns=deployed_at_ns or self._wall_ns(),
            started=self._clock(),
        )
        with self._lock:
            try:
                self._check_room(pipeline_id)  # another deploy may have won the race
            except VarpulisError:
                runtime.close()
                raise
            self._pipelines[pipeline.id] = pipeline
        self._start_sources(pipeline)
        logger.info("pipeline %s (%r) deployed", pipeline.id, name)
        if persist:
            self._persist()
        return pipeline

    def _start_sources(self, pipeline: Pipeline) -> None:
        """Start the ``.from(...)`` sources of *pipeline*: each list of events they
        receive is injected (pipeline lock) with its MQTT publishes coalesced."""
        from varpulis.connectors.mqtt import coalesced
        from varpulis.connectors.sources import start_sources, stop_sources

        def feed(events: list[Event]) -> None:
            with coalesced():
                self.inject_batch(pipeline.id, events)

        try:
            pipeline.sources = start_sources(pipeline.runtime, feed)
        except VarpulisError as exc:  # e.g. .from() of a kind with no source: runs without
            logger.error("pipeline %s: its .from(...) sources did not start: %s", pipeline.id, exc)
        if pipeline.status == "stopped":  # deleted while they started
            stop_sources(pipeline.sources)

    def _check_room(self, pipeline_id: str | None) -> None:
        if self._closed:
            message = "the worker is shutting down"
            raise VarpulisError(message)
        if pipeline_id is not None and pipeline_id in self._pipelines:
            message = f"pipeline id {pipeline_id!r} is already deployed"
            raise BadRequest(message)
        if len(self._pipelines) >= self.max_pipelines:
            message = (f"this worker already runs {len(self._pipelines)} pipelines "
                       f"(--max-pipelines {self.max_pipelines}); delete one first")  # fmt: skip
            raise PipelineLimitReached(message)

    def delete(self, pipeline_id: str) -> None:
        """Remove the pipeline and close its runtime (waits for its in-flight inject)."""
        with self._lock:
            pipeline = self._pipelines.pop(pipeline_id, None)
        if pipeline is None:
            raise PipelineNotFound(pipeline_id)
        with pipeline.lock:
            pipeline.status = "stopped"
            _close_quietly(pipeline)
        _stop_sources(pipeline)  # outside the lock: their threads may be waiting for it
        logger.info("pipeline %s (%r) deleted", pipeline_id, pipeline.name)
        self._persist()

    def reload(self, pipeline_id: str, source: str) -> Pipeline:
        """Replace the program of a pipeline atomically; a bad *source* changes nothing."""
        _check_source(source)
        pipeline = self.get(pipeline_id)
        runtime = self._factory(source)  # raises before the swap
        with pipeline.lock:
            old, pipeline.runtime, pipeline.source = pipeline.runtime, runtime, source
            stopped = pipeline.status == "stopped"
        if stopped:  # deleted while we compiled
            runtime.close()
            raise PipelineNotFound(pipeline_id)
        try:
            old.close()
        except Exception:
            logger.exception("closing the replaced runtime of pipeline %s failed", pipeline_id)
        _stop_sources(pipeline)  # the new program's .from(...) may differ
        self._start_sources(pipeline)
        logger.info("pipeline %s (%r) reloaded", pipeline_id, pipeline.name)
        self._persist()
        return pipeline

    def restore(self, records: Iterable[dict[str, Any]]) -> list[str]:
        """Redeploy persisted pipelines with their ids; return the ids restored.

        A record that no longer compiles is logged and skipped.
        """
        restored = []
        for rec in records:
            try:
                self.deploy(rec["name"], rec["source"], pipeline_id=rec["id"],
                            deployed_at_ns=rec.get("deployed_at_ns"), persist=False)  # fmt: skip
            except (VarpulisError, KeyError, TypeError) as exc:
                logger.error("cannot restore pipeline %r: %s", rec.get("id"), exc)
                continue
            restored.append(rec["id"])
        return restored

    def close(self) -> None:
        """Refuse new deploys and close every pipeline (state on disk is kept)."""
        with self._lock:
            self._closed = True
            pipelines = list(self._pipelines.values())
            self._pipelines.clear()
        for pipeline in pipelines:
            with pipeline.lock:
                pipeline.status = "stopped"
                _close_quietly(pipeline)
            _stop_sources(pipeline)

    # ------------------------------------------------------------------ queries

    def get(self, pipeline_id: str) -> Pipeline:
        """The pipeline with this id, or PipelineNotFound."""
        pipeline = self._pipelines.get(pipeline_id)  # one dict read: atomic, no lock needed
        if pipeline is None:
            raise PipelineNotFound(pipeline_id)
        return pipeline

    def page(self, limit: int, offset: int) -> tuple[list[dict[str, Any]], int]:
        """One page of pipeline infos in deploy order, and the total count."""
        with self._lock:
            pipelines = list(self._pipelines.values())
        now = self._clock()
        return [p.info(now) for p in pipelines[offset : offset + limit]], len(pipelines)

    def info(self, pipeline_id: str) -> dict[str, Any]:
        return self.get(pipeline_id).info(self._clock())

    @property
    def closed(self) -> bool:
        """True once :meth:`close` has begun: the worker is shutting down."""
        return self._closed

    def __len__(self) -> int:
        return len(self._pipelines)

    def ids(self) -> list[str]:
        with self._lock:
            return list(self._pipelines)

    def metrics(self, pipeline_id: str) -> dict[str, Any]:
        """Counters of one pipeline (its own, not worker-wide)."""
        pipeline = self.get(pipeline_id)
        with pipeline.lock:
            counters = pipeline.runtime.metrics()
        return {
            "pipeline_id": pipeline_id,
            "events_in": counters["events_in"],
            "events_out": counters["events_out"],
            "errors": counters["errors"],
            # The original's names, for clients written against it.
            "events_processed": counters["events_in"],
            "output_events_emitted": counters["events_out"],
            "streams": counters["streams"],
        }

    def all_metrics(self) -> list[tuple[Pipeline, dict[str, Any]]]:
        """(pipeline, counters) of every pipeline, for the Prometheus collector."""
        with self._lock:
            pipelines = list(self._pipelines.values())
        out = []
        for pipeline in pipelines:
            with pipeline.lock:
                out.append((pipeline, pipeline.runtime.metrics()))
        return out

    # ------------------------------------------------------------------ events

    def inject(self, pipeline_id: str, event: Event, wait: bool = False) -> InjectResult:
        """Process one event; return its inline outputs (at most ``max_outputs``).

        With *wait*, a runtime with contexts returns every output (flush barrier)."""
        pipeline = self._pipelines.get(pipeline_id)
        if pipeline is None:
            raise PipelineNotFound(pipeline_id)
        with pipeline.lock:
            if pipeline.status == "stopped":
                raise PipelineNotFound(pipeline_id)
            runtime = pipeline.runtime
            if wait and getattr(runtime, "waits", False):
                outputs = runtime.process(event, wait=True)  # type: ignore[call-arg]
            else:
                outputs = runtime.process(event)
        return self._capped(outputs, 1)

    def inject_batch(self, pipeline_id: str, events: Sequence[Event],
                     wait: bool = False) -> InjectResult:  # fmt: skip
        """Process *events* in order, atomically with respect to other injects."""
        pipeline = self.get(pipeline_id)
        with pipeline.lock:
            if pipeline.status == "stopped":
                raise PipelineNotFound(pipeline_id)
            runtime = pipeline.runtime
            if wait and getattr(runtime, "waits", False):
                outputs = runtime.process_batch(events, wait=True)  # type: ignore[call-arg]
            else:
                outputs = runtime.process_batch(events)
        return self._capped(outputs, len(events))

    def inject_rows(self, pipeline_id: str, event_type: str, rows: list[dict[str, Any]],
                    timestamp: int, wait: bool = False) -> InjectResult:  # fmt: skip
        """:meth:`inject_batch` of ``Event(event_type, fields, timestamp)`` per dict of *rows*.

        The dicts become the events' fields (not copied). A runtime with a
        ``process_rows`` method takes them as they are (the columnar path of
        an inline engine); any other gets the events.
        """
        pipeline = self.get(pipeline_id)
        with pipeline.lock:
            if pipeline.status == "stopped":
                raise PipelineNotFound(pipeline_id)
            runtime = pipeline.runtime
            process_rows = getattr(runtime, "process_rows", None)
            if process_rows is not None and not (wait and getattr(runtime, "waits", False)):
                outputs = process_rows(event_type, rows, timestamp, api=True)
                return self._capped(outputs, len(rows), api=True)
            else:
                events = [Event(event_type, f, timestamp) for f in rows]
                if wait and getattr(runtime, "waits", False):
                    outputs = runtime.process_batch(events, wait=True)  # type: ignore[call-arg]
                else:
                    outputs = runtime.process_batch(events)
        return self._capped(outputs, len(rows))

    def _capped(self, outputs: list[Any], accepted: int, *, api: bool = False) -> InjectResult:
        cap = self.max_outputs
        if len(outputs) > cap:
            return InjectResult(outputs[:cap], True, accepted, api)
        return InjectResult(outputs, False, accepted, api)

    # ------------------------------------------------------------------ persistence

    def records(self) -> list[dict[str, Any]]:
        with self._lock:
            return [p.record() for p in self._pipelines.values()]

    def _persist(self) -> None:
        if self._store is None:
            return
        # Snapshot and write under one lock: a slower writer cannot overwrite
        # a newer snapshot with an older one.
        with self._persist_lock:
            try:
                self._store.save(self.records())
            except OSError as exc:
                logger.error("cannot persist pipelines: %s", exc)


def _stop_sources(pipeline: Pipeline) -> None:
    if pipeline.sources:
        from varpulis.connectors.sources import stop_sources

        stop_sources(pipeline.sources)


def _close_quietly(pipeline: Pipeline) -> None:
    try:
        pipeline.runtime.close()
    except Exception:  # one failing sink must not stop the shutdown
        logger.exception("closing pipeline %s failed", pipeline.id)


def _check_name(name: object) -> None:
    if not isinstance(name, str) or not name.strip():
        message = f'"name" must be a non-empty string, got {name!r}'
        raise BadRequest(message)
    if len(name) > MAX_NAME_LENGTH:
        message = f'"name" is longer than {MAX_NAME_LENGTH} characters'
        raise BadRequest(message)


def _check_source(source: object) -> None:
    if not isinstance(source, str):
        message = f'"source" must be a string of VPL, got {type(source).__name__}'
        raise BadRequest(message)
