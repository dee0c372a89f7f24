"""``inproc://name`` transport: a named, bounded ``queue.Queue`` inside one process.

It mirrors the zmq backends so tests and thread-mode contexts see the same
behaviour: messages are encoded on send and decoded on receive by
:mod:`transports.codec` (so an unserialisable message fails here too, and received
arrays are read-only views, sharing memory with the sender's arrays), senders may
connect before the receiver binds and queue up to the high-water mark, closing the
receiver drops its queued messages while senders keep queueing for the next
receiver bound at that name, and binding a name that is bound raises
:class:`~transports.core.AddressInUse`. Names are process-local; a forked child
starts with none.
"""

from __future__ import annotations

import itertools
import os
import queue
import threading
from typing import Any

from transports import codec
from transports.core import (
    DEFAULT_HWM,
    AddressInUse,
    InvalidAddress,
    Message,
    Receiver,
    Sender,
    TransportTimeout,
    check_hwm,
    check_timeout,
)
from transports.registry import Backend, register

__all__ = ["InprocBackend", "InprocReceiver", "InprocSender"]


class _Channel:
    """The queue behind one name, shared by its receiver and all its senders."""

    __slots__ = ("bound", "name", "queue", "senders")

    def __init__(self, name: str, hwm: int) -> None:
        self.name = name
        self.queue: queue.Queue[list[Any]] = queue.Queue(maxsize=hwm)
        self.bound = False
        self.senders = 0

    def resize(self, hwm: int) -> None:
        q = self.queue
        with q.mutex:
            q.maxsize = hwm
            q.not_full.notify_all()


_channels: dict[str, _Channel] = {}
_lock = threading.Lock()
_anonymous = itertools.count()


def _after_fork_in_child() -> None:
    global _lock
    _lock = threading.Lock()
    _channels.clear()


os.register_at_fork(after_in_child=_after_fork_in_child)


def _release(channel: _Channel) -> None:
    """Forget *channel* once nothing refers to it; call with ``_lock`` held."""
    if not channel.bound and channel.senders == 0 and _channels.get(channel.name) is channel:
        del _channels[channel.name]


def _wait(timeout: float | None) -> dict[str, Any]:
    """``queue.Queue`` keyword arguments for a timeout in seconds."""
    if check_timeout(timeout) == 0:
        return {"block": False}
    return {"block": True, "timeout": timeout}


class InprocReceiver(Receiver):
    """The consumer of one named channel; see :class:`~transports.core.Receiver`."""

    def __init__(self, channel: _Channel) -> None:
        self._channel = channel
        self._queue = channel.queue
        self._pending: list[Any] | None = None
        self._closed = False
        self.address = f"inproc://{channel.name}"

    @property
    def closed(self) -> bool:
        return self._closed

    def recv(self, timeout: float | None = None) -> Message:
        self._check_open()
        frames = self._pending
        if frames is None:
            try:
                frames = self._queue.get(**_wait(timeout))
            except queue.Empty:
                msg = f"no message on {self.address!r} within {timeout!r} s"
                raise TransportTimeout(msg) from None
        self._pending = None
        return codec.decode(frames)

    def poll(self, timeout: float | None = 0.0) -> bool:
        self._check_open()
        if self._pending is None:
            # A queue cannot be peeked with a timeout; hold the message for recv().
            try:
                self._pending = self._queue.get(**_wait(timeout))
            except queue.Empty:
                return False
        return True

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._pending = None
        with _lock:
            self._channel.bound = False
            _drain(self._queue)
            _release(self._channel)


def _drain(q: queue.Queue[Any]) -> None:
    while True:
        try:
            q.get_nowait()
        except queue.Empty:
            return


class InprocSender(Sender):
    """One producer into a named channel; see :class:`~transports.core.Sender`."""

    def __init__(self, channel: _Channel) -> None:
        self._channel = channel
        self._queue = channel.queue
        self._closed = False
        self.address = f"inproc://{channel.name}"

    @property
    def closed(self) -> bool:
        return self._closed

    def send(self, message: Message, timeout: float | None = None) -> None:
        self._check_open()
        frames = codec.encode(message)
        try:
            self._queue.put(frames, **_wait(timeout))
        except queue.Full:
            msg = f"sender to {self.address!r} stayed at its high-water mark for {timeout!r} s"
            raise TransportTimeout(msg) from None

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with _lock:
            self._channel.senders -= 1
            _release(self._channel)


class InprocBackend(Backend):
    """Backend of the ``inproc`` scheme: names map to in-process channels."""

    def bind(self, loc: str, *, hwm: int = DEFAULT_HWM) -> InprocReceiver:
        check_hwm(hwm)
        with _lock:
            name = loc
            if loc in ("", "*"):
                name = f"anonymous-{next(_anonymous)}"
                while name in _channels:
                    name = f"anonymous-{next(_anonymous)}"
            channel = _channels.get(name)
            if channel is None:
                channel = _channels[name] = _Channel(name, hwm)
            elif channel.bound:
                msg = f"inproc name {name!r} is already bound in this process"
                raise AddressInUse(msg)
            else:
                channel.resize(hwm)
            channel.bound = True
            return InprocReceiver(channel)

    def connect(self, loc: str, *, hwm: int = DEFAULT_HWM) -> InprocSender:
        check_hwm(hwm)
        if loc in ("", "*"):
            msg = f"cannot connect to inproc name {loc!r}: give the receiver's name"
            raise InvalidAddress(msg)
        with _lock:
            channel = _channels.get(loc)
            if channel is None:
                channel = _channels[loc] = _Channel(loc, hwm)
            channel.senders += 1
            return InprocSender(channel)


register("inproc", InprocBackend())
