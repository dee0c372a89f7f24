"""``tcp://`` and ``ipc://`` transports over pyzmq PUSH/PULL sockets.

A receiver is a bound PULL socket, a sender a connected PUSH socket, so any number
of senders fan in to one receiver with per-sender order and fair interleaving.
Each process uses one ``zmq.Context``, created on first use and re-created when the
pid changes, so a module imported before ``fork`` or by a forkserver is safe
(sockets still never cross a fork). Sockets close with ``LINGER`` 0 and both queues
are bounded by the high-water mark, in messages. Messages go through
:mod:`transports.codec` and leave with ``send_multipart(copy=False)``: pyzmq copies
frames below its 64 KiB copy threshold and references the caller's buffers above it.
"""

from __future__ import annotations

import errno
import logging
import math
import os
import shutil
import socket
import tempfile
import threading

import zmq

from transports import codec
from transports.addressing import split_host_port
from transports.core import (
    DEFAULT_HWM,
    AddressInUse,
    InvalidAddress,
    Message,
    Receiver,
    Sender,
    TransportError,
    TransportTimeout,
    check_hwm,
    check_timeout,
)
from transports.registry import Backend, register

__all__ = ["ZmqBackend", "ZmqReceiver", "ZmqSender", "context"]

logger = logging.getLogger(__name__)

_ctx: zmq.Context | None = None
_ctx_pid = -1
_ctx_lock = threading.Lock()
# A context inherited across fork has no I/O threads in the child, so destroying it
# there (its __del__ would) can hang; keep a reference and never use it again.
_inherited: list[zmq.Context] = []


def _after_fork_in_child() -> None:
    global _ctx_lock
    # Another parent thread may have held the lock at fork time; it never unlocks here.
    _ctx_lock = threading.Lock()


os.register_at_fork(after_in_child=_after_fork_in_child)


def context() -> zmq.Context:
    """The process-wide zmq context, created lazily and never reused across fork."""
    global _ctx, _ctx_pid
    pid = os.getpid()
    if _ctx is not None and _ctx_pid == pid:
        return _ctx
    with _ctx_lock:
        if _ctx is None or _ctx_pid != pid:
            if _ctx is not None:
                _inherited.append(_ctx)
            _ctx, _ctx_pid = zmq.Context(), pid
            logger.debug("created zmq context in pid %d", pid)
        return _ctx


def _timeout_ms(timeout: float | None) -> int | None:
    """A validated timeout in seconds as zmq poll milliseconds (``None`` blocks)."""
    checked = check_timeout(timeout)
    # Round up: a positive timeout below 1 ms must still wait, not degrade to polling.
    return None if checked is None else math.ceil(checked * 1000)


def _bind_endpoint(scheme: str, loc: str) -> tuple[str, str | None]:
    """zmq endpoint to bind for *loc*, and the temporary directory created for it."""
    if scheme == "tcp":
        host, port = split_host_port(loc)
        if port in ("0", "*"):
            port = "*"
        elif not (port.isdigit() and 0 < int(port) < 65536):
            msg = f"tcp port in {loc!r} must be 1-65535, or 0 or * for any free port"
            raise InvalidAddress(msg)
        return f"tcp://{_bracket(host)}:{port}", None
    if loc in ("", "*"):
        tmpdir = tempfile.mkdtemp(prefix="vp-ipc-")
        return f"ipc://{os.path.join(tmpdir, 'r.sock')}", tmpdir
    if _ipc_in_use(loc):
        # libzmq silently unlinks an existing socket file and steals the path.
        msg = f"ipc address {loc!r} is in use by a live receiver"
        raise AddressInUse(msg)
    return f"ipc://{loc}", None


def _connect_endpoint(scheme: str, loc: str) -> str:
    if scheme == "tcp":
        host, port = split_host_port(loc)
        if not (port.isdigit() and 0 < int(port) < 65536):
            msg = f"cannot connect to {loc!r}: the tcp port must be 1-65535"
            raise InvalidAddress(msg)
        return f"tcp://{_bracket(host)}:{port}"
    if loc in ("", "*"):
        msg = f"cannot connect to ipc location {loc!r}: give the receiver's socket path"
        raise InvalidAddress(msg)
    return f"ipc://{loc}"


