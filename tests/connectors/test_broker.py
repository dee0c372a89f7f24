"""The broker launcher: free ports, readiness, restart, errors, and the CLI banner."""

from __future__ import annotations

import re
import socket
from collections.abc import Callable

import pytest

from tests.connectors import Subscriber, unique_topic
from tests.utils import Child, varpulis_cmd
from varpulis.connectors.broker import BrokerError, BrokerHandle, resolve_kind, start_broker


def test_broker_reports_a_real_port_and_accepts(broker: BrokerHandle) -> None:
    assert broker.port not in (0, 1883)
    assert broker.url == f"mqtt://127.0.0.1:{broker.port}"
    with socket.create_connection((broker.host, broker.port), timeout=2):
        pass


def test_publish_subscribe_round_trip(broker: BrokerHandle) -> None:
    topic = unique_topic()
    sub = Subscriber(broker, topic)
    try:
        sub.client.publish(topic, b"hello").wait_for_publish(5)
        assert sub.wait_for(1) == [b"hello"]
    finally:
        sub.close()


@pytest.mark.parametrize("kind", ["mosquitto", "embedded"])
def test_stop_and_restart_on_the_same_port(
    kind: str, broker_factory: Callable[..., BrokerHandle]
) -> None:
    handle = broker_factory(kind)
    port = handle.port
    handle.restart()
    assert handle.running and handle.port == port
    handle.stop()
    assert not handle.running
    with pytest.raises(OSError):
        socket.create_connection((handle.host, port), timeout=0.5).close()
    handle.stop()  # idempotent


def test_unknown_kind_lists_the_choices() -> None:
    with pytest.raises(BrokerError, match=r"'rabbit'.*auto, mosquitto, embedded"):
        resolve_kind("rabbit")


def test_busy_port_is_an_error_with_the_output(broker: BrokerHandle) -> None:
    with pytest.raises(BrokerError, match="already in use"):
        start_broker("mosquitto", port=broker.port, start_timeout=3)


def test_cli_banner_and_sigterm() -> None:
    with Child(varpulis_cmd("broker", "--port", "0", "--kind", "embedded")) as child:
        match = child.read_until(r"listening on mqtt://127\.0\.0\.1:(\d+)", timeout=20)
        port = int(match.group(1))
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            pass
        assert child.stop() == 0, child.output()
        assert re.search(r"embedded", child.output())
