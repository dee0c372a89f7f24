"""Context runtime: the same programs inline, in context threads (inproc) and processes (ipc).

Children are real: ``contexts-inproc`` runs each context's loop on a thread over
the inproc transport, ``contexts-ipc`` in forkserver processes. A failing test
prints the runtime's status (and, for the server-kill test, the server's output).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures import CROSS_CONTEXT_CHAIN
from tests.utils import Child, poll_for
from varpulis.events import Event
from varpulis.runtime.contexts import ContextRuntime
from varpulis.runtime.engine import Engine
from varpulis.runtime.routing import explicit_targets, forward_targets, readers_by_type
from varpulis.server.pipelines import InlineRuntime, PipelineManager, runtime_factory

ROOT = Path(__file__).resolve().parents[2]

T1_9 = CROSS_CONTEXT_CHAIN

MIXED = """
context a
context b

stream Hot = Reading .where(t > 100) .emit(sensor: s, t: t)
stream Scaled = Reading .context(a) .emit(sensor: s, t2: t * 2)
stream Big = Scaled .context(b) .where(t2 > 100) .emit(sensor: sensor, big: t2)
stream Back = Big .emit(back: sensor)
stream Count = Reading .context(b) .emit(n: 1)
"""

READINGS = [Event("Reading", {"s": f"S{i}", "t": float(t)}) for i, t in
            enumerate([10, 60, 120, 40, 101, 75, 300])]  # fmt: skip
SENSORS = [Event("SensorReading", {"sensor_id": s, "temperature": t})
           for s, t in [("S1", 105.5), ("S2", 75.0), ("S3", 30.0)]]  # fmt: skip


@pytest.fixture(params=["inline", "contexts-inproc", "contexts-ipc"])
def run_mode(request: pytest.FixtureRequest) -> str:
    return request.param


class _Inline:
    """The inline mode: every stream, whatever its context, in one Engine."""

    def __init__(self, src: str) -> None:
        self.engine = Engine(src)

    def process_batch(self, events: list[Event], wait: bool = False) -> list[Event]:
        return self.engine.process_batch(events)

    def close(self) -> None:
        self.engine.close()


@contextmanager
def open_runtime(src: str, mode: str, **kw: Any) -> Iterator[Any]:
    rt: Any = _Inline(src) if mode == "inline" else ContextRuntime(
        src, transport=mode.removeprefix("contexts-"), **kw)  # fmt: skip
    try:
        yield rt
    finally:
        rt.close()


def by_type(outputs: list[Event]) -> dict[str, list[dict]]:
    """Outputs grouped by type, order kept within a type (= within a producing context)."""
    out: dict[str, list[dict]] = {}
    for ev in outputs:
        out.setdefault(ev.event_type, []).append(ev.fields)
    return out


def pids_alive(pids: list[int]) -> list[int]:
    alive = []
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
        except OSError:
            continue
        if state != "Z":
            alive.append(pid)
    return alive


# ------------------------------------------------------------------ routing (pure)


def test_routing_tables_follow_subscriptions_and_explicit_targets() -> None:
    from varpulis.compiler.plan import plan_program
    from varpulis.lang import parse

    plan = plan_program(parse(MIXED + "\ncontext c\nstream Also = Scaled .context(c) .emit(x: 1)"))
    readers = readers_by_type(plan)
    assert readers["Reading"] == (None, "a", "b")
    assert readers["Scaled"] == ("b", "c")
    assert forward_targets(readers, {}, "Scaled", "a") == ("b", "c")
    assert forward_targets(readers, {}, "Big", "b") == (None,)
    assert forward_targets(readers, {"Scaled": ("c",)}, "Scaled", "a") == ("c",)
    assert explicit_targets(plan_program(parse(T1_9))) == {"Filtered": ("analytics",)}


# ------------------------------------------------------------------ same outputs, every mode


@pytest.mark.parametrize("src, events", [(T1_9, SENSORS), (MIXED, READINGS)], ids=["t1-9", "mixed"])
def test_every_mode_gives_the_same_outputs(run_mode: str, src: str, events: list[Event]) -> None:
    expected = by_type(Engine(src).process_batch(events))
    with open_runtime(src, run_mode) as rt:
        one_by_one = [o for ev in events for o in rt.process_batch([ev], wait=True)]
        assert by_type(one_by_one) == expected, getattr(rt, "status", dict)()
        assert by_type(rt.process_batch(events, wait=True)) == expected


def test_t1_9_cross_context_chain(run_mode: str) -> None:
    with open_runtime(T1_9, run_mode) as rt:
        out = rt.process_batch(SENSORS, wait=True)
    got = sorted((e.event_type, json.dumps(e.fields)) for e in out)
    assert got == sorted([
        ("Filtered", json.dumps({"sensor": "S1", "temp": 105.5})),
        ("Filtered", json.dumps({"sensor": "S2", "temp": 75.0})),
        ("Analysis", json.dumps({"alert_sensor": "S1", "alert_temp": 105.5})),
    ])  # fmt: skip


@pytest.mark.parametrize("mode", ["contexts-inproc", "contexts-ipc"])
def test_emit_context_forwards_only_to_the_named_context(mode: str) -> None:
    src = """