def _bracket(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _ipc_in_use(path: str) -> bool:
    if path.startswith("@") or not os.path.exists(path):
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(path)
        except OSError:
            return False  # a stale file left by a dead process: zmq may reuse it
    return True


def _new_socket(kind: int, endpoint: str, hwm: int) -> zmq.Socket:
    sock = context().socket(kind)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.SNDHWM if kind == zmq.PUSH else zmq.RCVHWM, hwm)
    if endpoint.startswith("tcp://["):
        sock.setsockopt(zmq.IPV6, 1)
    return sock


def _zmq_error(action: str, endpoint: str, exc: zmq.ZMQError) -> TransportError:
    msg = f"cannot {action} {endpoint!r}: {exc.strerror}"
    if exc.errno == errno.EADDRINUSE:
        return AddressInUse(msg)
    if exc.errno in (errno.EINVAL, errno.ENAMETOOLONG, errno.EPROTONOSUPPORT, errno.ENODEV):
        return InvalidAddress(msg)
    return TransportError(msg)


class ZmqReceiver(Receiver):
    """PULL socket bound at ``scheme://loc``; :attr:`address` is the resolved endpoint."""

    def __init__(self, scheme: str, loc: str, *, hwm: int = DEFAULT_HWM) -> None:
        check_hwm(hwm)
        endpoint, self._tmpdir = _bind_endpoint(scheme, loc)
        sock = _new_socket(zmq.PULL, endpoint, hwm)
        try:
            sock.bind(endpoint)
        except zmq.ZMQError as exc:
            sock.close()
            self._remove_tmpdir()
            error = _zmq_error("bind", endpoint, exc)
            raise error from exc
        self._sock = sock
        self._closed = False
        self.address: str = sock.getsockopt_string(zmq.LAST_ENDPOINT)

    @property
    def closed(self) -> bool:
        return self._closed

    def recv(self, timeout: float | None = None) -> Message:
        self._check_open()
        sock = self._sock
        if timeout is None:
            frames = sock.recv_multipart(copy=False)
        else:
            if not sock.poll(_timeout_ms(timeout), zmq.POLLIN):
                msg = f"no message on {self.address!r} within {timeout!r} s"
                raise TransportTimeout(msg)
            frames = sock.recv_multipart(zmq.NOBLOCK, copy=False)
        return codec.decode(frames)

    def poll(self, timeout: float | None = 0.0) -> bool:
        self._check_open()
        return bool(self._sock.poll(_timeout_ms(timeout), zmq.POLLIN))

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._sock.close(linger=0)
        self._remove_tmpdir()

    def _remove_tmpdir(self) -> None:
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None


class ZmqSender(Sender):
    """PUSH socket connected to ``scheme://loc``; queues until the receiver is reachable."""

    def __init__(self, scheme: str, loc: str, *, hwm: int = DEFAULT_HWM) -> None:
        endpoint = _connect_endpoint(scheme, loc)
        sock = _new_socket(zmq.PUSH, endpoint, check_hwm(hwm))
        try:
            sock.connect(endpoint)
        except zmq.ZMQError as exc:
            sock.close()
            error = _zmq_error("connect to", endpoint, exc)
            raise error from exc
        self._sock = sock
        self._closed = False
        self.address: str = endpoint

    @property
    def closed(self) -> bool:
        return self._closed

    def send(self, message: Message, timeout: float | None = None) -> None:
        self._check_open()
        frames = codec.encode(message)
        sock = self._sock
        if timeout is None:
            sock.send_multipart(frames, copy=False)
            return
        # Once the first frame is accepted zmq guarantees the rest of a multipart
        # message, so NOBLOCK after a successful POLLOUT cannot split a message.
        if sock.poll(_timeout_ms(timeout), zmq.POLLOUT):
            try:
                sock.send_multipart(frames, zmq.NOBLOCK, copy=False)
                return
            except zmq.Again:
                pass
        msg = f"sender to {self.address!r} stayed at its high-water mark for {timeout!r} s"
        raise TransportTimeout(msg)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._sock.close(linger=0)


class ZmqBackend(Backend):
    """Backend for one zmq scheme, ``tcp`` or ``ipc``."""

    def __init__(self, scheme: str) -> None:
        self.scheme = scheme

    def bind(self, loc: str, *, hwm: int = DEFAULT_HWM) -> ZmqReceiver:
        return ZmqReceiver(self.scheme, loc, hwm=hwm)

    def connect(self, loc: str, *, hwm: int = DEFAULT_HWM) -> ZmqSender:
        return ZmqSender(self.scheme, loc, hwm=hwm)

    def __repr__(self) -> str:
        return f"ZmqBackend({self.scheme!r})"


register("tcp", ZmqBackend("tcp"))
register("ipc", ZmqBackend("ipc"))
