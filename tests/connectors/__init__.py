"""Connector tests; :class:`Subscriber` is a paho test client collecting messages."""

from __future__ import annotations

import threading
import uuid
from typing import Any

from paho.mqtt import client as paho

from tests.utils import poll_for
from varpulis.connectors.broker import BrokerHandle

__all__ = ["Subscriber", "unique_topic"]


def unique_topic(prefix: str = "t") -> str:
    """A topic no other test uses (brokers are shared by the session)."""
    return f"{prefix}/{uuid.uuid4().hex[:10]}"


class Subscriber:
    """A paho client subscribed to *topic* that records ``(topic, payload)`` in order."""

    def __init__(self, broker: BrokerHandle, topic: str, qos: int = 0, *,
                 client_id: str = "", clean: bool = True) -> None:  # fmt: skip
        self.messages: list[tuple[str, bytes]] = []
        self.lock = threading.Lock()
        self.subscribed = threading.Event()
        self.topic, self.qos = topic, qos
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2,
                                  client_id=client_id or f"test-sub-{uuid.uuid4().hex[:8]}",
                                  clean_session=clean)  # fmt: skip
        self.client.reconnect_delay_set(0.05, 0.2)  # type: ignore[arg-type]
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *a: self.subscribed.set()
        self.client.on_disconnect = lambda *a: self.subscribed.clear()
        self.client.on_message = self._on_message
        self.client.connect_async(broker.host, broker.port)
        self.client.loop_start()
        poll_for(self.subscribed.is_set, 10, what="test subscriber subscribed")

    def _on_connect(self, client: paho.Client, *args: Any) -> None:
        client.subscribe(self.topic, self.qos)

    def _on_message(self, client: paho.Client, userdata: Any, msg: paho.MQTTMessage) -> None:
        with self.lock:
            self.messages.append((msg.topic, msg.payload))

    @property
    def payloads(self) -> list[bytes]:
        with self.lock:
            return [p for _t, p in self.messages]

    def wait_for(self, count: int, timeout: float = 15.0) -> list[bytes]:
        """Poll until at least *count* messages arrived; return the payloads."""
        poll_for(lambda: len(self.messages) >= count, timeout,
                 what=f"{count} messages (got {len(self.messages)})")  # fmt: skip
        return self.payloads

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
