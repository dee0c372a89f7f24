"""Moving placements between workers: failover, reconcile, drain and rebalance.

Everything here is built on :meth:`Recovery.move`, one networked operation in
three steps: plan under the coordinator's lock (the placement's ``epoch``, the
target's address and key), deploy the pipeline's source on the target without
the lock, then commit under the lock only if the group still exists and the
placement's epoch is unchanged; otherwise the pipeline just deployed is
deleted again, so a teardown or a concurrent move during a failover never
leaves a stray pipeline behind. The old pipeline is then deleted (drain,
rebalance), remembered as *retired* on its worker (failover: the worker is
unreachable; it is deleted when the worker reports it again) or left alone
(reconcile: it no longer exists). Injects resolve their target under the lock,
so after a commit no inject uses the old pipeline id.

* **failover** (sweeper, deregistration): placements whose worker is unhealthy
  or no longer registered move to the least-loaded available worker; when none
  is available they stay and the next sweep retries.
* **reconcile** (register/heartbeat): placed pipelines the worker does not
  report are checked with ``GET /api/v1/pipelines/{id}``; a 404 redeploys them
  on the same worker. Retired ids it still reports are deleted.
* **drain** moves everything off one worker (which stays ``draining``);
  **rebalance** moves unpinned placements from workers above the average.
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from typing import TYPE_CHECKING, Any

from varpulis.cluster.client import WorkerCallError
from varpulis.cluster.groups import FAILED, RUNNING
from varpulis.cluster.placement import least_loaded
from varpulis.cluster.workers import WorkerStatus
from varpulis.errors import BadRequest, WorkerNotFound

if TYPE_CHECKING:
    from varpulis.cluster.coordinator import Coordinator

__all__ = ["Recovery"]

logger = logging.getLogger("varpulis_cluster")

#: What happens to the old pipeline after a move.
DELETE, RETIRE, NONE = "delete", "retire", "none"
_Move = tuple[str, str, int, str]  # group id, pipeline name, epoch, worker id


class Recovery:
    """Placement moves of one :class:`~varpulis.cluster.coordinator.Coordinator`."""

    def __init__(self, coordinator: Coordinator) -> None:
        self._c = coordinator
        self._blocked = False  # a failover found no target (logged once per episode)

    # ------------------------------------------------------------------ the move

    def move(
        self, group_id: str, name: str, epoch: int, target_id: str, cleanup: str, reason: str
    ) -> bool:
        """Redeploy pipeline *name* of a group on *target_id*; True when committed."""
        c = self._c
        with c.lock:
            group = c.group(group_id)
            placement = group.placements.get(name) if group is not None else None
            target = c.worker(target_id)
            if placement is None or placement.epoch != epoch or target is None:
                return False
            source = group.source(name)  # type: ignore[union-attr]
            address, key = target.address, target.api_key
            target.pending += 1
        chosen = str(uuid.uuid4())
        try:
            new_id = c.client.deploy(address, key, name, source, chosen)
        except WorkerCallError as exc:
            with c.lock:
                target.pending -= 1
                c.stats.moves_failed += 1
                if exc.status is None:
                    target.retired.add(chosen)  # no answer: deleted if it shows up
            logger.error("%s of pipeline %r to worker %r failed: %s", reason, name, target_id, exc)
            return False
        with c.lock:
            target.pending -= 1
            group = c.group(group_id)
            placement = group.placements.get(name) if group is not None else None
            if placement is None or placement.epoch != epoch or c.worker(target_id) is None:
                undo = True
            else:
                undo = False
                old_worker = c.worker(placement.worker_id)
                old_id = placement.pipeline_id
                if old_worker is not None and old_id:
                    old_worker.placed.discard(old_id)
                    if cleanup == RETIRE and old_worker is not target:
                        old_worker.retired.add(old_id)
                old_address = placement.worker_address
                old_key = old_worker.api_key if old_worker is not None else None
                placement.worker_id, placement.worker_address = target_id, address
                placement.pipeline_id, placement.status, placement.error = new_id, RUNNING, None
                placement.epoch += 1
                target.placed.add(new_id)
                if target.reported is not None:
                    target.reported.add(new_id)
                c.stats.moves_ok += 1
        if undo:
            logger.info(
                "%s of pipeline %r superseded (group torn down or moved); undoing", reason, name
            )
            c._delete_quietly(address, key, new_id)
            return False
        logger.info(
            "%s: pipeline %r of group %s now runs on worker %r as %s",
            reason,
            name,
            group_id,
            target_id,
            new_id,
        )
        if cleanup == DELETE and old_id and old_worker is not None and old_worker is not target:
            if c._delete_quietly(old_address, old_key, old_id) is not None:
                with c.lock:
                    old_worker.retired.add(old_id)
        c.persist()
        return True

    def _target_for(self, exclude: str) -> str | None:
        """The least-loaded available worker other than *exclude* (lock held)."""
        candidates = [w for w in self._c.workers_in_order() if w.available and w.id != exclude]
        return least_loaded(candidates) if candidates else None

    # ------------------------------------------------------------------ failover

    def orphans(self) -> list[_Move]:
        """Running/Failed placements whose worker is unhealthy or unregistered."""
        c = self._c
        out = []
        with c.lock:
            for group in c.groups():
                for p in group.placements.values():
                    if p.status not in (RUNNING, FAILED):
                        continue
                    worker = c.worker(p.worker_id)
                    if worker is None or worker.status is WorkerStatus.UNHEALTHY:
                        out.append((group.id, p.pipeline_name, p.epoch, p.worker_id))
        return out

    def deregistered(self, address: str, key: str | None, pipeline_ids: list[str]) -> None:
        """After a deregistration: move its pipelines elsewhere, then delete the old copies.

        The deregistered process may keep running; without this its pipelines
        would go on running there, unknown to the coordinator (best effort: an
        unreachable worker keeps them until it is restarted).
        """
        self.failover()
        for pipeline_id in pipeline_ids:
            error = self._c._delete_quietly(address, key, pipeline_id)
            if error is not None:
                logger.warning("could not delete pipeline %s from deregistered worker at %s: %s",
                               pipeline_id, address, error)  # fmt: skip

    def failover(self) -> int:
        """Move every orphan to the least-loaded available worker; return how many moved."""
        moved = 0
        for group_id, name, epoch, source in self.orphans():
            with self._c.lock:
                target = self._target_for(source)
                gone = self._c.worker(source) is None
            if target is None:
                if not self._blocked:
                    logger.error(
                        "failover of pipeline %r (worker %r) waits: no available worker",
                        name,
                        source,
                    )
                self._blocked = True
                return moved
            if self.move(group_id, name, epoch, target, NONE if gone else RETIRE, "failover"):
                moved += 1
        self._blocked = False
        return moved

    # ------------------------------------------------------------------ reconcile

    def reconcile(self, worker_id: str, check_all: bool) -> int:
        """Redeploy placed pipelines missing from *worker_id*; delete its retired ones.

        Without *check_all* only the pipelines its last report lacks are checked.
        """
        c = self._c
        with c.lock:
            worker = c.worker(worker_id)
            if worker is None or worker.status is not WorkerStatus.READY:
                return 0
            reported = worker.reported or set()
            stale = sorted(worker.retired & reported)
            suspects = [
                (g.id, p.pipeline_name, p.epoch, p.pipeline_id)
                for g in c.groups()
                for p in g.placements.values()
                if p.worker_id == worker_id
                and p.status == RUNNING
                and p.pipeline_id
                and (check_all or p.pipeline_id not in reported)
            ]
            address, key = worker.address, worker.api_key
        for pipeline_id in stale:
            if c._delete_quietly(address, key, pipeline_id) is None:
                with c.lock:
                    worker.retired.discard(pipeline_id)
        redeployed = 0
        for group_id, name, epoch, pipeline_id in suspects:
            try:
                if c.client.exists(address, key, pipeline_id):
                    continue
            except WorkerCallError as exc:
                logger.warning(
                    "reconcile of worker %r: cannot check %s: %s", worker_id, pipeline_id, exc
                )
                continue
            if self.move(group_id, name, epoch, worker_id, NONE, "reconcile"):
                redeployed += 1
        return redeployed

    # ------------------------------------------------------------------ drain, rebalance

    def drain(self, worker_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """Mark a worker draining and move its placements away (until ``timeout_secs``)."""
        timeout = body.get("timeout_secs")
        if timeout is not None and (type(timeout) not in (int, float) or timeout < 0):
            message = f'"timeout_secs" must be a non-negative number or null, got {timeout!r}'
            raise BadRequest(message)
        c = self._c
        deadline = None if timeout is None else time.monotonic() + timeout
        with c.lock:
            worker = c.worker(worker_id)
            if worker is None:
                raise WorkerNotFound(worker_id)
            worker.status = WorkerStatus.DRAINING
            todo = [
                (g.id, p.pipeline_name, p.epoch)
                for g in c.groups()
                for p in g.placements.values()
                if p.worker_id == worker_id
            ]
        logger.info("worker %r draining: moving %d pipeline(s)", worker_id, len(todo))
        c.persist()
        moved = 0
        for group_id, name, epoch in todo:
            if deadline is not None and time.monotonic() > deadline:
                break
            with c.lock:
                target = self._target_for(worker_id)
            if target is None:
                break
            if self.move(group_id, name, epoch, target, DELETE, "drain"):
                moved += 1
        remaining = len(todo) - moved
        return {
            "worker_id": worker_id,
            "status": "drained" if not remaining else "draining",
            "pipelines_migrated": moved,
            "pipelines_remaining": remaining,
        }

    def rebalance(self) -> dict[str, Any]:
        """Move unpinned placements from workers above ``ceil(average)`` to the least loaded."""
        c = self._c
        plan: list[tuple[str, str, int, str, str]] = []
        with c.lock:
            workers = [w for w in c.workers_in_order() if w.status is WorkerStatus.READY]
            if len(workers) >= 2:
                counts = {w.id: 0 for w in workers}
                movable: dict[str, list[tuple[str, str, int]]] = {w.id: [] for w in workers}
                for group in c.groups():
                    for spec in group.spec.pipelines:
                        p = group.placements.get(spec.name)
                        if p is None or p.status != RUNNING or p.worker_id not in counts:
                            continue
                        counts[p.worker_id] += 1
                        if spec.worker_affinity != p.worker_id:
                            movable[p.worker_id].append((group.id, p.pipeline_name, p.epoch))
                ceiling = math.ceil(sum(counts.values()) / len(workers))
                by_id = {w.id: w for w in workers}
                for w in workers:
                    while counts[w.id] > ceiling and movable[w.id]:
                        group_id, name, epoch = movable[w.id].pop()
                        room = [
                            x
                            for x in workers
                            if x.id != w.id and counts[x.id] < min(ceiling, x.max_pipelines)
                        ]
                        if not room:
                            break
                        target = min(room, key=lambda x: counts[x.id]).id
                        counts[w.id] -= 1
                        counts[target] += 1
                        plan.append((group_id, name, epoch, w.id, by_id[target].id))
        moved = []
        for group_id, name, epoch, source, target in plan:
            if self.move(group_id, name, epoch, target, DELETE, "rebalance"):
                moved.append(
                    {
                        "group_id": group_id,
                        "pipeline": name,
                        "from_worker": source,
                        "to_worker": target,
                    }
                )
        return {"migrations_started": len(plan), "migrations_completed": len(moved), "moved": moved}
