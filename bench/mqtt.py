"""MQTT connector throughput with same-run baselines (a script, not a test).

(a) ``MqttSink`` one message per event vs a bare paho publish loop of the same
    pre-serialised payloads (QoS 0); both clocks stop when paho has written
    the last message. Target: sink ≥ 90 % of the bare loop.
(b) ``MqttSink`` with ``batch_size`` (JSON arrays). Target ≥ 300,000 events/s.
(c) mqtt-in → ``.where`` → mqtt-out through the Engine in one process
    (source thread → engine under a lock → sink), vs a bare paho echo that
    does the same JSON round trip without the engine. Target ≥ 12,000 ev/s
    with mosquitto. Clock: first publish → last output received.

    python bench/mqtt.py [--kind auto|mosquitto|embedded] [--events 100000]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from collections.abc import Callable

# Run as a script, bench/ (which holds kernels.py) would shadow the ``kernels`` package.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]
sys.path.insert(0, os.path.dirname(_HERE))

from paho.mqtt import client as paho  # noqa: E402

from varpulis.connectors.base import ConnectorConfig  # noqa: E402
from varpulis.connectors.broker import BrokerHandle, start_broker  # noqa: E402
from varpulis.connectors.mqtt import MqttSink  # noqa: E402
from varpulis.connectors.sources import make_source  # noqa: E402
from varpulis.events import Event, dumps_sink  # noqa: E402
from varpulis.runtime.engine import Engine  # noqa: E402

T0 = 1_700_000_000_000_000_000


def client(broker: BrokerHandle, name: str) -> paho.Client:
    c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"bench-{name}-{time.time_ns()}")
    c.max_inflight_messages_set(65535)
    c.max_queued_messages_set(0)
    c.connect(broker.host, broker.port)
    c.loop_start()
    return c


def make_events(n: int) -> list[Event]:
    return [
        Event(
            "Tick",
            {
                "symbol": ("AAPL", "GOOG", "MSFT")[i % 3],
                "price": 40.0 + i % 100,
                "volume": 1000 + i % 5000,
            },
            T0 + i * 1_000_000,
        )
        for i in range(n)
    ]


def bare_publish(broker: BrokerHandle, payloads: list[bytes]) -> float:
    c = client(broker, "bare")
    try:
        start = time.perf_counter()
        info = None
        for p in payloads:
            info = c.publish("bench/a", p)
        assert info is not None
        info.wait_for_publish(60)
        return len(payloads) / (time.perf_counter() - start)
    finally:
        c.disconnect()
        c.loop_stop()


def sink_publish(broker: BrokerHandle, events: list[Event], chunk: int, **params: object) -> float:
    sink = MqttSink(
        ConnectorConfig(
            "Out", "mqtt", {"host": broker.host, "port": broker.port, "topic": "bench/a", **params}
        )
    )
    deadline = time.monotonic() + 10
    while not sink.connected and time.monotonic() < deadline:
        time.sleep(0.01)
    try:
        start = time.perf_counter()
        for i in range(0, len(events), chunk):
            sink.send(events[i : i + chunk])
        assert sink.flush(60)
        return len(events) / (time.perf_counter() - start)
    finally:
        sink.close()


class Counter:
    """Counts messages on a topic; ``done`` is set at *expected*."""

    def __init__(self, broker: BrokerHandle, topic: str, expected: int) -> None:
        self.n, self.expected, self.done = 0, expected, threading.Event()
        self.subscribed = threading.Event()
        self.c = client(broker, "count")
        self.c.on_message = self.on_message
        self.c.on_subscribe = lambda *a: self.subscribed.set()
        self.c.subscribe(topic)
        self.subscribed.wait(10)

    def on_message(self, *args: object) -> None:
        self.n += 1
        if self.n >= self.expected:
            self.done.set()

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


def pipeline(broker: BrokerHandle, events: list[Event],
             engine_side: Callable[..., object]) -> float:  # fmt: skip
    payloads = [dumps_sink(e).encode() for e in events]
    passing = sum(1 for e in events if e.fields["price"] > 50.0)
    counter = Counter(broker, "bench/out", passing)
    stop = engine_side()
    producer = client(broker, "producer")
    try:
        start = time.perf_counter()
        for p in payloads:
            producer.publish("bench/in/Tick", p)
        if not counter.done.wait(300):
            print(f"  ! only {counter.n} of {passing} outputs arrived")
        return len(events) / (time.perf_counter() - start)
    finally:
        producer.disconnect()
        producer.loop_stop()
        stop()
        counter.close()


def engine_side(broker: BrokerHandle) -> Callable[[], Callable[[], None]]:
    def setup() -> Callable[[], None]:
        program = (f'connector Out = mqtt(host: "{broker.host}", port: {broker.port})\n'
                   'stream S = Tick .where(price > 50.0) .emit(symbol: symbol, price: price)'
                   ' .to(Out, topic: "bench/out")\n')  # fmt: skip
        engine = Engine(program)
        lock = threading.Lock()

        def on_events(evs: list[Event]) -> None:
            with lock:
                for ev in evs:
                    engine.process(ev)

        source = make_source(ConnectorConfig("In", "mqtt", {"host": broker.host,
                                                           "port": broker.port,
                                                           "topic": "bench/in/#"}))  # fmt: skip
        source.start(on_events)

        def stop() -> None:
            source.stop()
            engine.close()

        return stop

    return setup


def echo_side(broker: BrokerHandle) -> Callable[[], Callable[[], None]]:
    def setup() -> Callable[[], None]:
        out = client(broker, "echo-out")
        inp = client(broker, "echo-in")
        ready = threading.Event()

        def on_message(c: paho.Client, u: object, msg: paho.MQTTMessage) -> None:
            obj = json.loads(msg.payload)
            if obj["price"] > 50.0:
                out.publish("bench/out", json.dumps(
                    {"event_type": "S", "timestamp": obj["timestamp"], "symbol": obj["symbol"],
                     "price": obj["price"]}, separators=(",", ":")).encode())  # fmt: skip

        inp.on_message = on_message
        inp.on_subscribe = lambda *a: ready.set()
        inp.subscribe("bench/in/#")
        ready.wait(10)

        def stop() -> None:
            for c in (inp, out):
                c.disconnect()
                c.loop_stop()

        return stop

    return setup


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", default="auto", choices=["auto", "mosquitto", "embedded"])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--pipeline-events", type=int, default=30_000)
    args = parser.parse_args()
    with start_broker(args.kind) as broker:
        print(f"broker: {broker.kind} at {broker.url}")
        events = make_events(args.events)
        payloads = [dumps_sink(e).encode() for e in events]
        bare = max(bare_publish(broker, payloads) for _ in range(2))
        per_event = max(sink_publish(broker, events, 1) for _ in range(2))
        per_1000 = max(sink_publish(broker, events, 1000) for _ in range(2))
        print(f"(a) bare paho loop, pre-serialised : {bare:>10,.0f} msg/s")
        print(f"    MqttSink, send() per event     : {per_event:>10,.0f} ev/s "
              f"({per_event / bare:.0%} of bare; serialises each event too)")  # fmt: skip
        print(f"    MqttSink, send() of 1000 events: {per_1000:>10,.0f} ev/s "
              f"({per_1000 / bare:.0%} of bare)")  # fmt: skip
        for size in (100, 1000):
            rate = max(sink_publish(broker, events, 10_000, batch_size=size) for _ in range(2))
            print(f"(b) MqttSink batch_size={size:<5}       : {rate:>10,.0f} ev/s "
                  f"(target 300,000: {'ok' if rate >= 300_000 else 'MISSED'})")  # fmt: skip
        small = events[: args.pipeline_events]
        echo = pipeline(broker, small, echo_side(broker))
        engine = pipeline(broker, small, engine_side(broker))
        print(f"(c) paho echo (json in/filter/out) : {echo:>10,.0f} ev/s  (baseline)")
        print(f"    mqtt -> Engine .where -> mqtt  : {engine:>10,.0f} ev/s "
              f"({engine / echo:.0%} of echo; target 12,000: "
              f"{'ok' if engine >= 12_000 else 'MISSED'})")  # fmt: skip


if __name__ == "__main__":
    main()
