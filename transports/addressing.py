"""Transport addresses are URLs ``scheme://location``; these pure functions take them apart.

The scheme picks a backend (``tcp``, ``ipc``, ``inproc`` or a plug-in) and is
compared in lower case; the location is opaque to everything but that backend.
An address without ``://`` uses :data:`DEFAULT_SCHEME` (``ipc``, a Unix socket path),
matching how contexts on one host talk. ``tcp`` locations are ``host:port`` with
IPv6 hosts in brackets; :func:`split_host_port` parses them for the backends.
"""

from __future__ import annotations

from transports.core import InvalidAddress

__all__ = [
    "DEFAULT_SCHEME",
    "normalize_address",
    "parse_address",
    "split_host_port",
    "unparse_address",
]

DEFAULT_SCHEME = "ipc"


def parse_address(addr: str) -> tuple[str, str]:
    """Split *addr* into ``(scheme, location)``.

    >>> parse_address("tcp://127.0.0.1:5555")
    ('tcp', '127.0.0.1:5555')
    >>> parse_address("/run/vp/ctx.sock")
    ('ipc', '/run/vp/ctx.sock')
    """
    if not isinstance(addr, str):
        msg = f"a transport address must be a string, not {type(addr).__name__} {addr!r}"
        raise InvalidAddress(msg)
    scheme, sep, loc = addr.partition("://")
    if not sep:
        return DEFAULT_SCHEME, addr
    if not scheme:
        msg = f"transport address {addr!r} has an empty scheme"
        raise InvalidAddress(msg)
    return scheme.lower(), loc


def unparse_address(scheme: str, loc: str) -> str:
    """Join a scheme and a location back into a URL.

    >>> unparse_address("inproc", "pipeline-1/t00")
    'inproc://pipeline-1/t00'
    """
    return f"{scheme}://{loc}"


def normalize_address(addr: str) -> str:
    """Spell *addr* canonically: explicit, lower-case scheme.

    >>> normalize_address("TCP://h:1")
    'tcp://h:1'
    """
    return unparse_address(*parse_address(addr))


def split_host_port(loc: str) -> tuple[str, str]:
    """Split a ``tcp`` location into host and port strings, brackets removed.

    The port is returned as written (``"5555"``, ``"0"`` or ``"*"``); callers decide
    which forms they accept.

    >>> split_host_port("127.0.0.1:0")
    ('127.0.0.1', '0')
    >>> split_host_port("[::1]:*")
    ('::1', '*')
    """
    host, sep, port = loc.rpartition(":")
    if not sep or not host or not port:
        msg = f"tcp location {loc!r} must look like host:port"
        raise InvalidAddress(msg)
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        msg = f"tcp location {loc!r}: write IPv6 hosts in brackets, e.g. [::1]:5555"
        raise InvalidAddress(msg)
    return host, port