context c1
context c2
context c3
stream P = In .context(c1) .emit(context: c2, v: v)
stream Q = P .context(c2) .emit(q: v)
stream R = P .context(c3) .emit(r: v)
"""
    with open_runtime(src, mode) as rt:
        out = rt.process_batch([Event("In", {"v": 1}), Event("In", {"v": 2})], wait=True)
    assert by_type(out) == {"P": [{"v": 1}, {"v": 2}], "Q": [{"q": 1}, {"q": 2}]}


# ------------------------------------------------------------------ barriers


@pytest.mark.parametrize("mode", ["contexts-inproc", "contexts-ipc"])
def test_wait_returns_everything_and_no_wait_only_inline(mode: str, tmp_path: Path) -> None:
    sink = tmp_path / "out.jsonl"
    src = MIXED + f'\nconnector Out = file (path: "{sink}")\n'
    src += "stream Sunk = Scaled .context(a) .to(Out)"
    with open_runtime(src, mode) as rt:
        quick = rt.process_batch(READINGS)  # handed over; only inline outputs come back
        assert {e.event_type for e in quick} <= {"Hot", "Back"}
        assert [e.fields for e in quick if e.event_type == "Hot"] == [
            {"sensor": "S2", "t": 120.0}, {"sensor": "S4", "t": 101.0},
            {"sensor": "S6", "t": 300.0}]  # fmt: skip
        many = [Event("Reading", {"s": f"X{i}", "t": float(i)}) for i in range(500)]
        out = rt.process_batch(many, wait=True)  # only this call's outputs
        assert len([e for e in out if e.event_type == "Count"]) == 500
        assert [e.fields["t2"] for e in out if e.event_type == "Scaled"] == [
            2.0 * i for i in range(500)]  # fmt: skip
        assert len([e for e in out if e.event_type == "Back"]) == 449
        metrics = rt.metrics()
        assert metrics["events_in"] == 507
        assert metrics["streams"]["Count"]["events_in"] == 507
    lines = sink.read_text().splitlines()  # the sink ran in the context, closed on close()
    assert len(lines) == 507 and json.loads(lines[0])["event_type"] == "Scaled"


# ------------------------------------------------------------------ crash, restart, orphans


def test_killed_child_is_reported_restarted_and_serving_again() -> None:
    with open_runtime(T1_9, "contexts-ipc", backoff=(0.05, 0.5)) as rt:
        assert len(rt.process_batch(SENSORS, wait=True)) == 3
        victim = rt.status()["analytics"]["pid"]
        os.kill(victim, signal.SIGKILL)
        poll_for(lambda: rt.status()["analytics"]["restarts"] >= 1
                 and rt.status()["analytics"]["state"] == "running", timeout=10,
                 what=f"analytics restarted: {rt.status()}")  # fmt: skip
        status = rt.status()["analytics"]
        assert status["pid"] != victim and status["exitcode"] == -signal.SIGKILL
        assert rt.metrics()["contexts"]["analytics"]["restarts"] >= 1
        assert len(rt.process_batch(SENSORS, wait=True)) == 3, rt.status()
        pids = [s["pid"] for s in rt.status().values()]
    poll_for(lambda: not pids_alive(pids), timeout=5, what=f"children {pids} gone")
    assert not pids_alive([victim])


def test_close_leaves_no_child_processes() -> None:
    src = "\n".join(f"context c{i}\nstream S{i} = E .context(c{i}) .emit(i: {i})" for i in range(4))
    rt = ContextRuntime(src, transport="ipc")
    pids = [s["pid"] for s in rt.status().values()]
    assert len(set(pids)) == 4 and all(pids_alive(pids) == pids for _ in range(1))
    assert len(rt.process(Event("E", {}), wait=True)) == 4
    rt.close()
    assert pids_alive(pids) == []  # joined by close(), not merely signalled
    rt.close()  # idempotent


SERVER_SCRIPT = """
import sys
from varpulis.runtime.contexts import ContextRuntime
src = "\\n".join(f"context c{i}\\nstream S{i} = E .context(c{i}) .emit(i: {i})" for i in range(3))
rt = ContextRuntime(src, transport="ipc")
print("PIDS", *[s["pid"] for s in rt.status().values()], flush=True)
sys.stdin.read()
"""


def test_children_exit_when_the_server_is_killed() -> None:
    with Child([sys.executable, "-u", "-c", SERVER_SCRIPT], cwd=str(ROOT), stdin=subprocess.PIPE,
               env={"PYTHONPATH": str(ROOT)}) as server:  # fmt: skip
        pids = [int(p) for p in server.read_until(r"PIDS ([\d ]+)").group(1).split()]
        assert pids_alive(pids) == pids, server.output()
        server.kill()
        said = f"server said:\n{server.output()}"
        poll_for(lambda: not pids_alive(pids), timeout=5, what=f"orphans {pids} gone; {said}")


# ------------------------------------------------------------------ Mandelbrot, server seam


def mandelbrot_source(size: int = 250, max_iter: int = 256) -> str:
    src = (ROOT / "examples/mandelbrot/mandelbrot_server.vpl").read_text()
    src = src.replace("250, 256)", f"{size}, {max_iter})").replace("* 250", f"* {size}")
    return src.replace("mqtt (host:", "console (host:")


def test_sixteen_context_mandelbrot_deploys_and_computes_a_tile() -> None:
    src = mandelbrot_source(size=25, max_iter=64)
    src = src.replace('.to(MqttOut, topic: "mandelbrot/pixels")', "")
    started = time.perf_counter()
    with open_runtime(src, "contexts-ipc") as rt:
        ready = time.perf_counter() - started
        print(f"16 contexts ready in {ready:.2f} s")
        assert len(rt.status()) == 16 and ready < 10
        out = rt.process(Event("ComputeTile12", {}), wait=True)
        expected = Engine(src).process(Event("ComputeTile12", {}))
    assert len(out) == 25 * 25 and [e.fields for e in out] == [e.fields for e in expected]
    assert {e.fields["x"] // 25 for e in out} == {2} and {e.fields["y"] // 25 for e in out} == {1}


def test_server_manager_runs_context_programs_in_contexts() -> None:
    manager = PipelineManager(factory=runtime_factory("inproc"))
    try:
        plain = manager.deploy("plain", 'stream A = EventA .emit(result: "from-a")')
        assert isinstance(plain.runtime, InlineRuntime)
        ctx = manager.deploy("ctx", T1_9)
        assert isinstance(ctx.runtime, ContextRuntime)
        assert manager.inject(ctx.id, SENSORS[0]).outputs == []  # handed over, not waited
        result = manager.inject_batch(ctx.id, SENSORS, wait=True)
        assert sorted(e.event_type for e in result.outputs) == ["Analysis", "Filtered", "Filtered"]
        assert manager.inject(plain.id, Event("EventA", {}), wait=True).outputs[0].fields == {
            "result": "from-a"}  # fmt: skip
        assert manager.metrics(ctx.id)["events_in"] == 4
    finally:
        manager.close()
