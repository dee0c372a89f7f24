"""PipelineManager without HTTP: locking, limits, atomic reload, restore."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import pytest

from varpulis.errors import VPLError
from varpulis.events import Event
from varpulis.server.pipelines import (
    PipelineLimitReached,
    PipelineManager,
    PipelineNotFound,
    inline_runtime,
)

SRC = 'stream A = EventA .emit(result: "from-a")'


class BlockingRuntime:
    """A runtime whose process() waits on a gate: shows which calls overlap."""

    def __init__(self, gate: threading.Event, inside: list[str], name: str) -> None:
        self.gate, self.inside, self.name, self.closed = gate, inside, name, False

    def process(self, event: Event) -> list[Event]:
        self.inside.append(self.name)
        self.gate.wait(5)
        return [event]

    def process_batch(self, events: Sequence[Event]) -> list[Event]:
        return list(events)

    def metrics(self) -> dict[str, Any]:
        return {"events_in": 0, "events_out": 0, "errors": 0, "streams": {}}

    def close(self) -> None:
        self.closed = True


def test_injects_into_different_pipelines_run_in_parallel() -> None:
    gate, inside = threading.Event(), []
    manager = PipelineManager(factory=lambda src: BlockingRuntime(gate, inside, src))
    a, b = manager.deploy("a", "A"), manager.deploy("b", "B")
    threads = [threading.Thread(target=manager.inject, args=(p.id, Event("E", {})))
               for p in (a, b, a)]  # fmt: skip
    for t in threads:
        t.start()
    # Both pipelines are inside process() at once; the second inject into "a" waits.
    deadline = threading.Event()
    for _ in range(500):
        if sorted(inside) == ["A", "B"]:
            break
        deadline.wait(0.01)
    assert sorted(inside) == ["A", "B"]
    gate.set()
    for t in threads:
        t.join(5)
    assert sorted(inside) == ["A", "A", "B"]


def test_deploy_limit_and_ids() -> None:
    manager = PipelineManager(max_pipelines=1)
    p = manager.deploy("a", SRC)
    assert len(p.id) == 36 and manager.ids() == [p.id]
    with pytest.raises(PipelineLimitReached):
        manager.deploy("b", SRC)
    manager.delete(p.id)
    with pytest.raises(PipelineNotFound):
        manager.delete(p.id)
    manager.deploy("b", SRC, pipeline_id="fixed")
    assert manager.get("fixed").name == "b"


def test_reload_keeps_old_runtime_on_error() -> None:
    manager = PipelineManager()
    p = manager.deploy("a", SRC)
    old = p.runtime
    with pytest.raises(VPLError):
        manager.reload(p.id, "stream A = (")
    assert p.runtime is old and p.source == SRC
    out = manager.inject(p.id, Event("EventA", {}))
    assert [e.fields for e in out.outputs] == [{"result": "from-a"}]


def test_restore_keeps_ids_and_skips_broken() -> None:
    manager = PipelineManager()
    records = [{"id": "one", "name": "a", "source": SRC},
               {"id": "two", "name": "b", "source": "stream ("}, {"bogus": 1}]  # fmt: skip
    assert manager.restore(records) == ["one"]
    assert manager.ids() == ["one"]


def test_close_stops_everything() -> None:
    closed = []
    manager = PipelineManager(factory=lambda src: _Closing(closed))
    manager.deploy("a", "x")
    manager.deploy("b", "y")
    manager.close()
    assert closed == [1, 1] and len(manager) == 0 and manager.closed


class _Closing:
    def __init__(self, closed: list[int]) -> None:
        self.closed = closed

    def close(self) -> None:
        self.closed.append(1)


def test_inline_runtime_warnings() -> None:
    runtime = inline_runtime(SRC)
    assert runtime.process(Event("EventA", {"x": 1}))[0].event_type == "A"
    runtime.close()
