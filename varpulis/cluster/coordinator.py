"""The coordinator's state and operations: worker registry, pipeline groups, placements.

A :class:`Coordinator` is thread-safe. One re-entrant lock guards the registry,
the groups and the counters and is never held during network I/O: every
networked operation plans under the lock, calls workers without it, and
commits under it again after checking that what it planned on (a placement's
``epoch``, the group's existence) did not change meanwhile; when it did, the
extra pipeline it deployed is deleted again (see :mod:`varpulis.cluster.recovery`
for moves: failover, reconcile, drain, rebalance). Background work (failover,
reconcile) runs on a small executor, de-duplicated by key, so HTTP handlers and
the health sweeper never wait for it. With a store, every change of groups,
placements, workers' addresses or tombstones is saved (snapshot under the
lock, write under a separate lock so writes never go back in time).
Clocks are monotonic seconds and injectable.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from varpulis.cluster.client import WorkerCallError, WorkerClient
from varpulis.cluster.groups import (
    FAILED,
    RUNNING,
    Group,
    Placement,
    parse_spec,
    validate_source,
)
from varpulis.cluster.health import health_sweep
from varpulis.cluster.placement import check_strategy, place
from varpulis.cluster.recovery import Recovery
from varpulis.cluster.store import CoordinatorStore
from varpulis.cluster.workers import (
    Worker,
    WorkerStatus,
    parse_heartbeat,
    parse_registration,
)
from varpulis.errors import (
    GroupNotFound,
    RoutingFailed,
    WorkerDeregistered,
    WorkerNotFound,
)

__all__ = ["Coordinator", "Stats", "Target"]

logger = logging.getLogger("varpulis_cluster")

MAX_TOMBSTONES = 10_000


@dataclass(frozen=True, slots=True)
class Target:
    """Where an event for one pipeline goes, resolved under the lock at one instant."""

    group_id: str
    pipeline: str
    worker_id: str
    address: str
    key: str | None
    pipeline_id: str
    forwards: bool  # the group forwards this pipeline's outputs elsewhere


@dataclass
class Stats:
    """Counters for /metrics; changed only under the coordinator's lock."""

    injects: int = 0
    batch_events: int = 0
    routing_failures: int = 0
    forwarded_events: int = 0
    deploys_ok: int = 0
    deploys_failed: int = 0
    moves_ok: int = 0
    moves_failed: int = 0


