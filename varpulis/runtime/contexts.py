"""Context orchestration in the parent: one child per declared ``context``, joined by transports.

A :class:`ContextRuntime` runs a pipeline plan across processes. Streams without
``.context(...)`` run inline, in this process, in an ``Engine(plan, context=None)``;
each context that has streams runs ``Engine(plan, context=name)`` in a child
(:mod:`varpulis.runtime.context_main`): a process from the preloaded forkserver
(``ipc``/``tcp``), or a thread speaking the same protocol over ``inproc`` (tests).
Ingress (the caller's thread, one call at a time) routes each event to every group
(inline or context) with a stream that reads its type; events cross in batches
(``Message.rows``), one per call and context. One collector thread owns the parent's
receiver: it reads the children's replies, forwards outputs to the other groups that
read their type (``stream B = A .context(c2)``; with ``.emit(context: c)`` only to
``c``), feeds outputs read by inline streams to the inline engine (under its lock),
keeps each child's counters, and supervises: a child that exits is reported in
:meth:`status`, its unacknowledged batches are counted lost, barriers waiting on it
are released, and it is restarted after an exponential backoff while batches for it
queue in the parent. ``process(..., wait=True)`` sends a barrier through every
context and every forwarding hop and returns all outputs: inline ones first, then
each context's in declaration order (order within a context is exact). Without
wait, calls return once events are handed over, with the inline outputs; context
outputs go to their sinks, which run in the children. Kernel outputs cross back as
``columns`` frames (:mod:`varpulis.runtime.chunks`): :meth:`process_chunks` returns
them as :class:`~kernels.columnar.ColumnarBatch` items, :meth:`process` and
:meth:`process_batch` as events; they become events in the parent only where
someone reads their type. :meth:`close` stops every
child and joins it (terminate, then kill, after a deadline); children also exit on
their own when this process dies. Sends to one child are serialised by its lock.
"""

from __future__ import annotations

import itertools
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import transports
from kernels.columnar import ColumnarBatch
from transports import Message, TransportError, TransportTimeout
from varpulis.compiler.plan import PipelinePlan, plan_program
from varpulis.errors import VarpulisError
from varpulis.events import Event
from varpulis.lang import ast
from varpulis.runtime.chunks import batch_from_message, merge
from varpulis.runtime.context_main import ChildSpec, main, serve
from varpulis.runtime.context_state import _Child, _Wait
from varpulis.runtime.engine import MAX_CHAIN_DEPTH, Engine, SinkFactory
from varpulis.runtime.operators import Item, materialise
from varpulis.runtime.routing import (
    Group,
    explicit_targets,
    forward_targets,
    readers_by_type,
)

__all__ = ["TRANSPORTS", "ContextFailed", "ContextRuntime", "ContextTimeout"]

logger = logging.getLogger("varpulis.runtime.contexts")

TRANSPORTS = ("ipc", "tcp", "inproc")


class ContextFailed(VarpulisError):
    """A context could not start (its engine did not build, or it never said hello)."""

    code, http_status = "context_failed", 500


class ContextTimeout(VarpulisError):
    """A flush barrier did not come back through every context in time."""

    code, http_status = "context_timeout", 504


