"""mqtt-in → engine → mqtt-out as ``varpulis run`` runs it (``run_live``), on real brokers.

Also the two fast paths under it: the source's chunked reads with batched
delivery, and the sink's direct writes (a partial write must keep the order)
and :func:`~varpulis.connectors.mqtt.coalesced`.
"""

from __future__ import annotations

import io
import json
import socket
import threading
from collections.abc import Callable

import pytest

from tests.connectors import Subscriber, unique_topic
from tests.utils import poll_for
from varpulis.connectors.base import ConnectorConfig
from varpulis.connectors.broker import BrokerHandle
from varpulis.connectors.mqtt import MqttSink, coalesced
from varpulis.connectors.sources import MqttSource, Source, make_source
from varpulis.events import Event
from varpulis.runtime.engine import Engine
from varpulis.simulate import RunStats, run_live

T0 = 1_700_000_000_000_000_000


def program(broker: BrokerHandle, topic_in: str, topic_out: str) -> str:
    return (
        f'connector M = mqtt(host: "{broker.host}", port: {broker.port}, '
        f"reconnect_min: 0.05, reconnect_max: 0.2)\n"
        f'stream S = A .from(M, topic: "{topic_in}/#") .where(x % 3 != 0) .emit(v: x)'
        f' .to(M, topic: "{topic_out}")\n'
    )


def sink_for(broker: BrokerHandle, topic: str, **params: object) -> MqttSink:
    sink = MqttSink(ConnectorConfig("In", "mqtt", {"host": broker.host, "port": broker.port,
                                                  "topic": topic, **params}))  # fmt: skip
    poll_for(lambda: sink.connected, 10, what="publisher connected")
    return sink


class Live:
    """``run_live`` of *source* in a thread; ``sources`` are those it started."""

    def __init__(self, source: str) -> None:
        self.engine = Engine(source)
        self.out = io.StringIO()
        self.stop = threading.Event()
        self.sources: list[Source] = []
        self.stats: RunStats | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        poll_for(lambda: self.sources and self.sources[0].subscribed.is_set(), 10,  # type: ignore[attr-defined]
                 what="run_live subscribed")  # fmt: skip

    def _make(self, config: ConnectorConfig) -> Source:
        source = make_source(config)
        self.sources.append(source)
        return source

    def _run(self) -> None:
        self.stats = run_live(self.engine, out=self.out, stop=self.stop, make_source=self._make)

    def close(self) -> RunStats:
        self.stop.set()
        self.thread.join(15)
        assert not self.thread.is_alive() and self.stats is not None
        return self.stats


def test_every_event_once_in_order_through_the_engine(broker: BrokerHandle) -> None:
    topic_in, topic_out = unique_topic("in"), unique_topic("out")
    sub = Subscriber(broker, topic_out)
    threads_before = set(threading.enumerate())
    live = Live(program(broker, topic_in, topic_out))
    pub = sink_for(broker, f"{topic_in}/A")
    n = 3000
    expected = [x for x in range(n) if x % 3]
    try:
        for i in range(0, n, 100):  # bursts: the source hands the engine lists
            pub.send([Event("A", {"x": x}, T0) for x in range(i, i + 100)])
        assert pub.flush(10)
        got = [json.loads(p)["v"] for p in sub.wait_for(len(expected), 30)]
        assert got == expected
        lines = [json.loads(line) for line in live.out.getvalue().splitlines()]
        assert [o["v"] for o in lines] == expected
    finally:
        pub.close()
        stats = live.close()
        sub.close()
    assert stats.events == n and stats.outputs == len(expected)
    assert live.sources[0].metrics()["events"] == n
    # the source's and the sink's network threads are gone: a clean shutdown
    poll_for(lambda: set(threading.enumerate()) <= threads_before | {threading.current_thread()},
             10, what="paho threads stopped")  # fmt: skip


