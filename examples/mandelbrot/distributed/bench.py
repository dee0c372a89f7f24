"""A/B benchmark: the 1000×1000 Mandelbrot image on one server vs a 4-worker cluster.

    python3 examples/mandelbrot/distributed/bench.py [--balanced] [--png out.png]

A (baseline): one ``varpulis server``, one pipeline (``mandelbrot_server.vpl``),
16 contexts. B (distributed): ``varpulis coordinator`` + 4 workers, one
pipeline per worker (``mandelbrot_worker_{0..3}.vpl``, 4 contexts each),
events routed by ``ComputeTile{row}*``. Both publish their pixels to an MQTT
broker started here (mosquitto if installed, else the embedded one) on a free
port. The clock starts when the 16 ``ComputeTile`` events are injected and
stops when the last of the 1,000,000 pixels reaches the MQTT subscriber; the
run checks Σ iterations (47,554,279) and the diverged pixels (830,733).

Rows 1 and 2 hold ~95 % of the work, so the row-per-worker split leaves two
workers nearly idle; ``--balanced`` deals the tiles diagonally instead (tile
(r, c) on worker (r + c) mod 4). Pixels travel in JSON arrays of
``--batch-size`` (default 1000) to keep the subscriber off the critical path.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from operator import itemgetter
from pathlib import Path

import paho.mqtt.client as paho
import requests

from varpulis.connectors.broker import start_broker
from varpulis.supervisor import Cluster, ClusterConfig, Member

HERE = Path(__file__).resolve().parent
SERVER_PROGRAM = HERE.parent / "mandelbrot_server.vpl"
PIXELS, SIGMA, DIVERGED = 1_000_000, 47_554_279, 830_733
TOPIC = "mandelbrot/pixels"
_ITERATIONS, _DIVERGED = itemgetter("iterations"), itemgetter("diverged")
KEY, WORKER_KEY = "admin", "test"


class PixelCounter:
    """An MQTT subscriber that counts pixels and checksums them as they arrive.

    Per message it only decodes the JSON and sums two fields at C speed (a
    Python loop per pixel would make this subscriber the bottleneck of both
    runs); with *keep* the pixels are kept for the PNG, drawn after the clock.
    """

    def __init__(self, host: str, port: int) -> None:
        self.count = self.sigma = self.diverged = 0
        self.done = threading.Event()
        self.kept: list[list[dict]] | None = None
        self._lock = threading.Lock()
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="mandelbrot-bench")
        self.client.on_message = self._on_message
        self.client.connect(host, port)
        self.client.subscribe(TOPIC, qos=0)
        self.client.loop_start()

    def reset(self, keep: bool = False) -> None:
        with self._lock:
            self.count = self.sigma = self.diverged = 0
            self.kept = [] if keep else None
            self.done.clear()

    def _on_message(self, client: paho.Client, userdata: object, msg: paho.MQTTMessage) -> None:
        data = json.loads(msg.payload)
        pixels = data if isinstance(data, list) else [data]
        sigma = sum(map(_ITERATIONS, pixels))
        diverged = sum(map(bool, map(_DIVERGED, pixels)))
        with self._lock:
            self.sigma += sigma
            self.diverged += diverged
            self.count += len(pixels)
            if self.kept is not None:
                self.kept.append(pixels)
            if self.count >= PIXELS:
                self.done.set()

    def pixels(self) -> list[tuple[int, int, int]]:
        return [(p["x"], p["y"], p["iterations"]) for part in self.kept or [] for p in part]

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def for_broker(source: str, host: str, port: int, batch_size: int) -> str:
    """The program with its MQTT connector pointed at *host*:*port*, publishing arrays."""
    pattern = r'host:\s*"localhost",\s*port:\s*1883'
    replacement = f'host: "{host}", port: {port}, batch_size: {batch_size}'
    return re.sub(pattern, replacement, source)


def balanced_programs(source: str) -> list[tuple[str, list[str]]]:
    """Four programs dealing tile (r, c) to worker (r + c) mod 4; with their event types."""
    functions = source[source.index("fn mandelbrot") : source.index("# Tile (c, r)")]
    connector = source[source.index("connector") : source.index("\n", source.index("connector"))]
    programs = []
    for w in range(4):
        tiles = [(r, c) for r in range(4) for c in range(4) if (r + c) % 4 == w]
        lines = [connector.replace("mandelbrot-server", f"mandelbrot-w{w}")]
        lines += [f"context t{r}{c}" for r, c in tiles] + ["", functions]
        for r, c in tiles:
            lines.append(f"stream Tile{r}{c} = ComputeTile{r}{c}\n    .context(t{r}{c})\n"
                         f"    .process(compute_tile({c * 250}, {r * 250}, 250, 256))\n"
                         f'    .to(MqttOut, topic: "{TOPIC}")\n')  # fmt: skip
        programs.append(("\n".join(lines), [f"ComputeTile{r}{c}" for r, c in tiles]))
    return programs


def inject_all(url: str, key: str) -> None:
    """POST the 16 ComputeTile events to *url* (an inject endpoint) in parallel."""

    def one(name: str) -> None:
        body = {"event_type": name, "fields": {}}
        requests.post(url, json=body, headers={"x-api-key": key}, timeout=60).raise_for_status()

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(one, [f"ComputeTile{r}{c}" for r in range(4) for c in range(4)]))


def timed(counter: PixelCounter, inject: object, timeout: float) -> float:
    started = time.perf_counter()
    inject()  # type: ignore[operator]
    if not counter.done.wait(timeout):
        message = f"only {counter.count:,} of {PIXELS:,} pixels arrived within {timeout} s"
        raise SystemExit(message)
    elapsed = time.perf_counter() - started
    ok = counter.sigma == SIGMA and counter.diverged == DIVERGED
    print(f"  {elapsed:7.2f} s  Σ iterations {counter.sigma:,}  diverged {counter.diverged:,}"
          f"  {'checksum OK' if ok else 'CHECKSUM MISMATCH'}")  # fmt: skip
    if not ok:
        raise SystemExit(1)
    return elapsed


def run_single(broker: object, counter: PixelCounter, args: argparse.Namespace) -> float:
    print("A: 1 server, 1 pipeline, 16 contexts")
    source = for_broker(SERVER_PROGRAM.read_text(), broker.host, broker.port, args.batch_size)  # type: ignore[attr-defined]
    server = Member("server", ["server", "--port", "0", "--api-key", WORKER_KEY], out=args.log)
    server.start()
    try:
        url = server.wait_url(30)
        body = {"name": "mandelbrot", "source": source}
        headers = {"x-api-key": WORKER_KEY}
        deployed = requests.post(f"{url}/api/v1/pipelines", headers=headers, json=body, timeout=60)
        deployed.raise_for_status()
        inject = f"{url}/api/v1/pipelines/{deployed.json()['id']}/events"
        return timed(counter, lambda: inject_all(inject, WORKER_KEY), args.timeout)
    finally:
        server.stop()


def run_cluster(broker: object, counter: PixelCounter, args: argparse.Namespace) -> float:
    print(f"B: coordinator + 4 workers × 4 contexts ({'balanced' if args.balanced else 'by row'})")
    host, port = broker.host, broker.port  # type: ignore[attr-defined]
    if args.balanced:
        programs = balanced_programs(SERVER_PROGRAM.read_text())
    else:
        programs = [((HERE / f"mandelbrot_worker_{w}.vpl").read_text(), [f"ComputeTile{w}*"])
                    for w in range(4)]  # fmt: skip
    pipelines = [
        {"name": f"part{w}", "source": for_broker(src, host, port, args.batch_size),
         "worker_affinity": f"worker-{w}"}
        for w, (src, _) in enumerate(programs)
    ]  # fmt: skip
    routes = [{"from_pipeline": "_external", "to_pipeline": f"part{w}", "event_types": types}
              for w, (_, types) in enumerate(programs)]  # fmt: skip
    config = ClusterConfig(workers=4, port=0, base_port=0, api_key=KEY, worker_key=WORKER_KEY,
                           heartbeat_interval=1.0, heartbeat_timeout=5.0)  # fmt: skip
    cluster = Cluster(config, out=args.log)
    try:
        cluster.start()
        base = f"{cluster.coordinator.url}/api/v1/cluster"  # type: ignore[union-attr]
        group = requests.post(f"{base}/pipeline-groups", headers={"x-api-key": KEY}, timeout=60,
                              json={"name": "mandelbrot", "pipelines": pipelines,
                                    "routes": routes})  # fmt: skip
        group.raise_for_status()
        inject = f"{base}/pipeline-groups/{group.json()['id']}/inject"
        return timed(counter, lambda: inject_all(inject, KEY), args.timeout)
    finally:
        cluster.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--balanced", action="store_true", help="deal tiles diagonally")
    parser.add_argument("--batch-size", type=int, default=1000, help="pixels per MQTT message")
    parser.add_argument("--broker", default="auto", choices=["auto", "mosquitto", "embedded"])
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per run")
    parser.add_argument("--png", metavar="FILE", help="also render the image (needs Pillow)")
    parser.add_argument("--verbose", action="store_true", help="show the children's output")
    args = parser.parse_args(argv)
    args.log = sys.stderr if args.verbose else open("/dev/null", "w")  # noqa: SIM115
    with start_broker(args.broker) as broker:
        print(f"broker: {broker.kind} at {broker.url}")
        counter = PixelCounter(broker.host, broker.port)
        try:
            single = run_single(broker, counter, args)
            counter.reset(keep=bool(args.png))
            distributed = run_cluster(broker, counter, args)
        finally:
            counter.close()
    print(f"single {single:.2f} s ({PIXELS / single:,.0f} pixels/s), distributed "
          f"{distributed:.2f} s ({PIXELS / distributed:,.0f} pixels/s): "
          f"speed-up ×{single / distributed:.2f}")  # fmt: skip
    if args.png and counter.kept:
        sys.path.insert(0, str(HERE.parent))
        from render import image_array, save_png

        print(f"wrote {save_png(image_array(counter.pixels()), args.png)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