class Coordinator:
    """Worker registry, pipeline groups and routing of one coordinator process.

    *heartbeat_timeout* (s) is how long a worker may be silent before a sweep
    marks it unhealthy; *placement* is the default strategy; *validate* checks
    one VPL source (raises VPLError). *background_threads* bound concurrent
    failover/reconcile work; *io_threads* the parallel calls to workers (deploys,
    deletes, an inject-batch's targets).
    """

    def __init__(
        self,
        client: WorkerClient,
        *,
        placement: str = "round-robin",
        heartbeat_timeout: float = 15.0,
        clock: Callable[[], float] = time.monotonic,
        store: CoordinatorStore | None = None,
        validate: Callable[[str], None] | None = validate_source,
        background_threads: int = 4,
        io_threads: int = 8,
    ) -> None:
        self.client = client
        self.placement = check_strategy(placement)
        self.heartbeat_timeout = heartbeat_timeout
        self.clock = clock
        self.stats = Stats()
        self.started = clock()
        self._store, self._validate = store, validate
        self._lock = threading.RLock()
        self._persist_lock = threading.Lock()
        self._workers: dict[str, Worker] = {}
        self._tombstones: dict[str, None] = {}  # insertion-ordered set
        self._groups: dict[str, Group] = {}
        self._seq = itertools.count()
        self._background = ThreadPoolExecutor(background_threads, "coordinator-bg")
        self.io = ThreadPoolExecutor(io_threads, "coordinator-io")  # calls to workers
        self._running: set[tuple[str, ...]] = set()
        self.recovery = Recovery(self)
        if store is not None:
            self._restore(store)

    # ------------------------------------------------------------------ plumbing

    @property
    def lock(self) -> threading.RLock:
        """The state lock (for :mod:`~varpulis.cluster.recovery`); never hold it over I/O."""
        return self._lock

    def submit(self, key: tuple[str, ...], fn: Callable[..., Any], *args: Any) -> bool:
        """Run *fn* in the background unless a task with *key* is already running."""
        with self._lock:
            if key in self._running:
                return False
            self._running.add(key)

        def run() -> None:
            try:
                fn(*args)
            except Exception:
                logger.exception("background task %s failed", key)
            finally:
                with self._lock:
                    self._running.discard(key)

        try:
            self._background.submit(run)
        except RuntimeError:  # shut down
            with self._lock:
                self._running.discard(key)
            return False
        return True

    def idle(self) -> bool:
        """True when no background task runs (for tests and shutdown)."""
        with self._lock:
            return not self._running

    def close(self) -> None:
        """Stop background work and drop pooled connections (state on disk is kept)."""
        self._background.shutdown(wait=False, cancel_futures=True)
        self.io.shutdown(wait=False, cancel_futures=True)
        self.client.close()

    def persist(self) -> None:
        """Save the state when there is a store; errors are logged, never raised."""
        if self._store is None:
            return
        with self._persist_lock:
            with self._lock:
                workers = [w.record() for w in self._workers.values()]
                groups = [g.record() for g in self._groups.values()]
                tombstones = list(self._tombstones)
            try:
                self._store.save(workers, groups, tombstones)
            except OSError as exc:
                logger.error("cannot persist coordinator state: %s", exc)

    def _restore(self, store: CoordinatorStore) -> None:
        state = store.load()
        now = self.clock()
        for rec in sorted(state.workers, key=lambda r: r.get("seq", 0)):
            try:
                status = WorkerStatus.DRAINING if rec.get("draining") else WorkerStatus.REGISTERING
                worker = Worker(
                    rec["id"],
                    rec["address"],
                    rec.get("api_key"),
                    next(self._seq),
                    int(rec.get("cpu_cores", 1)),
                    int(rec.get("max_pipelines", 100)),
                    status=status,
                    last_heartbeat=now,
                )
            except (KeyError, TypeError, ValueError) as exc:
                logger.error("cannot restore worker record %r: %s", rec.get("id"), exc)
                continue
            self._workers[worker.id] = worker
        for group in state.groups:
            self._groups[group.id] = group
            for p in group.placements.values():
                worker = self._workers.get(p.worker_id)
                if worker is not None and p.pipeline_id and p.status == RUNNING:
                    worker.placed.add(p.pipeline_id)
        self._tombstones = dict.fromkeys(state.tombstones)
        if state.workers or state.groups:
            logger.info(
                "restored %d worker(s), %d group(s), %d tombstone(s) from %s",
                len(self._workers),
                len(self._groups),
                len(self._tombstones),
                store.path,
            )

    # ------------------------------------------------------------------ workers

    def register(self, body: dict[str, Any]) -> dict[str, Any]:
        """Create or update a worker from a register body; it is ready at once.

        Registering clears a deregistration tombstone (an operator restarting
        the worker process means it). Placements the worker should run but did
        not report are reconciled in the background.
        """
        reg = parse_registration(body)
        with self._lock:
            self._tombstones.pop(reg.worker_id, None)
            worker = self._workers.get(reg.worker_id)
            if worker is None:
                worker = Worker(reg.worker_id, reg.address, reg.api_key, next(self._seq))
                self._workers[worker.id] = worker
                what = "registered"
            else:
                what = "re-registered"
            worker.api_key, worker.cpu_cores = reg.api_key, reg.cpu_cores
            worker.max_pipelines = reg.max_pipelines
            worker.status = WorkerStatus.READY
            worker.last_heartbeat = self.clock()
            worker.reported, worker.reported_count = reg.pipelines, reg.pipelines_running
            if worker.address != reg.address:
                worker.address = reg.address
                for _, p in self._placements_on(worker.id):
                    p.worker_address = reg.address
            self._check_reconcile(worker)
        logger.info("worker %r %s at %s", reg.worker_id, what, reg.address)
        self.persist()
        return {"worker_id": reg.worker_id, "status": "registered"}

    def heartbeat(self, worker_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """Record a heartbeat; an unhealthy (or restored) worker becomes ready again."""
        beat = parse_heartbeat(body)
        with self._lock:
            worker = self._workers.get(worker_id)
            if worker is None:
                if worker_id in self._tombstones:
                    raise WorkerDeregistered(worker_id)
                raise WorkerNotFound(worker_id)
            worker.last_heartbeat = self.clock()
            worker.events_processed = beat.events_processed
            worker.reported, worker.reported_count = beat.pipelines, beat.pipelines_running
            if worker.status in (WorkerStatus.UNHEALTHY, WorkerStatus.REGISTERING):
                previous, worker.status = worker.status, WorkerStatus.READY
                logger.info("worker %r is ready again (was %s)", worker_id, previous.value)
            self._check_reconcile(worker)
        return {"acknowledged": True}

    def deregister(self, worker_id: str) -> dict[str, Any]:
        """Forget a worker; its later heartbeats get 404 ``worker_deregistered``.

        Its placements are moved to other workers, then deleted from it (the
        process may keep running; the coordinator no longer calls it after that).
        """
        with self._lock:
            worker = self._workers.pop(worker_id, None)
            if worker is None:
                raise WorkerNotFound(worker_id)
            copies = sorted(worker.placed | worker.retired)
            self._tombstones[worker_id] = None
            while len(self._tombstones) > MAX_TOMBSTONES:
                del self._tombstones[next(iter(self._tombstones))]
        logger.info("worker %r deregistered", worker_id)
        self.persist()
        cleanup = self.recovery.deregistered
        self.submit(("deregistered", worker_id), cleanup, worker.address, worker.api_key, copies)
        return {"deleted": True}

    def _check_reconcile(self, worker: Worker) -> None:
        """Schedule a reconcile when the worker's report lacks placed pipelines (lock held)."""
        if worker.reported is None or worker.status is not WorkerStatus.READY:
            return
        if (worker.placed - worker.reported) or (worker.retired & worker.reported):
            self.submit(("reconcile", worker.id), self.recovery.reconcile, worker.id, False)

    def _placements_on(self, worker_id: str) -> list[tuple[Group, Placement]]:
        return [
            (g, p)
            for g in self._groups.values()
            for p in g.placements.values()
            if p.worker_id == worker_id
        ]

    def worker(self, worker_id: str) -> Worker | None:
        """The live record (lock held by the caller for anything but a glance)."""
        return self._workers.get(worker_id)

    def workers_in_order(self) -> list[Worker]:
        """Workers in registration order (lock held by the caller)."""
        return list(self._workers.values())

    def groups(self) -> list[Group]:
        """Every group (lock held by the caller)."""
        return list(self._groups.values())

    def group(self, group_id: str) -> Group | None:
        return self._groups.get(group_id)

    def worker_json(self, worker_id: str) -> dict[str, Any]:
        with self._lock:
            worker = self._workers.get(worker_id)
            if worker is None:
                raise WorkerNotFound(worker_id)
            return self._worker_json(worker, self.clock())

    def _worker_json(self, worker: Worker, now: float) -> dict[str, Any]:
        assigned = [
            p.pipeline_name for _, p in self._placements_on(worker.id) if p.status == RUNNING
        ]
        return worker.to_json(assigned, now)

    def workers_json(self) -> dict[str, Any]:
        with self._lock:
            now = self.clock()
            workers = [self._worker_json(w, now) for w in self._workers.values()]
        return {"workers": workers, "total": len(workers)}

    def sweep(self) -> list[str]:
        """Mark silent workers unhealthy, then fail over what runs on unavailable workers."""
        with self._lock:
            marked = health_sweep(self._workers.values(), self.clock(), self.heartbeat_timeout)
        for worker_id in marked:
            logger.warning(
                "worker %r marked unhealthy: no heartbeat for more than %g s",
                worker_id,
                self.heartbeat_timeout,
            )
        if self.recovery.orphans():
            self.submit(("failover",), self.recovery.failover)
        return marked

    # ------------------------------------------------------------------ groups

    def deploy_group(self, body: dict[str, Any]) -> dict[str, Any]:
        """Validate, place, deploy through the workers' REST API, and record the group.

        Plan (lock): choose workers (503 when none is available), insert the
        group as ``deploying``. Execute (no lock): one deploy per pipeline, in
        parallel. Commit (lock): Running/Failed per placement. A group torn
        down meanwhile gets its new pipelines deleted again.
        """
        spec = parse_spec(body, self._validate)  # 400 before anything is deployed
        strategy = spec.placement or self.placement
        with self._lock:
            candidates = [w for w in self._workers.values() if w.available]
            chosen = place([p.worker_affinity for p in spec.pipelines], candidates, strategy)
            group = Group(str(uuid.uuid4()), spec)
            tasks = []
            for pipeline, worker_id in zip(spec.pipelines, chosen, strict=False):
                worker = self._workers[worker_id]
                worker.pending += 1
                group.placements[pipeline.name] = Placement(
                    pipeline.name, worker_id, worker.address
                )
                tasks.append((pipeline.name, worker_id, worker.address, worker.api_key,
                              pipeline.source, str(uuid.uuid4())))  # fmt: skip
            self._groups[group.id] = group
        futures: list[Future[str]] = [
            self.io.submit(self.client.deploy, address, key, name, source, pid)
            for name, _, address, key, source, pid in tasks
        ]
        results: list[str | WorkerCallError] = []
        for future in futures:
            try:
                results.append(future.result())
            except WorkerCallError as exc:
                results.append(exc)
        undo = []
        with self._lock:
            alive = self._groups.get(group.id) is group
            for task, result in zip(tasks, results, strict=True):
                name, worker_id, address, key, _, pid = task
                worker = self._workers.get(worker_id)
                if worker is not None:
                    worker.pending -= 1
                placement = group.placements[name]
                if isinstance(result, WorkerCallError):
                    placement.status, placement.error = FAILED, str(result)
                    if result.status is None and worker is not None:
                        worker.retired.add(pid)  # no answer: deleted if it shows up
                    self.stats.deploys_failed += 1
                    continue
                self.stats.deploys_ok += 1
                if not alive:
                    undo.append((address, key, result))
                    continue
                placement.pipeline_id, placement.status = result, RUNNING
                if worker is not None:
                    worker.placed.add(result)
                    if worker.reported is not None:
                        worker.reported.add(result)
            view = group.to_json()
        for address, key, pipeline_id in undo:
            self._delete_quietly(address, key, pipeline_id)
        for name, placement in group.placements.items():
            if placement.status == FAILED:
                logger.error(
                    "group %r: pipeline %r failed on worker %r: %s",
                    spec.name,
                    name,
                    placement.worker_id,
                    placement.error,
                )
        logger.info("group %r (%s) deployed: %s", spec.name, group.id, view["status"])
        self.persist()
        return view

    def _delete_quietly(self, address: str, key: str | None, pipeline_id: str) -> str | None:
        """Delete a pipeline from a worker; the error text, or None when it is gone."""
        try:
            self.client.delete(address, key, pipeline_id)
        except WorkerCallError as exc:
            logger.warning("could not delete pipeline %s at %s: %s", pipeline_id, address, exc)
            return str(exc)
        return None

    def teardown(self, group_id: str) -> dict[str, Any]:
        """Remove a group and delete its pipelines from their workers.

        ``{"torn_down": true}``; pipelines that could not be deleted are listed
        in ``errors`` (unreachable/unhealthy workers get them deleted when they
        report them again).
        """
        with self._lock:
            group = self._groups.pop(group_id, None)
            if group is None:
                raise GroupNotFound(group_id)
            tasks, errors = [], []
            for p in group.placements.values():
                worker = self._workers.get(p.worker_id)
                if not p.pipeline_id:
                    continue
                if worker is None:
                    errors.append(
                        {
                            "pipeline": p.pipeline_name,
                            "worker_id": p.worker_id,
                            "error": "worker is no longer registered",
                        }
                    )
                    continue
                worker.placed.discard(p.pipeline_id)
                if worker.reported is not None:
                    worker.reported.discard(p.pipeline_id)
                if worker.status is WorkerStatus.UNHEALTHY:
                    worker.retired.add(p.pipeline_id)
                    errors.append(
                        {
                            "pipeline": p.pipeline_name,
                            "worker_id": p.worker_id,
                            "error": "worker is unhealthy; deleted when it is back",
                        }
                    )
                    continue
                tasks.append((p.pipeline_name, worker, p.pipeline_id))
        futures = [
            self.io.submit(self._delete_quietly, w.address, w.api_key, pid) for _, w, pid in tasks
        ]
        for (name, worker, pid), future in zip(tasks, futures, strict=False):
            error = future.result()
            if error is not None:
                with self._lock:
                    worker.retired.add(pid)
                errors.append({"pipeline": name, "worker_id": worker.id, "error": error})
        logger.info("group %r (%s) torn down", group.spec.name, group_id)
        self.persist()
        out: dict[str, Any] = {"torn_down": True}
        if errors:
            out["errors"] = errors
        return out

    def group_json(self, group_id: str) -> dict[str, Any]:
        with self._lock:
            group = self._groups.get(group_id)
            if group is None:
                raise GroupNotFound(group_id)
            return {**group.to_json(), "routes": [r.to_json() for r in group.spec.routes]}

    def groups_json(self) -> dict[str, Any]:
        with self._lock:
            groups = [g.to_json() for g in self._groups.values()]
        return {"pipeline_groups": groups, "total": len(groups)}

    def topology(self) -> dict[str, Any]:
        with self._lock:
            return {"groups": [g.topology() for g in self._groups.values()]}

    # ------------------------------------------------------------------ routing

    def resolve(self, group_id: str, event_type: str) -> Target:
        """The target of an event injected into a group (counts one routed inject)."""
        with self._lock:
            group = self._groups.get(group_id)
            if group is None:
                raise GroupNotFound(group_id)
            name = group.target(event_type)
            self.stats.injects += 1
            return self._target(group, name)  # type: ignore[arg-type]

    def resolve_pipeline(self, group_id: str, name: str) -> Target:
        """The current target of pipeline *name* of a group."""
        with self._lock:
            group = self._groups.get(group_id)
            if group is None:
                raise GroupNotFound(group_id)
            return self._target(group, name)

    def _group(self, group_id: str) -> Group:
        group = self._groups.get(group_id)
        if group is None:
            raise GroupNotFound(group_id)
        return group

    def single_pipeline(self, group_id: str) -> str | None:
        """The name of a one-pipeline group's pipeline (every event goes there), else None."""
        group = self._group(group_id)
        names = group.pipeline_names
        return names[0] if len(names) == 1 and not group.renames else None

    def deliveries_of(self, group_id: str) -> Callable[[str], tuple[str, str]]:
        """The group's event type → (pipeline, delivered type) function (memoised)."""
        return self._group(group_id).delivery  # type: ignore[return-value]

    def routes_of(self, group_id: str) -> tuple[tuple[str, str, Any], ...] | None:
        """The group's routes, or None when it no longer exists."""
        group = self._groups.get(group_id)
        return group.routes if group is not None else None

    def _target(self, group: Group, name: str) -> Target:
        p = group.placements[name]
        if p.status != RUNNING or not p.pipeline_id:
            self.stats.routing_failures += 1
            message = (
                f"event routing failed: pipeline {name!r} is not running "
                f"(placement status {p.status})"
            )
            raise RoutingFailed(message)
        worker = self._workers.get(p.worker_id)
        key = worker.api_key if worker is not None else None
        return Target(
            group.id,
            name,
            p.worker_id,
            p.worker_address,
            key,
            p.pipeline_id,
            name in group.forwarding,
        )

    def count(self, **deltas: int) -> None:
        """Add to the :class:`Stats` counters."""
        with self._lock:
            for name, delta in deltas.items():
                setattr(self.stats, name, getattr(self.stats, name) + delta)

    def summary(self) -> dict[str, Any]:
        """Counts for /health and /metrics."""
        with self._lock:
            states = {s.value: 0 for s in WorkerStatus}
            for w in self._workers.values():
                states[w.effective_status.value] += 1
            placements = {RUNNING: 0, FAILED: 0, "Deploying": 0}
            for g in self._groups.values():
                for p in g.placements.values():
                    placements[p.status] = placements.get(p.status, 0) + 1
            return {
                "workers": {"total": len(self._workers), **states},
                "pipeline_groups": len(self._groups),
                "placements": placements,
                "stats": {**self.stats.__dict__},
            }