def test_broker_restart_mid_run_reconnects_and_continues(
    broker_factory: Callable[..., BrokerHandle],
) -> None:
    broker = broker_factory("mosquitto")
    topic_in, topic_out = unique_topic("in"), unique_topic("out")
    live = Live(program(broker, topic_in, topic_out))
    source = live.sources[0]
    pub = sink_for(broker, f"{topic_in}/A", reconnect_min=0.05, reconnect_max=0.2)
    try:
        sub = Subscriber(broker, topic_out)
        pub.send([Event("A", {"x": x}, T0) for x in range(30)])
        assert [json.loads(p)["v"] for p in sub.wait_for(20)] == [x for x in range(30) if x % 3]
        sub.close()
        broker.stop()
        poll_for(lambda: not source.subscribed.is_set() and not pub.connected, 10,  # type: ignore[attr-defined]
                 what="both sides saw the broker go")  # fmt: skip
        pub.send([Event("A", {"x": x}, T0) for x in range(30, 60)])  # while it is down
        assert pub.queued_while_disconnected == 30 and pub.dropped == 0
        broker.start()
        poll_for(source.subscribed.is_set, 15, what="the source subscribed again")  # type: ignore[attr-defined]
        sub = Subscriber(broker, topic_out)
        poll_for(lambda: pub.connected and pub.buffered == 0, 10, what="publisher replayed")
        pub.send([Event("A", {"x": x}, T0) for x in range(60, 90)])
        assert pub.flush(10)
        poll_for(lambda: b'"v":89' in b"".join(sub.payloads), 15, what="the last output")
        got = [json.loads(p)["v"] for p in sub.payloads]
        # the replayed 30..59 race the source's re-subscription (clean session, QoS 0):
        # whatever arrived is in order, once; everything after is there
        assert got == sorted(set(got)) and got[-20:] == [x for x in range(60, 90) if x % 3]
        assert source.metrics()["received"] >= 60
        sub.close()
    finally:
        pub.close()
        live.close()


@pytest.mark.parametrize("qos", [0, 1])
def test_chunked_reads_split_packets_anywhere_and_batches_are_bounded(
    broker: BrokerHandle, qos: int
) -> None:
    topic = unique_topic()
    params = {"host": broker.host, "port": broker.port, "topic": topic, "max_batch": 50,
              "qos": qos}  # fmt: skip
    source = make_source(ConnectorConfig("B", "mqtt", params))
    assert isinstance(source, MqttSource)
    source.client.read_chunk = 7  # type: ignore[attr-defined] - every packet cut in pieces
    calls: list[list[int]] = []
    source.start(lambda evs: calls.append([e.fields["i"] for e in evs]))
    pub = sink_for(broker, topic, qos=qos)
    try:
        pub.send([Event("A", {"i": i, "pad": "x" * (i % 300)}, T0) for i in range(1000)])
        assert pub.flush(10)
        poll_for(lambda: sum(map(len, calls)) == 1000, 20, what="1000 events")
        assert [i for call in calls for i in call] == list(range(1000))
        assert max(map(len, calls)) <= 50
    finally:
        pub.close()
        source.stop()


def test_a_partial_socket_write_keeps_the_order(broker: BrokerHandle) -> None:
    topic = unique_topic()
    sub = Subscriber(broker, topic)
    sink = sink_for(broker, topic)
    sock = sink.client._sock  # noqa: SLF001 - a small send buffer forces partial writes
    assert type(sock) is socket.socket
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    try:
        for part in range(4):  # the 2nd..4th sends find the 1st's tail still queued
            sink.send([Event("A", {"i": i, "pad": "y" * 200}, T0)
                       for i in range(part * 2000, (part + 1) * 2000)])  # fmt: skip
        assert sink.flush(20)
        got = [json.loads(p)["i"] for p in sub.wait_for(8000, 30)]
        assert got == list(range(8000))
        assert sink.sent == 8000 and sink.dropped == 0
    finally:
        sink.close()
        sub.close()


def test_coalesced_holds_sends_until_the_block_ends(broker: BrokerHandle) -> None:
    topic = unique_topic()
    sub = Subscriber(broker, topic)
    sink = sink_for(broker, topic)
    try:
        with pytest.raises(RuntimeError), coalesced():
            with coalesced():  # nested: written at the outer exit
                sink.send([Event("A", {"i": 0}, T0)])
            sink.send([Event("A", {"i": i}, T0) for i in (1, 2)])
            assert sink.sent == 0  # held
            raise RuntimeError("the block fails: what it sent is still written")
        assert sink.sent == 3
        sink.send([Event("A", {"i": 3}, T0)])
        assert [json.loads(p)["i"] for p in sub.wait_for(4)] == [0, 1, 2, 3]
    finally:
        sink.close()
        sub.close()
