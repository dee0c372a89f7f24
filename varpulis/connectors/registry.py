"""Connector kinds by name: a plain dict filled by :func:`register_sink`.

Kinds not registered here (e.g. a broker whose library is missing) make
:func:`make_sink` raise a :class:`~varpulis.errors.VarpulisError` naming the
kinds that exist.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from varpulis.connectors.base import ConnectorConfig, Sink
from varpulis.errors import VarpulisError

__all__ = ["SINKS", "UnknownConnector", "make_sink", "register_sink"]

SINKS: dict[str, type[Sink]] = {}
_BUILTIN_MODULES = (
    "varpulis.connectors.console",
    "varpulis.connectors.file",
    "varpulis.connectors.mqtt",
    "varpulis.connectors.http",
)


class UnknownConnector(VarpulisError):
    """No sink implementation for a connector kind."""

    code, http_status = "unknown_connector", 400


def register_sink(kind: str) -> Callable[[type[Sink]], type[Sink]]:
    """Class decorator: register a :class:`Sink` subclass for connector *kind*."""

    def register(cls: type[Sink]) -> type[Sink]:
        SINKS[kind] = cls
        return cls

    return register


def make_sink(config: ConnectorConfig) -> Sink:
    """Build the sink for *config*; raise UnknownConnector for an unknown kind."""
    for module in _BUILTIN_MODULES:
        importlib.import_module(module)
    cls = SINKS.get(config.kind)
    if cls is None:
        msg = (
            f"connector {config.name!r}: no sink for kind {config.kind!r} "
            f"(available: {', '.join(sorted(SINKS))})"
        )
        raise UnknownConnector(msg)
    return cls(config)