class ContextRuntime:
    """A pipeline whose declared contexts run in child processes (or threads).

    Implements ``PipelineRuntime`` (``varpulis.server.pipelines``). ``transport``
    is ``ipc``, ``tcp`` or ``inproc`` (children as threads); ``sinks`` (picklable)
    and ``step_budget`` go to every engine; ``wait_timeout`` bounds a barrier,
    ``start_timeout`` the start of all children; ``backoff`` is the first and the
    longest restart delay (doubling per crash; reset after ``stable_after`` seconds
    of uptime); ``poll`` is the collector's supervision interval and
    ``child_poll`` how often a child checks that its parent lives (seconds).
    The constructor returns once every context said hello, or raises
    :class:`ContextFailed` (everything started is stopped).
    """

    #: ``process``/``process_batch`` accept ``wait`` (the server checks this).
    waits = True

    def __init__(
        self,
        plan: PipelinePlan | ast.Program | str,
        *,
        transport: str = "ipc",
        sinks: SinkFactory | None = None,
        step_budget: int | None = None,
        warnings: Sequence[str] = (),
        wait_timeout: float = 60.0,
        start_timeout: float = 30.0,
        backoff: tuple[float, float] = (0.1, 5.0),
        stable_after: float = 10.0,
        poll: float = 0.05,
        child_poll: float = 0.2,
        max_backlog: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if transport not in TRANSPORTS:
            msg = f"transport must be one of {', '.join(TRANSPORTS)}, not {transport!r}"
            raise ValueError(msg)
        if isinstance(plan, str):
            from varpulis.lang import parse

            plan = parse(plan)
        if isinstance(plan, ast.Program):
            plan = plan_program(plan)
        self.plan, self.transport, self.warnings = plan, transport, list(warnings)
        self.wait_timeout, self._backoff, self._stable_after = wait_timeout, backoff, stable_after
        self._poll, self._max_backlog, self._clock = poll, max_backlog, clock
        kwargs: dict[str, Any] = {} if step_budget is None else {"step_budget": step_budget}
        if sinks is not None:
            kwargs["sinks"] = sinks
        self._inline = Engine(plan, context=None, **kwargs)
        self._inline_lock = threading.Lock()
        self._readers = readers_by_type(plan)
        self._explicit = explicit_targets(plan)
        self._routes: dict[tuple[str, Group], tuple[Group, ...]] = {}
        self.names = tuple(c for c in plan.contexts if plan.streams_in(c))
        self._children = {name: _Child(name) for name in self.names}
        self._state = threading.Condition()
        self._ingress = threading.Lock()
        self._waits: dict[int, _Wait] = {}
        self._tags = itertools.count(1)
        self.events_in = 0
        self._closed = self._stopping = False
        self._receiver = transports.bind(_fresh(transport))
        self._spec = {
            "plan": plan, "parent_address": self._receiver.address, "scheme": transport,
            "sinks": sinks, "step_budget": step_budget, "poll": child_poll,
            "server_pid": 0 if transport == "inproc" else os.getpid(),
        }  # fmt: skip
        self._collector = threading.Thread(target=self._collect, daemon=True,
                                           name=f"varpulis-contexts-{id(self):x}")  # fmt: skip
        self._collector.start()
        try:
            for child in self._children.values():
                self._start(child)
            self._wait_started(start_timeout)
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> ContextRuntime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ ingress

    def process(self, event: Event, wait: bool = False) -> list[Event]:
        """Hand *event* to its readers; with *wait*, return every output it caused."""
        return self.process_batch((event,), wait=wait)

    def process_batch(self, events: Sequence[Event], wait: bool = False) -> list[Event]:
        """Hand *events* over in order (one batch per context); see :meth:`process`."""
        return materialise(self.process_chunks(events, wait=wait))

    def process_chunks(self, events: Sequence[Event], wait: bool = False) -> list[Item]:
        """As :meth:`process_batch`, but kernel outputs stay :class:`ColumnarBatch` items."""
        with self._ingress:
            if self._closed:
                msg = "the pipeline's contexts are closed"
                raise VarpulisError(msg)
            tag = next(self._tags) if wait else 0
            waiter = _Wait() if wait else None
            if waiter is not None:
                with self._state:
                    self._waits[tag] = waiter
            inline: list[Item] = []
            batches: dict[str, list[transports.Row]] = {}
            for ev in events:
                self.events_in += 1
                for group in self._readers.get(ev.event_type, ()):
                    if group is not None:
                        batches.setdefault(group, []).append((ev.event_type, ev.fields,
                                                              ev.timestamp))  # fmt: skip
                        continue
                    with self._inline_lock:
                        outs = self._inline.process_chunks(ev)
                    inline.extend(outs)
                    for out in self._readable(outs, None):
                        for target in self._targets(out.event_type, None):
                            if target is not None:
                                batches.setdefault(target, []).append(
                                    (out.event_type, out.fields, out.timestamp)
                                )
            for name in self.names:
                rows = batches.get(name)
                if rows or wait:
                    self._send(name, rows or [], tag, 0, barrier=wait)
            if waiter is None:
                return inline
            self._settle(tag, 1)
            try:
                if not waiter.done.wait(self.wait_timeout):
                    msg = (f"flush barrier did not return from every context within "
                           f"{self.wait_timeout} s; status: {self.status()}")  # fmt: skip
                    raise ContextTimeout(msg)
            finally:
                with self._state:
                    self._waits.pop(tag, None)
            if waiter.lost:
                logger.warning("%d barrier(s) lost to a crashed context; outputs are partial",
                               waiter.lost)  # fmt: skip
            out = inline + waiter.outputs.get(None, [])
            for name in self.names:
                out.extend(waiter.outputs.get(name, ()))
            return out

    def _readable(self, items: list[Item], source: Group) -> list[Event]:
        """The events of *items*, batches expanded only when another group reads their type."""
        if not any(type(i) is ColumnarBatch for i in items):
            return items  # type: ignore[return-value]
        return materialise([i for i in items if type(i) is not ColumnarBatch
                            or self._targets(i.event_type, source)])  # fmt: skip

    def _targets(self, event_type: str, source: Group) -> tuple[Group, ...]:
        key = (event_type, source)
        targets = self._routes.get(key)
        if targets is None:
            targets = forward_targets(self._readers, self._explicit, event_type, source)
            self._routes[key] = targets
        return targets

    def _send(self, name: str, rows: list[transports.Row], tag: int, hops: int,
              *, barrier: bool) -> None:  # fmt: skip
        child = self._children[name]
        msgs = [Message.rows(rows, {"tag": tag, "hops": hops})] if rows else []
        if barrier:
            msgs.append(Message.control("barrier", {"tag": tag}))
            with self._state:
                self._waits[tag].pending += 1
                child.outstanding[tag] += 1
        with child.lock:
            if child.sender is None:
                if len(child.backlog) + len(msgs) > self._max_backlog:
                    logger.error("context %r is down and its backlog is full: batch dropped", name)
                    with self._state:
                        child.lost_batches += 1 if rows else 0
                    msgs = msgs[1:] if rows else msgs
                child.backlog.extend(msgs)
                return
            for msg in msgs:
                child.sender.send(msg)
                child.sent += msg.kind == transports.ROWS

    def _settle(self, tag: int, n: int, lost: int = 0) -> None:
        with self._state:
            waiter = self._waits.get(tag)
            if waiter is None:
                return
            waiter.pending -= n
            waiter.lost += lost
            if waiter.pending <= 0:
                waiter.done.set()

    # ------------------------------------------------------------------ collector thread

    def _collect(self) -> None:
        next_check = 0.0
        while not self._stopping:
            try:
                msg = self._receiver.recv(self._poll)
            except TransportTimeout:
                msg = None
            except TransportError:
                logger.exception("context replies: receive failed")
                continue
            if msg is not None:
                try:
                    self._handle(msg)
                except Exception:  # one bad reply must not stop the pipeline
                    logger.exception("context replies: cannot handle %r", msg)
            now = self._clock()
            if now >= next_check:
                next_check = now + self._poll
                self._supervise(now)

    def _handle(self, msg: Message) -> None:
        child = self._children.get(msg.meta.get("ctx"))
        if child is None or msg.meta.get("gen") != child.gen:
            return  # a reply of a crashed generation: already counted lost
        kind = msg.kind
        if kind == transports.COLUMNS:
            child.chunks.append(batch_from_message(msg))
        elif kind == transports.ROWS:
            tag = msg.meta["tag"]
            events = merge([Event(t, f, ts) for t, f, ts in msg.body], child.chunks)
            child.chunks = []
            with self._state:
                child.processed = msg.meta["batches"]
                child.metrics = msg.meta.get("metrics") or child.metrics
                waiter = self._waits.get(tag) if tag else None
                if waiter is not None and events:
                    waiter.outputs.setdefault(child.name, []).extend(events)
            self._forward(events, child.name, tag, msg.meta.get("hops", 0) + 1)
        elif kind == "ack":
            tag = msg.meta["tag"]
            with self._state:
                child.outstanding[tag] -= 1
                if child.outstanding[tag] <= 0:
                    del child.outstanding[tag]
            self._settle(tag, 1)
        elif kind == "hello":
            with child.lock:
                child.sender = transports.connect(msg.meta["address"])
                for queued in child.backlog:
                    child.sender.send(queued)
                    child.sent += queued.kind == transports.ROWS
                child.backlog.clear()
            with self._state:
                child.address, child.pid = msg.meta["address"], msg.meta["pid"]
                child.state, child.error = "running", None
                self._state.notify_all()
            logger.info("context %r running (pid %s, %s)", child.name, child.pid, child.address)
        elif kind == "error":
            with self._state:
                child.error = msg.meta.get("error")
                child.state = "failed"
                self._state.notify_all()
            logger.error("context %r failed to start: %s", child.name, child.error)
            self._terminate(child)
        elif kind == "bye":
            with child.lock:
                if child.sender is not None:
                    child.sender.send(Message.control("close"))
            with self._state:
                child.metrics = msg.meta.get("metrics") or child.metrics
                child.state = "stopped"
                self._state.notify_all()

    def _forward(self, items: list[Item], source: Group, tag: int, hops: int) -> None:
        """Send *items* (outputs of *source*) on to the other groups that read them."""
        batches: dict[str, list[transports.Row]] = {}
        for ev in self._readable(items, source):
            for target in self._targets(ev.event_type, source):
                if hops > MAX_CHAIN_DEPTH:
                    logger.warning("%r: chain across contexts deeper than %d hops cut",
                                   ev.event_type, MAX_CHAIN_DEPTH)  # fmt: skip
                    break
                if target is not None:
                    batches.setdefault(target, []).append((ev.event_type, ev.fields,
                                                           ev.timestamp))  # fmt: skip
                    continue
                with self._inline_lock:
                    outs = self._inline.process(ev)
                if outs:
                    with self._state:
                        waiter = self._waits.get(tag) if tag else None
                        if waiter is not None:
                            waiter.outputs.setdefault(None, []).extend(outs)
                    self._forward(outs, None, tag, hops + 1)
        for name, rows in batches.items():
            if tag and tag not in self._waits:
                tag = 0  # the waiter gave up (timeout): deliver without a barrier
            self._send(name, rows, tag, hops, barrier=bool(tag))

    # ------------------------------------------------------------------ supervision

    def _start(self, child: _Child) -> None:
        if child.worker is not None and child.alive():  # never two generations at once
            self._terminate(child)
        spec = ChildSpec(name=child.name, generation=child.gen, routed=self._routed(child.name),
                         **self._spec)  # fmt: skip
        with self._state:
            child.state, child.pid = "spawning", None  # not supervised yet; exitcode: the last exit
            child.sent = child.processed = 0
            child.started_at = self._clock()
        if self.transport == "inproc":
            child.stop = threading.Event()
            name = f"varpulis-context-{child.name}"
            child.worker = threading.Thread(target=serve, args=(spec, None, child.stop),
                                            daemon=True, name=name)  # fmt: skip
            child.worker.start()
        else:
            from varpulis.runtime.forkserver import start_process

            child.worker = start_process(main, (spec,), f"varpulis-context-{child.name}")
        with self._state:
            if child.state == "spawning":  # unless it already said hello
                child.state = "starting"
            if child.pid is None:
                child.pid = getattr(child.worker, "pid", None)

    def _routed(self, name: str) -> frozenset[str]:
        return frozenset(t for t in self._readers if self._targets(t, name))

    def _wait_started(self, timeout: float) -> None:
        deadline = self._clock() + timeout
        with self._state:
            while True:
                failed = [c for c in self._children.values() if c.state == "failed"]
                if failed:
                    c = failed[0]
                    msg = f"context {c.name!r} failed to start: {c.error}"
                    raise ContextFailed(msg)
                if all(c.state == "running" for c in self._children.values()):
                    return
                left = deadline - self._clock()
                if left <= 0:
                    late = [c.name for c in self._children.values() if c.state != "running"]
                    msg = f"contexts {late} did not start within {timeout} s"
                    raise ContextFailed(msg)
                self._state.wait(min(left, self._poll))

    def _supervise(self, now: float) -> None:
        for child in self._children.values():
            if child.state in ("starting", "running", "failed") and not child.alive():
                self._on_death(child, now)
            elif child.state == "restarting" and now >= child.restart_at and not self._stopping:
                with self._state:
                    child.restarts += 1
                self._start(child)

    def _on_death(self, child: _Child, now: float) -> None:
        exitcode = getattr(child.worker, "exitcode", None)
        with child.lock:
            sender, child.sender = child.sender, None
        if sender is not None:
            sender.close()
        with self._state:
            lost = max(child.sent - child.processed, 0) if sender is not None else 0
            child.lost_batches += lost
            barriers = dict(child.outstanding) if sender is not None else {}
            for tag, n in barriers.items():
                child.outstanding.pop(tag, None)
                child.lost_barriers += n
            if now - child.started_at >= self._stable_after:
                child.failures = 0
            child.failures += 1
            first, longest = self._backoff
            delay = min(longest, first * 2 ** (child.failures - 1))
            child.state, child.exitcode, child.restart_at = "restarting", exitcode, now + delay
            child.gen += 1
            child.chunks = []
            _add_counters(child.base, child.metrics)
            child.metrics = {}
            self._state.notify_all()
        for tag, n in barriers.items():
            self._settle(tag, n, lost=n)
        _remove_ipc_dir(child.address)
        logger.warning("context %r (pid %s) exited with %s; %d batch(es) lost; restart in %.2f s",
                       child.name, child.pid, exitcode, lost, delay)  # fmt: skip

    def _terminate(self, child: _Child) -> None:
        if isinstance(child.worker, threading.Thread) and child.stop is not None:
            child.stop.set()
        elif child.worker is not None and child.worker.is_alive():
            child.worker.terminate()

    # ------------------------------------------------------------------ queries

    def status(self) -> dict[str, dict[str, Any]]:
        """Per context: state, pid, generation, restarts, lost batches/barriers, error."""
        with self._state:
            return {c.name: {"state": c.state, "pid": c.pid, "generation": c.gen,
                             "restarts": c.restarts, "lost_batches": c.lost_batches,
                             "lost_barriers": c.lost_barriers, "exitcode": c.exitcode,
                             "error": c.error, "address": c.address}
                    for c in self._children.values()}  # fmt: skip

    def metrics(self) -> dict[str, Any]:
        """Engine-style counters summed over the inline engine and every context."""
        with self._inline_lock:
            total = self._inline.metrics()
        total["events_in"] = self.events_in
        with self._state:
            for child in self._children.values():
                m: dict[str, Any] = {}
                _add_counters(m, child.base)
                _add_counters(m, child.metrics)
                for key in ("events_out", "errors", "late_dropped"):
                    total[key] = total.get(key, 0) + m.get(key, 0)
                total["streams"].update(m.get("streams", {}))
                total.setdefault("vectorised", {}).update(m.get("vectorised", {}))
                for name, entry in m.get("fallback", {}).items():
                    reason = child.metrics.get("fallback", {}).get(name, {}).get("reason")
                    total.setdefault("fallback", {})[name] = {**entry, "reason": reason}
        total["contexts"] = self.status()
        return total

    # ------------------------------------------------------------------ shutdown

    def close(self, timeout: float = 5.0) -> None:
        """Stop every child (sinks closed there), join it, stop the collector. Idempotent."""
        with self._ingress:
            if self._closed:
                return
            self._closed = True
        for child in self._children.values():
            with child.lock:
                if child.sender is not None:
                    try:
                        child.sender.send(Message.control("stop"), timeout=1.0)
                    except TransportError:
                        logger.warning("context %r: cannot send stop", child.name)
        deadline = self._clock() + timeout
        with self._state:
            while any(c.state in ("running",) and c.alive() for c in self._children.values()):
                left = deadline - self._clock()
                if left <= 0:
                    break
                self._state.wait(min(left, self._poll))
        self._stopping = True
        if self._collector.is_alive() and self._collector is not threading.current_thread():
            self._collector.join(timeout)
        for child in self._children.values():
            self._join(child, max(deadline - self._clock(), 1.0))
        for child in self._children.values():
            with child.lock:
                if child.sender is not None:
                    child.sender.close()
                    child.sender = None
            _remove_ipc_dir(child.address)
        self._receiver.close()
        with self._inline_lock:
            self._inline.close()

    def _join(self, child: _Child, timeout: float) -> None:
        worker = child.worker
        if worker is None:
            return
        if isinstance(worker, threading.Thread):
            if child.stop is not None:
                child.stop.set()
            worker.join(timeout)
            return
        worker.join(timeout)
        if worker.is_alive():
            logger.warning("context %r did not stop in time: terminating", child.name)
            worker.terminate()
            worker.join(1.0)
        if worker.is_alive():
            worker.kill()
            worker.join(1.0)
        worker.close()


def _fresh(transport: str) -> str:  # a free port, a fresh ipc path, a fresh inproc name
    return "tcp://127.0.0.1:0" if transport == "tcp" else f"{transport}://"


def _add_counters(into: dict[str, Any], more: dict[str, Any]) -> None:
    """Add Engine.metrics()-shaped counters *more* into *into* (nested per stream)."""
    for key, value in more.items():
        if isinstance(value, dict):
            _add_counters(into.setdefault(key, {}), value)
        elif isinstance(value, (int, float)):
            into[key] = into.get(key, 0) + value


def _remove_ipc_dir(address: str | None) -> None:
    """A SIGKILLed child leaves its fresh ``ipc://`` directory behind: remove it."""
    if not address or not address.startswith("ipc://"):
        return
    directory = os.path.dirname(address[len("ipc://") :])
    if os.path.basename(directory).startswith("vp-ipc-"):
        shutil.rmtree(directory, ignore_errors=True)
