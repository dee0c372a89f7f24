"""The loop of one context: an Engine for the streams of one declared ``context``.

:func:`main` runs in a child process started from the forkserver
(:mod:`varpulis.runtime.forkserver`); :func:`serve` is the same loop, and in
``inproc`` mode the parent runs it on a thread. It builds
``Engine(spec.plan, context=spec.name)`` from the pickled plan (never closures),
binds its inbound receiver (a fresh ``ipc://`` path, a free ``tcp://`` port or an
``inproc://`` name), connects to the parent's receiver and says ``hello`` with its
address. Then, in order: a ``rows`` batch (``(event_type, fields, timestamp_ns)``
tuples, meta ``tag``) is processed event by event, its sinks (``.to``) fire here,
and one ``rows`` reply goes back carrying the batch's outputs (all of them for a
tagged batch, which someone waits for; only those another context or the inline
engine reads otherwise) and the engine's counters; outputs a kernel produced as
columnar batches go ahead of it as ``columns`` messages (:mod:`varpulis.runtime.chunks`:
no per-row work here, and the parent restores the order); a ``barrier`` is answered with
an ``ack`` of the same tag once everything before it was processed; ``stop``
closes the sinks and ends the loop. Only this thread touches the engine and the
two endpoints. A child process exits by itself when the parent disappears: it
asks the kernel for SIGKILL when the forkserver (its parent) dies, which happens
when the server dies, and it also polls ``os.getppid()`` and the server's pid
every ``poll`` seconds. An engine that fails to build is reported with an
``error`` message and the process exits with status 1.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import transports
from transports import Message, TransportTimeout

__all__ = ["ChildSpec", "main", "serve"]

logger = logging.getLogger("varpulis.runtime.contexts")

_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True, slots=True)
class ChildSpec:
    """What a context child needs; picklable (the plan is AST plus plain data).

    ``routed`` are the output types someone outside this context reads (they are
    sent back even for untagged batches); ``scheme`` is the transport of the
    child's own receiver; ``server_pid`` is the process to outlive never
    (0: none, thread mode); ``generation`` tells restarts apart.
    """

    name: str
    plan: Any
    parent_address: str
    scheme: str
    routed: frozenset[str] = frozenset()
    sinks: Callable[..., Any] | None = None
    step_budget: int | None = None
    server_pid: int = 0
    generation: int = 0
    poll: float = 0.2
    host: str = "127.0.0.1"
    linger: float = 5.0


def main(spec: ChildSpec) -> None:
    """Entry point of a context process (the forkserver's target)."""
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when we stop
    start_ppid = os.getppid()

    def parent_gone() -> bool:
        return os.getppid() != start_ppid or not _pid_alive(spec.server_pid)

    try:
        serve(spec, parent_gone)
    except BaseException:
        logger.exception("context %r failed", spec.name)
        os._exit(1)
    os._exit(0)  # skip atexit/finalizers inherited from the forkserver


def serve(spec: ChildSpec, parent_gone: Callable[[], bool] | None = None,
          stop: threading.Event | None = None) -> None:  # fmt: skip
    """Run the context loop until ``stop`` arrives, the parent is gone or *stop* is set."""
    from kernels.columnar import ColumnarBatch
    from varpulis.events import Event
    from varpulis.runtime.chunks import batch_message
    from varpulis.runtime.engine import Engine

    reply = transports.connect(spec.parent_address)
    meta = {"ctx": spec.name, "gen": spec.generation}
    try:
        kwargs: dict[str, Any] = {"context": spec.name}
        if spec.sinks is not None:
            kwargs["sinks"] = spec.sinks
        if spec.step_budget is not None:
            kwargs["step_budget"] = spec.step_budget
        engine = Engine(spec.plan, **kwargs)
        inbox = transports.bind(_fresh_address(spec.scheme, spec.host))
    except Exception as exc:
        reply.send(Message.control("error", {**meta, "error": f"{type(exc).__name__}: {exc}"}))
        # the reply must leave before its sender closes (LINGER 0): the parent
        # stops this child once it has read the error
        threading.Event().wait(spec.linger)
        raise
    reply.send(Message.control("hello", {**meta, "address": inbox.address, "pid": os.getpid()}))
    routed, batches = spec.routed, 0
    try:
        while stop is None or not stop.is_set():
            try:
                msg = inbox.recv(spec.poll)
            except TransportTimeout:
                if parent_gone is not None and parent_gone():
                    logger.warning("context %r: parent gone, exiting", spec.name)
                    return
                continue
            if msg.kind == transports.ROWS:
                tag = msg.meta.get("tag", 0)
                outputs: list[Any] = []
                process = engine.process_chunks
                for event_type, fields, ts in msg.body:
                    outputs.extend(process(Event(event_type, fields, ts)))
                if not tag:
                    outputs = [o for o in outputs if o.event_type in routed]
                batches += 1
                rows: list[Any] = []
                chunks = 0
                for o in outputs:
                    if type(o) is ColumnarBatch:
                        frame = batch_message(o, len(rows), {**meta, "tag": tag})
                        if frame is not None:
                            reply.send(frame)
                            chunks += 1
                            continue
                        rows.extend((o.event_type, f, ts) for f, ts in o.iter_rows())
                    else:
                        rows.append((o.event_type, o.fields, o.timestamp))
                reply.send(
                    Message.rows(
                        rows,
                        {
                            **meta,
                            "tag": tag,
                            "chunks": chunks,
                            "batches": batches,
                            "hops": msg.meta.get("hops", 0),
                            "metrics": engine.metrics(),
                        },
                    )
                )
            elif msg.kind == "barrier":
                reply.send(Message.control("ack", {**meta, "tag": msg.meta.get("tag", 0)}))
            elif msg.kind == "stop":
                engine.close()
                reply.send(Message.control("bye", {**meta, "metrics": engine.metrics()}))
                _linger(inbox, spec.linger)
                return
            elif msg.kind != "close":
                logger.warning("context %r: unknown message kind %r", spec.name, msg.kind)
    finally:
        inbox.close()
        reply.close()


def _fresh_address(scheme: str, host: str) -> str:
    if scheme == "tcp":
        return f"tcp://{host}:0"
    return f"{scheme}://"


def _linger(inbox: Any, timeout: float) -> None:
    """Keep the reply sender open until the parent confirms it read ``bye`` (LINGER 0)."""
    try:
        while inbox.recv(timeout).kind != "close":
            pass
    except TransportTimeout:
        pass


def _pid_alive(pid: int) -> bool:
    if not pid:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _die_with_parent() -> None:
    """Linux: SIGKILL this process when its parent (the forkserver) exits."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the getppid poll still applies
        pass
