"""End to end through the Engine: `.to(mqtt)` publishes, an mqtt source feeds `process`."""

from __future__ import annotations

import json
import threading

from tests.connectors import Subscriber, unique_topic
from varpulis.connectors.base import ConnectorConfig
from varpulis.connectors.broker import BrokerHandle
from varpulis.connectors.sources import make_source
from varpulis.events import Event
from varpulis.runtime.engine import Engine


def program(broker: BrokerHandle, topic: str) -> str:
    return (f'connector Out = mqtt(host: "{broker.host}", port: {broker.port}, '
            f'client_id: "e2e", qos: 0)\n'
            f'stream S = A .where(x > 1) .emit(v: x) .to(Out, topic: "{topic}")\n')  # fmt: skip


def test_engine_publishes_emitted_events(broker: BrokerHandle) -> None:
    topic = unique_topic()
    sub = Subscriber(broker, topic)
    engine = Engine(program(broker, topic))
    try:
        for i in range(200):
            engine.process(Event("A", {"x": i % 4}, 1_700_000_000_000_000_000 + i * 10**9))
        sinks = list(engine._sinks.values())
        assert len(sinks) == 1 and sinks[0].flush(10)
        got = [json.loads(p) for p in sub.wait_for(100)]
        assert len(got) == 100
        assert got[0] == {"event_type": "S", "timestamp": "2023-11-14T22:13:22Z", "v": 2}
        assert [g["v"] for g in got] == [2, 3] * 50
    finally:
        engine.close()
        sub.close()


def test_mqtt_in_where_mqtt_out(broker: BrokerHandle) -> None:
    """A source thread feeds the engine under a lock (the pipeline integration's shape)."""
    topic_in, topic_out = unique_topic("in"), unique_topic("out")
    sub = Subscriber(broker, topic_out)
    engine = Engine(program(broker, topic_out))
    lock = threading.Lock()

    def on_events(events: list[Event]) -> None:
        with lock:
            for ev in events:
                engine.process(ev)

    params = {"host": broker.host, "port": broker.port, "topic": f"{topic_in}/#"}
    source = make_source(ConnectorConfig("In", "mqtt", params))
    source.start(on_events)
    try:
        for i in range(100):
            source.client.publish(f"{topic_in}/A", json.dumps({"x": i}).encode())
        got = [json.loads(p)["v"] for p in sub.wait_for(98)]
        assert got == list(range(2, 100))
        assert source.events == 100
    finally:
        source.stop()
        engine.close()
        sub.close()
