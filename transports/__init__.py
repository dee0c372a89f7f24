"""Message transports between Varpulis context processes: ``bind`` a receiver, ``connect`` senders.

``bind("tcp://127.0.0.1:0")`` returns a :class:`Receiver` whose ``address`` is the
concrete endpoint; any number of ``connect(address)`` senders, in any thread or
process, fan in to it. Messages are row batches, columnar numpy batches or
header-only control messages (:class:`Message`). Built-in schemes are ``tcp``,
``ipc`` (pyzmq PUSH/PULL) and ``inproc`` (a queue in this process); plug-ins register
under the entry-point group ``varpulis.transports``. The contract lives in
:mod:`transports.core`. This package is a leaf: it never imports ``varpulis``.
"""

from __future__ import annotations

from transports import inproc, zmq_backend  # noqa: F401  (register the built-in schemes)
from transports.addressing import (
    DEFAULT_SCHEME,
    normalize_address,
    parse_address,
    unparse_address,
)
from transports.core import (
    COLUMNS,
    DEFAULT_HWM,
    ROWS,
    AddressInUse,
    CodecError,
    InvalidAddress,
    Message,
    Receiver,
    Row,
    Sender,
    TransportClosed,
    TransportError,
    TransportTimeout,
    UnknownScheme,
)
from transports.registry import Backend, backends, bind, connect, get_backend, register

__all__ = [
    "COLUMNS",
    "DEFAULT_HWM",
    "DEFAULT_SCHEME",
    "ROWS",
    "AddressInUse",
    "Backend",
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
    "backends",
    "bind",
    "connect",
    "get_backend",
    "normalize_address",
    "parse_address",
    "register",
    "unparse_address",
]
