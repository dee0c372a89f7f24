"""A deployed pipeline's ``.from(mqtt)`` sources: started on deploy, swapped on reload,
stopped on delete and on close (the server's PipelineManager, inline runtime)."""

from __future__ import annotations

import json
import threading

from tests.connectors import Subscriber, unique_topic
from tests.utils import poll_for
from varpulis.connectors.base import ConnectorConfig
from varpulis.connectors.broker import BrokerHandle
from varpulis.connectors.mqtt import MqttSink
from varpulis.events import Event
from varpulis.server.pipelines import PipelineManager, inline_runtime


def program(broker: BrokerHandle, topic_in: str, topic_out: str, factor: int) -> str:
    return (
        f'connector M = mqtt(host: "{broker.host}", port: {broker.port})\n'
        f'stream S = A .from(M, topic: "{topic_in}") .emit(v: x * {factor})'
        f' .to(M, topic: "{topic_out}")\n'
    )


def test_sources_follow_the_pipeline_lifecycle(broker: BrokerHandle) -> None:
    topic_in, topic_out = unique_topic("in"), unique_topic("out")
    sub = Subscriber(broker, topic_out)
    pub = MqttSink(ConnectorConfig("P", "mqtt", {"host": broker.host, "port": broker.port,
                                                 "topic": topic_in}))  # fmt: skip
    threads_before = set(threading.enumerate())
    manager = PipelineManager(factory=inline_runtime)
    try:
        poll_for(lambda: pub.connected, 10, what="publisher connected")
        pipeline = manager.deploy("p", program(broker, topic_in, topic_out, 1))
        assert len(pipeline.sources) == 1 and pipeline.sources[0].subscribed.is_set()
        pub.send([Event("A", {"x": x}, 0) for x in range(100)])
        assert [json.loads(p)["v"] for p in sub.wait_for(100)] == list(range(100))

        manager.reload(pipeline.id, program(broker, topic_in, topic_out, 10))
        poll_for(lambda: pipeline.sources and pipeline.sources[0].subscribed.is_set(), 10,
                 what="the new source subscribed")  # fmt: skip
        pub.send([Event("A", {"x": x}, 0) for x in range(3)])
        assert [json.loads(p)["v"] for p in sub.wait_for(103)][100:] == [0, 10, 20]

        second = manager.deploy("q", program(broker, topic_in, unique_topic(), 1))
        manager.delete(pipeline.id)
        assert all(s.stopped for s in pipeline.sources)
        pub.send([Event("A", {"x": 7}, 0)])
        poll_for(lambda: second.sources[0].events == 1, 10, what="the other pipeline fed")
        assert len(sub.payloads) == 103  # the deleted pipeline no longer receives
    finally:
        manager.close()
        pub.close()
        sub.close()
    assert all(s.stopped for s in second.sources)
    poll_for(lambda: set(threading.enumerate()) <= threads_before | {threading.current_thread()},
             10, what="source threads stopped")  # fmt: skip
