"""The mqtt source: message parsing rules (pure) and subscriptions on real brokers."""

from __future__ import annotations

import threading

import pytest

from tests.connectors import unique_topic
from tests.utils import poll_for
from varpulis.connectors.base import ConnectorConfig
from varpulis.connectors.broker import BrokerHandle
from varpulis.connectors.mqtt import MqttSink
from varpulis.connectors.sources import (
    MqttSource,
    UnknownSource,
    events_from_message,
    make_source,
)
from varpulis.events import Event

NOW = 123


@pytest.mark.parametrize(
    ("topic", "payload", "expected"),
    [
        ("sensors/Reading", b'{"id": "a", "t": 35}', [Event("Reading", {"id": "a", "t": 35}, NOW)]),
        ("sensors/x", b'{"type": "Reading", "data": {"id": "b", "t": 40, "tags": [1]}}',
         [Event("Reading", {"id": "b", "t": 40, "tags": None}, NOW)]),
        ("sensors/temp1", b'{"id": "c", "t": 50}', [Event("temp1", {"id": "c", "t": 50}, NOW)]),
        ("a/b", b'{"event_type": "E", "type": "T", "v": 1}', [Event("E", {"v": 1}, NOW)]),
        ("a/b", b'{"event_type": "E", "fields": {"v": 2}, "x": 9}', [Event("E", {"v": 2}, NOW)]),
        ("a/b", b'{"event_type": "E", "timestamp": "2024-01-01T00:00:00Z", "v": 3}',
         [Event("E", {"timestamp": "2024-01-01T00:00:00Z", "v": 3}, NOW)]),
        ("a/", b'{"v": 4}', [Event("Unknown", {"v": 4}, NOW)]),
        ("a/b", b'[{"event_type": "E", "v": 1}, {"v": 2}]',
         [Event("E", {"v": 1}, NOW), Event("b", {"v": 2}, NOW)]),
        ("a/b", b"[]", []),
    ],
)  # fmt: skip
def test_message_parsing_rules(topic: str, payload: bytes, expected: list[Event]) -> None:
    assert events_from_message(topic, payload, NOW) == expected


@pytest.mark.parametrize("payload", [b"not json", b"42", b'["x"]', b"\xff\xfe", b'{"a": 1'])
def test_invalid_payloads_raise_value_error(payload: bytes) -> None:
    with pytest.raises(ValueError):
        events_from_message("a/b", payload, NOW)


def test_kinds_without_a_source_are_rejected() -> None:
    with pytest.raises(UnknownSource, match=r"'file'.*mqtt"):
        make_source(ConnectorConfig("F", "file", {}))


class Received:
    def __init__(self) -> None:
        self.events: list[Event] = []
        self.threads: set[str] = set()
        self.lock = threading.Lock()

    def __call__(self, events: list[Event]) -> None:
        with self.lock:
            self.threads.add(threading.current_thread().name)
            self.events.extend(events)


def test_source_subscribes_with_wildcards_and_skips_bad_json(broker: BrokerHandle) -> None:
    prefix = unique_topic("sensors")
    params = {"host": broker.host, "port": broker.port, "client_id": "src"}
    source = make_source(ConnectorConfig("Broker", "mqtt", {**params, "topic": f"{prefix}/#"}))
    assert isinstance(source, MqttSource)
    got = Received()
    source.start(got)
    assert source.subscribed.is_set()
    sink = MqttSink(ConnectorConfig("Out", "mqtt", {**params, "topic": f"{prefix}/Reading"}))
    batch = MqttSink(ConnectorConfig("Out", "mqtt", {**params, "topic": f"{prefix}/b",
                                                     "batch_size": 3}))  # fmt: skip
    try:
        poll_for(lambda: sink.connected and batch.connected, 10, what="sinks connected")
        sink.client.publish(f"{prefix}/Reading", b"not json").wait_for_publish(5)
        sink.send([Event("Reading", {"id": i, "t": 30 + i}, 0) for i in range(5)])
        batch.send([Event("Pair", {"n": i}, 0) for i in range(6)])
        poll_for(lambda: len(got.events) == 11, 10, what="11 events")
        readings = [e for e in got.events if e.event_type == "Reading"]
        # a payload "timestamp" is a data field (spec §2.13); event time = arrival
        stamp = {"timestamp": "1970-01-01T00:00:00Z"}
        assert [e.fields for e in readings] == [{**stamp, "id": i, "t": 30 + i} for i in range(5)]
        assert [e.fields["n"] for e in got.events if e.event_type == "Pair"] == list(range(6))
        assert source.received == 8 and source.invalid == 1 and source.events == 11
        assert threading.main_thread().name not in got.threads  # paho's thread delivers
    finally:
        sink.close()
        batch.close()
        source.stop()
        source.stop()


def test_a_failing_callback_is_counted_and_the_source_goes_on(broker: BrokerHandle) -> None:
    topic = unique_topic()
    params = {"host": broker.host, "port": broker.port, "topic": topic}
    source = make_source(ConnectorConfig("B", "mqtt", params))
    calls: list[list[int]] = []

    def on_events(events: list[Event]) -> None:
        calls.append([e.fields["v"] for e in events])
        if len(calls) == 1:
            raise RuntimeError("boom")

    source.start(on_events)
    try:
        source.client.publish(topic, b'{"v": 0}')
        poll_for(lambda: len(calls) == 1, 10, what="the first callback")
        for v in (1, 2):
            source.client.publish(topic, b'{"v": %d}' % v)
        poll_for(lambda: sum(map(len, calls)) == 3, 10, what="3 events")
        assert [v for call in calls[1:] for v in call] == [1, 2]
        assert source.callback_errors == 1 and source.failed_events == 1
        assert source.metrics()["failed_events"] == 1
    finally:
        source.stop()
