"""Parent-side state of a :class:`~varpulis.runtime.contexts.ContextRuntime`.

:class:`_Wait` tracks one ``wait=True`` call (barriers still out, outputs per
group); :class:`_Child` is the parent's handle on one context process or thread.
Which thread may touch which field is stated on each class.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import transports
from kernels.columnar import ColumnarBatch
from transports import Message
from varpulis.runtime.operators import Item
from varpulis.runtime.routing import Group

__all__ = ["_Child", "_Wait"]


@dataclass(eq=False)
class _Wait:
    """One ``wait=True`` call: barriers still out, outputs by group, what was lost."""

    pending: int = 1  # the caller's own token, released once every barrier is sent
    outputs: dict[Group, list[Item]] = field(default_factory=dict)
    lost: int = 0
    done: threading.Event = field(default_factory=threading.Event)


@dataclass(eq=False)
class _Child:
    """The parent's handle on one context; fields other than ``sender``/``backlog``
    (guarded by ``lock``) are touched under the runtime's state lock."""

    name: str
    gen: int = 0
    state: str = "spawning"  # then starting → running → (restarting → spawning …) → stopped
    worker: Any = None  # multiprocessing.Process or threading.Thread
    stop: threading.Event | None = None
    pid: int | None = None
    address: str | None = None
    sender: transports.Sender | None = None
    backlog: list[Message] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    sent: int = 0
    processed: int = 0
    outstanding: Counter[int] = field(default_factory=Counter)
    restarts: int = 0
    failures: int = 0
    lost_batches: int = 0
    lost_barriers: int = 0
    started_at: float = 0.0
    restart_at: float = 0.0
    error: str | None = None
    exitcode: int | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    base: dict[str, Any] = field(default_factory=dict)  # counters of earlier generations
    chunks: list[tuple[int, ColumnarBatch]] = field(default_factory=list)  # collector only

    def alive(self) -> bool:
        return self.worker is not None and self.worker.is_alive()
