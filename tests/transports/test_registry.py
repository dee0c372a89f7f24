"""Addresses and the scheme registry: parsing, errors that list choices, entry-point plug-ins."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys

import pytest

import transports
from transports import registry
from transports.addressing import (
    normalize_address,
    parse_address,
    split_host_port,
    unparse_address,
)
from transports.inproc import InprocBackend


@pytest.mark.parametrize(
    ("addr", "expected"),
    [
        ("tcp://127.0.0.1:5555", ("tcp", "127.0.0.1:5555")),
        ("IPC:///run/vp/t00.sock", ("ipc", "/run/vp/t00.sock")),
        ("inproc://pipeline-1/t00", ("inproc", "pipeline-1/t00")),
        ("inproc://", ("inproc", "")),
        ("/run/vp/t00.sock", ("ipc", "/run/vp/t00.sock")),
    ],
)
def test_parse_address(addr, expected):
    assert parse_address(addr) == expected
    assert normalize_address(addr) == unparse_address(*expected)


@pytest.mark.parametrize(
    ("loc", "match"),
    [
        ("5555", "must look like host:port"),
        (":5555", "must look like host:port"),
        ("::1:5555", "IPv6 hosts in brackets"),
    ],
)
def test_split_host_port_rejects(loc, match):
    with pytest.raises(transports.InvalidAddress, match=match):
        split_host_port(loc)


def test_split_host_port_accepts_bracketed_ipv6():
    assert split_host_port("[::1]:0") == ("::1", "0")


@pytest.mark.parametrize(
    ("call", "addr", "match"),
    [
        (transports.bind, "tcp://127.0.0.1:70000", "'127.0.0.1:70000' must be 1-65535"),
        (transports.bind, "tcp://127.0.0.1:http", "must be 1-65535"),
        (transports.connect, "tcp://127.0.0.1:0", "the tcp port must be 1-65535"),
        (transports.connect, "ipc://", "give the receiver's socket path"),
        (transports.connect, "inproc://", "give the receiver's name"),
        (transports.bind, "://x", "empty scheme"),
        (transports.bind, 5555, "must be a string, not int 5555"),
    ],
)
def test_malformed_addresses_raise_invalid_address(call, addr, match):
    with pytest.raises(transports.InvalidAddress, match=match):
        call(addr)


def test_unknown_scheme_names_it_and_lists_the_valid_ones():
    with pytest.raises(transports.UnknownScheme) as info:
        transports.connect("udp://127.0.0.1:5555")
    assert "'udp'" in str(info.value)
    assert "inproc, ipc, tcp" in str(info.value)
    assert isinstance(info.value, transports.TransportError)
    assert isinstance(info.value, OSError)


def test_bad_hwm_and_timeouts_name_the_value():
    with pytest.raises(ValueError, match="not 0"):
        transports.bind("inproc://", hwm=0)
    with transports.bind("inproc://") as rx:
        with pytest.raises(ValueError, match="not -1"):
            rx.recv(timeout=-1)
        with pytest.raises(ValueError, match="not nan"):
            rx.poll(float("nan"))


class PluginBackend(InprocBackend):
    """Stands in for a third-party backend found through an entry point."""


def fake_entry_points(value: str):
    ep = importlib.metadata.EntryPoint(name="plug", value=value, group=registry.ENTRY_POINT_GROUP)

    def entry_points(*, group: str, name: str | None = None):
        found = [ep] if group == registry.ENTRY_POINT_GROUP else []
        return [e for e in found if name in (None, e.name)]

    return entry_points


@pytest.fixture
def isolated_registry(monkeypatch):
    monkeypatch.setattr(registry, "backends", dict(registry.backends))


def test_entry_point_scheme_loads_lazily_once(monkeypatch, isolated_registry):
    monkeypatch.setattr(
        importlib.metadata, "entry_points", fake_entry_points(f"{__name__}:PluginBackend")
    )
    assert "plug" not in registry.backends
    assert "plug" in registry.known_schemes()
    with transports.bind("plug://x") as rx, transports.connect("plug://x") as tx:
        tx.send(transports.Message.control("stop"))
        assert rx.recv(timeout=5).kind == "stop"
    assert isinstance(registry.backends["plug"], PluginBackend)


@pytest.mark.parametrize(
    ("value", "match"),
    [
        (f"{__name__}:missing_name", "cannot load transport 'plug'"),
        ("collections:OrderedDict", "not a Backend"),
    ],
)
def test_broken_entry_point_raises_transport_error(monkeypatch, isolated_registry, value, match):
    monkeypatch.setattr(importlib.metadata, "entry_points", fake_entry_points(value))
    with pytest.raises(transports.TransportError, match=match):
        transports.connect("plug://x")


def test_register_adds_a_scheme(isolated_registry):
    registry.register("mem", InprocBackend())
    with transports.bind("mem://") as rx:
        assert rx.address.startswith("inproc://")


def test_transports_never_imports_varpulis():
    code = "import sys, transports; sys.exit(any(m.startswith('varpulis') for m in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
