"""Test helpers: polling with a deadline, child processes that report their output,
and the canonical form output events are compared in.

No test sleeps a fixed time: :func:`poll_for` retries a probe until it returns a
truthy value or the deadline passes. :class:`Child` starts a real process with
stdout/stderr captured by reader threads, so :meth:`Child.read_until` can wait
for a banner line (a regex) with a deadline, and :meth:`Child.output` gives
everything printed so far for failure messages.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

__all__ = ["Child", "canon", "poll_for", "varpulis_cmd"]

T = TypeVar("T")


def canon(events: list[Any]) -> list[tuple]:
    """Events as comparable tuples: type, fields with key order and exact Python
    types (NaN equal to NaN, 0.0 unequal to -0.0), timestamp."""
    return [
        (e.event_type, tuple((k, type(v).__name__, repr(v)) for k, v in e.fields.items()),
         e.timestamp)
        for e in events
    ]  # fmt: skip


def poll_for(probe: Callable[[], T], timeout: float = 10.0, interval: float = 0.02,
             what: str = "condition") -> T:  # fmt: skip
    """Call *probe* until it returns a truthy value (returned) or *timeout* s pass.

    Exceptions from the probe count as "not yet"; the last one is chained to
    the TimeoutError raised at the deadline.
    """
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while True:
        try:
            value = probe()
            if value:
                return value
        except Exception as exc:  # noqa: BLE001 - a probe may fail until ready
            last = exc
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{what} not met within {timeout} s") from last
        time.sleep(interval)


def varpulis_cmd(*args: str) -> list[str]:
    """The command line running ``python -m varpulis ARGS`` with this interpreter."""
    return [sys.executable, "-m", "varpulis", *args]


class Child:
    """A child process whose stdout and stderr lines are collected in the background."""

    def __init__(self, cmd: Sequence[str], env: dict[str, str] | None = None, **kw: Any) -> None:
        full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.cmd = list(cmd)
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, env=full_env, **kw)  # fmt: skip
        self._lines: queue.Queue[str] = queue.Queue()
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        for stream, sink, tag in ((self.proc.stdout, self.stdout, True),
                                  (self.proc.stderr, self.stderr, False)):  # fmt: skip
            threading.Thread(target=self._pump, args=(stream, sink, tag), daemon=True).start()

    def _pump(self, stream: Any, sink: list[str], to_queue: bool) -> None:
        for line in stream:
            sink.append(line)
            if to_queue:
                self._lines.put(line)

    def read_until(self, pattern: str, timeout: float = 15.0) -> re.Match[str]:
        """Wait for a stdout line matching *pattern*; AssertionError with the output if none."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no stdout line matched {pattern!r}\n{self.output()}")
            try:
                line = self._lines.get(timeout=min(left, 0.1))
            except queue.Empty:
                if self.proc.poll() is not None and self._lines.empty():
                    raise AssertionError(
                        f"process exited ({self.proc.returncode}) before {pattern!r}\n"
                        f"{self.output()}"
                    ) from None
                continue
            match = regex.search(line)
            if match:
                return match

    def output(self) -> str:
        return (f"$ {' '.join(self.cmd)}\n--- stdout ---\n{''.join(self.stdout)}"
                f"--- stderr ---\n{''.join(self.stderr)}")  # fmt: skip

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        """Send *sig* and wait for the exit; kill after *timeout* s. Returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(f"process ignored {sig!r}\n{self.output()}") from None
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> Child:
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()
