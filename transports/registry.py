"""Scheme → backend registry, and the ``bind``/``connect`` entry points that use it.

:data:`backends` is a plain dict filled at import by the built-in backends (``tcp``,
``ipc``, ``inproc``) and by :func:`register`. A scheme that is not in it is looked up
once, lazily, in the entry-point group ``varpulis.transports``: the entry point's
name is the scheme and its object is a :class:`Backend` subclass, a zero-argument
factory returning a backend, or a backend instance. :func:`bind` and
:func:`connect` parse the address, pick the backend and hand it the location.
"""

from __future__ import annotations

import importlib.metadata
import logging
from abc import ABC, abstractmethod

from transports.addressing import parse_address
from transports.core import DEFAULT_HWM, Receiver, Sender, TransportError, UnknownScheme

__all__ = [
    "ENTRY_POINT_GROUP",
    "Backend",
    "backends",
    "bind",
    "connect",
    "get_backend",
    "known_schemes",
    "register",
]

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "varpulis.transports"


class Backend(ABC):
    """Factory for the endpoints of one URL scheme.

    Implementations must honour the contract of :class:`~transports.core.Receiver`
    and :class:`~transports.core.Sender` (fan-in, per-sender order, timeouts,
    idempotent close) and raise only :class:`~transports.core.TransportError`
    subclasses for transport failures. Both methods are called from any thread.
    """

    @abstractmethod
    def bind(self, loc: str, *, hwm: int = DEFAULT_HWM) -> Receiver:
        """Listen at scheme-less *loc*; the receiver's ``address`` is the concrete URL.

        *hwm* bounds the receiver's queue, in messages.
        """

    @abstractmethod
    def connect(self, loc: str, *, hwm: int = DEFAULT_HWM) -> Sender:
        """Open a sender towards scheme-less *loc*; never waits for the receiver.

        *hwm* bounds the sender's queue, in messages.
        """


backends: dict[str, Backend] = {}


def register(scheme: str, backend: Backend) -> None:
    """Serve *scheme* (lower case, without ``://``) with *backend*, replacing any other."""
    backends[scheme] = backend


def known_schemes() -> list[str]:
    """All schemes available now: registered ones plus installed entry points."""
    names = {ep.name for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)}
    return sorted(names | backends.keys())


def get_backend(scheme: str) -> Backend:
    """Return the backend for *scheme*, loading a plug-in from entry points if needed."""
    backend = backends.get(scheme)
    if backend is not None:
        return backend
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP, name=scheme):
        backend = _load_plugin(ep)
        backends[scheme] = backend
        logger.debug("loaded transport %r from entry point %s", scheme, ep.value)
        return backend
    msg = f"unknown transport scheme {scheme!r} (known: {', '.join(known_schemes())})"
    raise UnknownScheme(msg)


def _load_plugin(ep: importlib.metadata.EntryPoint) -> Backend:
    try:
        obj = ep.load()
        backend = obj if isinstance(obj, Backend) else obj()
    except Exception as exc:
        msg = f"cannot load transport {ep.name!r} from entry point {ep.value!r}: {exc}"
        raise TransportError(msg) from exc
    if not isinstance(backend, Backend):
        msg = f"entry point {ep.value!r} for {ep.name!r} gave {backend!r}, not a Backend"
        raise TransportError(msg)
    return backend


def bind(addr: str, *, hwm: int = DEFAULT_HWM) -> Receiver:
    """Bind a receiver at *addr*; read the concrete endpoint from ``.address``.

    ``tcp://HOST:0`` and ``tcp://HOST:*`` pick a free port; ``ipc://`` and
    ``inproc://`` with nothing after the scheme pick a fresh path or name.
    """
    scheme, loc = parse_address(addr)
    return get_backend(scheme).bind(loc, hwm=hwm)


def connect(addr: str, *, hwm: int = DEFAULT_HWM) -> Sender:
    """Connect a sender to the receiver at *addr* (which may not exist yet)."""
    scheme, loc = parse_address(addr)
    return get_backend(scheme).connect(loc, hwm=hwm)
