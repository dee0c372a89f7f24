"""MQTT connector throughput with same-run baselines (a script, not a test).

(a) ``MqttSink`` one message per event (``send`` of one event at a time,
    serialising it) vs a bare paho publish loop of the same pre-serialised
    payloads (QoS 0, ``loop_start``); both clocks stop when the last message
    is written. Target: sink ≥ 90 % of the bare loop.
(b) ``MqttSink`` with ``batch_size`` (JSON arrays). Target ≥ 300,000 events/s.
(c) mqtt-in → ``.where`` → mqtt-out through one worker process: ``run_live``
    (what ``varpulis run PROGRAM`` runs: source → ``Engine.process_batch`` →
    sink) vs a bare paho echo process (subscribe, ``json.loads``, filter,
    ``json.dumps``, publish: no engine). Same producer and counter for both,
    in this process. Target ≥ 12,000 ev/s with mosquitto. Clock: first
    publish → last output received.

Every figure is the median of ``--repeat`` runs, each run measuring the
baseline and the candidate back to back.

    python bench/mqtt.py [--kind auto|mosquitto|embedded] [--events 100000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time

# Run as a script, bench/ (which holds kernels.py) would shadow the ``kernels`` package.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]
sys.path.insert(0, os.path.dirname(_HERE))

from paho.mqtt import client as paho  # noqa: E402

from varpulis.connectors.base import ConnectorConfig  # noqa: E402
from varpulis.connectors.broker import BrokerHandle, start_broker  # noqa: E402
from varpulis.connectors.mqtt import MqttSink  # noqa: E402
from varpulis.connectors.sources import Source, make_source  # noqa: E402
from varpulis.events import Event, dumps_sink  # noqa: E402
from varpulis.runtime.engine import Engine  # noqa: E402
from varpulis.simulate import run_live  # noqa: E402

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
    """Counts the events arriving on a topic with an ``MqttSource`` (chunked reads, so
    the count costs this process little); ``done`` is set at *expected*."""

    def __init__(self, broker: BrokerHandle, topic: str, expected: int) -> None:
        self.n, self.expected, self.done = 0, expected, threading.Event()
        params = {"host": broker.host, "port": broker.port, "topic": topic, "max_batch": 10**6}
        self.source = make_source(ConnectorConfig("Count", "mqtt", params))
        self.source.start(self.on_events)

    def on_events(self, events: list[Event]) -> None:
        self.n += len(events)
        if self.n >= self.expected:
            self.done.set()

    def close(self) -> None:
        self.source.stop()


def pipeline(broker: BrokerHandle, events: list[Event], worker: str) -> float:
    """Input events/s through a worker process (``engine`` or ``echo``) of this script."""
    payloads = [dumps_sink(e).encode() for e in events]
    passing = sum(1 for e in events if e.fields["price"] > 50.0)
    counter = Counter(broker, "bench/out", passing)
    child = subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), "--worker", worker,
         "--host", broker.host, "--port", str(broker.port)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    producer = client(broker, "producer")
    try:
        assert child.stdout is not None
        if child.stdout.readline().strip() != "ready":
            raise RuntimeError(f"{worker} worker did not start")
        start = time.perf_counter()
        for p in payloads:
            producer.publish("bench/in/Tick", p)
        if not counter.done.wait(300):
            print(f"  ! only {counter.n} of {passing} outputs arrived")
        return len(events) / (time.perf_counter() - start)
    finally:
        producer.disconnect()
        producer.loop_stop()
        child.terminate()
        child.wait(30)
        counter.close()


PROGRAM = (
    'connector Out = mqtt(host: "{host}", port: {port})\n'
    'connector In = mqtt(host: "{host}", port: {port})\n'
    'stream S = Tick .from(In, topic: "bench/in/#") .where(price > 50.0)'
    ' .emit(symbol: symbol, price: price) .to(Out, topic: "bench/out")\n'
)


def engine_worker(host: str, port: int) -> None:
    """The worker of (c): ``run_live`` of the program until SIGTERM; prints ``ready``."""
    engine = Engine(PROGRAM.format(host=host, port=port))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())

    def started(config: ConnectorConfig) -> Source:
        source = make_source(config)
        threading.Thread(target=announce, args=(source,), daemon=True).start()
        return source

    def announce(source: Source) -> None:
        if source.subscribed.wait(10):  # type: ignore[attr-defined]
            print("ready", flush=True)

    run_live(engine, out=None, stop=stop, make_source=started)


def echo_worker(host: str, port: int) -> None:
    """The baseline of (c): a bare paho echo (two clients, no engine) until SIGTERM."""
    broker = BrokerHandle("mosquitto", host, port)
    out = client(broker, "echo-out")
    inp = client(broker, "echo-in")
    ready, stop = threading.Event(), threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())

    def on_message(c: paho.Client, u: object, msg: paho.MQTTMessage) -> None:
        obj = json.loads(msg.payload)
        if obj["price"] > 50.0:
            out.publish("bench/out", json.dumps(
                {"event_type": "S", "timestamp": obj["timestamp"], "symbol": obj["symbol"],
                 "price": obj["price"]}, separators=(",", ":")).encode())  # fmt: skip

    inp.on_message = on_message
    inp.on_subscribe = lambda *a: ready.set()
    inp.subscribe("bench/in/#")
    if ready.wait(10):
        print("ready", flush=True)
    stop.wait()
    for c in (inp, out):
        c.disconnect()
        c.loop_stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", default="auto", choices=["auto", "mosquitto", "embedded"])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--pipeline-events", type=int, default=30_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--worker", choices=["engine", "echo"], help=argparse.SUPPRESS)
    parser.add_argument("--host", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        (engine_worker if args.worker == "engine" else echo_worker)(args.host, args.port)
        return
    median = statistics.median
    runs = range(args.repeat)
    with start_broker(args.kind) as broker:
        print(f"broker: {broker.kind} at {broker.url}; medians of {args.repeat} runs")
        events = make_events(args.events)
        payloads = [dumps_sink(e).encode() for e in events]
        pairs = [(bare_publish(broker, payloads), sink_publish(broker, events, 1)) for _ in runs]
        bare, per_event = median(b for b, _ in pairs), median(s for _, s in pairs)
        ratio = median(s / b for b, s in pairs)
        per_1000 = median(sink_publish(broker, events, 1000) for _ in runs)
        print(f"(a) bare paho loop, pre-serialised : {bare:>10,.0f} msg/s  (baseline)")
        print(f"    MqttSink, send() per event     : {per_event:>10,.0f} ev/s "
              f"({ratio:.0%} of bare; serialises each event too; target 90 %: "
              f"{'ok' if ratio >= 0.9 else 'MISSED'})")  # fmt: skip
        print(f"    MqttSink, send() of 1000 events: {per_1000:>10,.0f} ev/s "
              f"({per_1000 / bare:.0%} of bare)")  # fmt: skip
        for size in (100, 1000):
            rate = median(sink_publish(broker, events, 10_000, batch_size=size) for _ in runs)
            print(f"(b) MqttSink batch_size={size:<5}       : {rate:>10,.0f} ev/s "
                  f"(target 300,000: {'ok' if rate >= 300_000 else 'MISSED'})")  # fmt: skip
        small = events[: args.pipeline_events]
        pairs = [(pipeline(broker, small, "echo"), pipeline(broker, small, "engine")) for _ in runs]
        echo, engine = median(e for e, _ in pairs), median(g for _, g in pairs)
        ratio = median(g / e for e, g in pairs)
        print(f"(c) paho echo process (json in/filter/out): {echo:>10,.0f} ev/s  (baseline)")
        print(f"    mqtt -> run_live .where -> mqtt process: {engine:>10,.0f} ev/s "
              f"({ratio:.0%} of echo; target 12,000: "
              f"{'ok' if engine >= 12_000 else 'MISSED'})")  # fmt: skip


if __name__ == "__main__":
    main()
