"""The transport contract: messages, the two endpoint interfaces, and the error tree.

A transport moves :class:`Message` objects one way, from any number of :class:`Sender`
endpoints to exactly one :class:`Receiver` (fan-in, the shape of ZeroMQ PUSH/PULL).
Backends (``tcp://``, ``ipc://``, ``inproc://``, plug-ins) implement the two ABCs here and
behave alike: per-sender FIFO order, bounded queues that push back on the sender, timeouts
in seconds, idempotent ``close()``. Every transport failure is a
:class:`TransportError` (an ``OSError``), so callers catch one family; invalid
arguments such as a negative timeout are ``ValueError``. This module knows nothing
about Varpulis; the engine gives meaning to message kinds and metadata.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    from typing_extensions import Self

__all__ = [
    "COLUMNS",
    "DATA_KINDS",
    "DEFAULT_HWM",
    "ROWS",
    "AddressInUse",
    "CodecError",
    "InvalidAddress",
    "Message",
    "Receiver",
    "Row",
    "Sender",
    "TransportClosed",
    "TransportError",
    "TransportTimeout",
    "UnknownScheme",
    "check_hwm",
    "check_timeout",
]

ROWS = "rows"
COLUMNS = "columns"
DATA_KINDS = (ROWS, COLUMNS)

DEFAULT_HWM = 256
"""Default high-water mark, in messages (batches), per queue of an endpoint.

It bounds memory, not exactly: zmq applies it per connection on both sides, and
tcp/ipc kernel buffers hold more, so a blocked sender may have a few more than
``hwm`` messages in flight. ``inproc://`` has one queue of exactly ``hwm``.
"""

Row = tuple[str, dict[str, Any], int]
"""One event of a row batch: ``(event_type, fields, timestamp_ns)``."""


# --------------------------------------------------------------------------- errors


class TransportError(OSError):
    """Base class of every error a transport raises on purpose."""


class UnknownScheme(TransportError, ValueError):
    """An address names a scheme no backend or entry point provides."""


class InvalidAddress(TransportError, ValueError):
    """An address is malformed for its scheme (bad port, empty name, path too long)."""


class AddressInUse(TransportError):
    """Another receiver is already bound at the address."""


class TransportClosed(TransportError):
    """The endpoint was closed; it cannot send or receive any more."""


class TransportTimeout(TransportError, TimeoutError):
    """No message arrived, or no queue space freed up, within the timeout."""


class CodecError(TransportError, ValueError):
    """A message cannot be framed, or received frames do not form a valid message."""


def check_timeout(timeout: float | None) -> float | None:
    """Validate a timeout in seconds: ``None`` (block) or a finite number ``>= 0``."""
    if timeout is None:
        return None
    if not (timeout >= 0 and math.isfinite(timeout)):
        msg = f"timeout must be None or a finite number of seconds >= 0, not {timeout!r}"
        raise ValueError(msg)
    return timeout


def check_hwm(hwm: int) -> int:
    """Validate a high-water mark: a positive number of messages."""
    if not isinstance(hwm, int) or isinstance(hwm, bool) or hwm < 1:
        msg = f"hwm must be a positive number of messages, not {hwm!r}"
        raise ValueError(msg)
    return hwm


# -------------------------------------------------------------------------- message


@dataclass(frozen=True, slots=True, eq=False)
class Message:
    """One unit of transfer: a row batch, a columnar batch, or a control message.

    ``kind`` selects the body:

    * ``"rows"`` (:data:`ROWS`): ``body`` is a list of :data:`Row` tuples
      ``(event_type, fields, timestamp_ns)``. Fields must be JSON-serialisable; they
      travel as JSON, so tuples inside fields come back as lists and dict keys as
      strings. Received rows are fresh tuples owned by the receiver.
    * ``"columns"`` (:data:`COLUMNS`): ``body`` is a ``dict[str, numpy.ndarray]``.
      Arrays of any fixed-size dtype (numbers, bool, datetime64, ``S``/``U`` strings)
      travel as raw buffers with dtype and shape in the header, never pickled; object
      and structured dtypes are refused. C-contiguous arrays are sent without a copy,
      others are copied once. Column order is kept.
    * any other non-empty string is a control kind (``"barrier"``, ``"watermark"``,
      ``"stop"``…, chosen by the caller): ``body`` is ``None`` and ``meta`` is the
      payload.

    ``meta`` is a small JSON-serialisable dict (batch metadata such as an event type
    or a count, or a control payload), decoded on the receiving side as JSON (tuples
    become lists). Build messages with :meth:`rows`, :meth:`columns` and
    :meth:`control`; the codec validates them when they are sent.

    Ownership: after ``Sender.send(message)`` the message and every buffer it refers
    to belong to the transport. The sender must not mutate the arrays afterwards:
    zero-copy backends may still be reading them, and ``inproc://`` hands the very
    same memory to the receiver. Received arrays are read-only views over the
    received frames (``arr.copy()`` to get a writable one); they keep the frame
    memory alive for as long as they are referenced.
    """

    kind: str
    meta: dict[str, Any] = field(default_factory=dict)
    body: list[Row] | dict[str, np.ndarray] | None = None

    @classmethod
    def rows(cls, events: Sequence[Row], meta: Mapping[str, Any] | None = None) -> Message:
        """A row batch of ``(event_type, fields, timestamp_ns)`` tuples."""
        body = events if isinstance(events, list) else list(events)
        return cls(ROWS, dict(meta or {}), body)

    @classmethod
    def columns(
        cls, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any] | None = None
    ) -> Message:
        """A columnar batch: column name → numpy array (sent without pickling)."""
        return cls(COLUMNS, dict(meta or {}), dict(arrays))

    @classmethod
    def control(cls, kind: str, meta: Mapping[str, Any] | None = None) -> Message:
        """A header-only message of caller-defined *kind* carrying *meta* as payload."""
        if kind in DATA_KINDS or not isinstance(kind, str) or not kind:
            msg = f"control kind must be a non-empty string other than {DATA_KINDS}, not {kind!r}"
            raise ValueError(msg)
        return cls(kind, dict(meta or {}), None)

    @property
    def is_control(self) -> bool:
        """True for header-only messages (any kind but ``rows`` and ``columns``)."""
        return self.kind not in DATA_KINDS

    def __repr__(self) -> str:
        if self.kind == ROWS:
            size = f"{len(self.body or ())} rows"
        elif self.kind == COLUMNS:
            size = f"columns {list(self.body or {})}"
        else:
            size = "control"
        return f"Message({self.kind!r}, {size}, meta={self.meta!r})"


# ------------------------------------------------------------------------ endpoints


class _Endpoint(ABC):
    """What senders and receivers share: address, close, context manager, no pickling."""

    address: str
    """The concrete URL of the endpoint, e.g. ``tcp://127.0.0.1:41887``."""

    @property
    @abstractmethod
    def closed(self) -> bool:
        """True once :meth:`close` has been called."""

    @abstractmethod
    def close(self) -> None:
        """Release the endpoint. Idempotent; never raises for an already closed one."""

    def _check_open(self) -> None:
        """Raise TransportClosed when the endpoint is closed."""
        if self.closed:
            role = "receiver" if isinstance(self, Receiver) else "sender to"
            msg = f"{role} {self.address!r} is closed"
            raise TransportClosed(msg)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __reduce__(self) -> Any:
        # Sockets and queues are per process; only the address string may travel.
        msg = (
            f"{type(self).__name__} cannot be pickled or sent to another process; "
            f"pass its address {self.address!r} and connect there"
        )
        raise TypeError(msg)

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<{type(self).__name__} {self.address!r} {state}>"


