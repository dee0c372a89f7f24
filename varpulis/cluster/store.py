"""The coordinator's ``--state-dir``: workers' last data, groups, placements, tombstones.

Writing reuses the worker's atomic store (:class:`varpulis.server.persistence.StateStore`:
temp file, fsync, rename, fsync the directory), pointed at its own file
``DIR/coordinator.json``, so a worker and a coordinator may even share a
directory. The records are a flat list of tagged dicts (``kind`` is ``worker``,
``group`` or ``tombstone``). Like the worker's store it is not locked itself:
the coordinator snapshots under its lock and serialises saves.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Any

from varpulis.cluster.groups import Group
from varpulis.server.persistence import StateStore

__all__ = ["STATE_FILE", "CoordinatorState", "CoordinatorStore"]

logger = logging.getLogger("varpulis_cluster")

STATE_FILE = "coordinator.json"


@dataclass
class CoordinatorState:
    """What a coordinator restores at start."""

    workers: list[dict[str, Any]] = field(default_factory=list)
    groups: list[Group] = field(default_factory=list)
    tombstones: list[str] = field(default_factory=list)


class CoordinatorStore:
    """Loads and atomically saves the coordinator's state in *directory* (created if missing)."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self._store = StateStore(directory)
        self._store.path = self._store.directory / STATE_FILE
        self.path = self._store.path

    def load(self) -> CoordinatorState:
        """The saved state; empty when there is none. Bad records are logged and skipped."""
        state = CoordinatorState()
        for rec in self._store.load():
            kind = rec.get("kind")
            try:
                if kind == "worker":
                    state.workers.append(rec)
                elif kind == "group":
                    state.groups.append(Group.from_record(rec))
                elif kind == "tombstone":
                    state.tombstones.append(str(rec["id"]))
                else:
                    logger.warning("ignoring unknown %r record in %s", kind, self.path)
            except Exception as exc:  # a hand-edited file: keep what is readable
                logger.error("cannot restore a %s record from %s: %s", kind, self.path, exc)
        return state

    def save(
        self, workers: list[dict[str, Any]], groups: list[dict[str, Any]], tombstones: list[str]
    ) -> None:
        """Replace the saved state, atomically and durably (OSError on failure)."""
        records = (
            [{"kind": "worker", **w} for w in workers]
            + [{"kind": "group", **g} for g in groups]
            + [{"kind": "tombstone", "id": t} for t in tombstones]
        )
        self._store.save(records)
