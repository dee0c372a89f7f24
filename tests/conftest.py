"""Shared fixtures: MQTT brokers started by ``varpulis.connectors.broker`` on free ports.

``broker`` is parametrised over the kinds available here (``mosquitto``,
``embedded``) and shared by a session; tests use unique topics. Tests that
stop or restart a broker use ``broker_factory`` and own what it starts. Never
a broker already running on the machine (e.g. a system one on 1883).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterator

import pytest

from varpulis.connectors.broker import BrokerHandle, find_mosquitto, start_broker


def _available_kinds() -> list[object]:
    mosquitto = pytest.param("mosquitto", marks=pytest.mark.skipif(
        find_mosquitto() is None, reason="mosquitto not installed"))  # fmt: skip
    embedded = pytest.param("embedded", marks=pytest.mark.skipif(
        importlib.util.find_spec("amqtt") is None, reason="amqtt not installed"))  # fmt: skip
    return [mosquitto, embedded]


BROKER_KINDS = _available_kinds()


@pytest.fixture(scope="session", params=BROKER_KINDS)
def broker(request: pytest.FixtureRequest) -> Iterator[BrokerHandle]:
    """A running broker of each available kind, on a free port of 127.0.0.1."""
    with start_broker(request.param) as handle:
        yield handle


@pytest.fixture
def broker_factory() -> Iterator[Callable[..., BrokerHandle]]:
    """``start(kind, **kw)`` -> a new broker stopped at the end of the test."""
    started: list[BrokerHandle] = []

    def start(kind: str = "auto", **kw: object) -> BrokerHandle:
        handle = start_broker(kind, **kw)  # type: ignore[arg-type]
        started.append(handle)
        return handle

    yield start
    for handle in started:
        handle.stop()