class Receiver(_Endpoint):
    """The single consuming end of a transport, bound at :attr:`address`.

    Lifecycle: created by ``transports.bind(addr)``; listens immediately, so senders
    may connect before or after it exists (messages sent before it binds wait in
    the senders' queues). :attr:`address` is the concrete endpoint to hand to
    senders: a wildcard port (``:0`` or ``:*``) is resolved to the real one, an
    ``ipc://`` or ``inproc://`` address without a path or name gets a fresh one.
    ``close()`` drops messages still queued for this receiver and frees the
    address (an ``ipc://`` socket file it created is removed). ZeroMQ releases the
    port or path in its I/O thread, so binding the same address right after
    ``close()`` may briefly raise :class:`AddressInUse`: retry with a deadline.

    Delivery: messages from one sender arrive in the order sent; messages of
    different senders interleave fairly. A message counts as delivered only once
    :meth:`recv` has returned it; there is no acknowledgement on the wire, so a
    protocol that needs one (flush barriers) sends it back over a second transport.

    Threads and processes: a receiver belongs to the thread that uses it (ZeroMQ
    sockets are not thread-safe); close it from that thread. It never crosses a
    process boundary (pickling raises ``TypeError``) and is unusable in a forked
    child. Start processes with ``spawn`` or ``forkserver``; importing this package
    before they start is safe, since zmq contexts are created per process on first
    use. Bind in the process that will read and report :attr:`address` to the
    peers (e.g. over a ``multiprocessing`` queue).
    """

    @abstractmethod
    def recv(self, timeout: float | None = None) -> Message:
        """Return the next message, waiting at most *timeout* seconds.

        ``None`` waits forever; ``0`` only takes a message that is already there.
        Raises :class:`TransportTimeout` when none arrived in time,
        :class:`TransportClosed` after :meth:`close`, and :class:`CodecError` for
        frames that do not decode (the bad message is consumed; the next call
        continues with the following one).
        """

    @abstractmethod
    def poll(self, timeout: float | None = 0.0) -> bool:
        """Tell whether :meth:`recv` would return without waiting.

        Waits up to *timeout* seconds (default: do not wait; ``None``: forever) for a
        message to become available, without consuming it. Raises
        :class:`TransportClosed` after :meth:`close`.
        """


class Sender(_Endpoint):
    """One producing end of a transport, connected to a receiver's :attr:`address`.

    Lifecycle: created by ``transports.connect(addr)``. Connecting never waits for
    the receiver: until it is reachable, messages queue on the sender side (up to the
    high-water mark), and a restarted receiver at the same address picks them up.
    ``close()`` discards whatever the receiver's side has not taken over yet (ZeroMQ
    ``LINGER`` 0, so closing and exiting never hang). Right after ``connect`` that
    can be every message sent, since the connection is set up in the background;
    ``inproc://`` never discards, which is one of the allowed outcomes. So a sender
    that must know its messages arrived stays open until the receiving side
    acknowledges them (the engine's flush barriers), and only then closes.

    Fan-in: any number of senders, in any threads or processes, may connect to one
    receiver. Each thread that sends owns its own sender; a sender is never shared
    between threads at the same time, nor passed to another process (pass the
    address instead).
    """

    @abstractmethod
    def send(self, message: Message, timeout: float | None = None) -> None:
        """Queue *message* for delivery; return once it is queued, not delivered.

        Blocks while the queue is at its high-water mark, for at most *timeout*
        seconds (``None``: no limit; ``0``: only if there is room now), then raises
        :class:`TransportTimeout` and the message is not sent. The message is
        encoded here, so an unserialisable one raises :class:`CodecError` in the
        sender. Raises :class:`TransportClosed` after :meth:`close`. See
        :class:`Message` for buffer ownership after the call.
        """
