"""The process-wide multiprocessing context that starts context processes.

:func:`get_context` returns the ``forkserver`` context, configured once per
process to preload the heavy imports (numpy, pyzmq, the transports, the compiler
and the engine), and starts the fork server on first use so later starts only
fork a warm, single-threaded process: never a plain ``fork`` of the threaded
server, and not ``spawn``, which re-imports numpy and the engine in every child
(≈ 0.3 s of CPU each). :func:`start_process` starts a child without
re-running the parent's ``__main__`` module (its targets live in importable
modules; a script without a ``__main__`` guard would otherwise start itself
again). Thread-safe; in a forked child (pid changed) it is set up
again. The fork server exits when this process dies, and the context children
ask for SIGKILL when it does (:mod:`varpulis.runtime.context_main`).
"""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.forkserver
import os
import threading
from collections.abc import Callable
from multiprocessing import spawn
from multiprocessing.context import BaseContext
from multiprocessing.process import BaseProcess
from typing import Any

__all__ = ["PRELOAD", "get_context", "start_process"]

logger = logging.getLogger("varpulis.runtime.contexts")

#: Imported once in the fork server, inherited by every context process.
PRELOAD = [
    "numpy",
    "zmq",
    "transports",
    "varpulis.events",
    "varpulis.lang",
    "varpulis.compiler.plan",
    "varpulis.compiler.exprs",
    "varpulis.compiler.functions",
    "varpulis.runtime.engine",
    "varpulis.runtime.context_main",
    "varpulis.connectors.registry",
]

_lock = threading.Lock()
_start_lock = threading.Lock()
_ctx: BaseContext | None = None
_pid = -1


def get_context() -> BaseContext:
    """The forkserver context with :data:`PRELOAD`, its server already running."""
    global _ctx, _pid
    with _lock:
        if _ctx is None or _pid != os.getpid():
            ctx = multiprocessing.get_context("forkserver")
            ctx.set_forkserver_preload(PRELOAD)
            multiprocessing.forkserver.ensure_running()
            _ctx, _pid = ctx, os.getpid()
            logger.debug("fork server running, preloaded %s", ", ".join(PRELOAD))
        return _ctx


def start_process(target: Callable[..., Any], args: tuple[Any, ...], name: str) -> BaseProcess:
    """Start ``target(*args)`` in a daemonic forkserver child; return the started process.

    The child does not import the parent's ``__main__``: *target* and *args*
    must be picklable from importable modules. multiprocessing has no option
    for that, so the preparation data is filtered while this process starts
    (under a lock; other processes started by other threads at the same
    moment would be filtered too, which is harmless for importable targets).
    """
    proc = get_context().Process(target=target, args=args, name=name, daemon=True)
    with _start_lock:
        original = spawn.get_preparation_data

        def without_main(process_name: str) -> dict[str, Any]:
            data = original(process_name)
            data.pop("init_main_from_path", None)
            data.pop("init_main_from_name", None)
            return data

        spawn.get_preparation_data = without_main
        try:
            proc.start()
        finally:
            spawn.get_preparation_data = original
    return proc
