"""REST inject throughput of ``varpulis server`` (a script; never a test).

Starts two real processes on free ports: the worker (``python -m varpulis server
--port 0``, pipeline ``stream Hot = SensorReading .where(temperature > 100)
.emit(...)``) and, as the same-run baseline, a bare bottle app served by the
same :func:`varpulis.web.serve` whose handlers read the body and return a
constant. Then, from this process over one keep-alive ``requests.Session``:

* single inject: requests/s of ``POST .../events`` vs the bare handler
  (target: ≥ 70 % of the bare handler);
* batch inject: events/s of ``POST .../events-batch`` with batches of 1,000
  and 10,000 events (about 10 % pass the filter), vs the bare handler
  receiving the same bodies (target: ≥ 300,000 events/s end to end: request
  bodies are pre-encoded, responses are decoded).

    python bench/rest.py [--requests 3000] [--batches 30] [--sizes 1000,10000]
"""

from __future__ import annotations

import argparse
import json
import random
import re
import subprocess
import sys
import time

import requests

BARE = """
import sys, threading
from bottle import Bottle, request
from varpulis.web import serve
app = Bottle()
@app.post("/bare")
def bare():
    request.environ["wsgi.input"].read(int(request.environ.get("CONTENT_LENGTH") or 0))
    return '{"accepted":true,"output_events":[]}'
handle = serve(app, "127.0.0.1", 0)
print(f"API:       {handle.url}/api/v1/", flush=True)
threading.Event().wait()
"""
PROGRAM = ("stream Hot = SensorReading .where(temperature > 100)"
           " .emit(sensor: sensor, temperature: temperature)")  # fmt: skip


def start(cmd: list[str]) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        match = re.search(r"API:\s+(http://[\d.]+:\d+)/", line)
        if match:
            return proc, match.group(1)
    raise SystemExit(f"{cmd!r} exited without a banner")


def events(n: int, seed: int) -> list[dict]:
    rnd = random.Random(seed)
    return [{"event_type": "SensorReading",
             "fields": {"sensor": f"s{rnd.randint(0, 99)}", "temperature": rnd.randint(0, 110)}}
            for _ in range(n)]  # fmt: skip


def rate(session: requests.Session, url: str, bodies: list[bytes], weight: int) -> float:
    """Items/s over posting every body once (each counts *weight* items)."""
    headers = {"content-type": "application/json", "x-api-key": "bench"}
    for body in bodies[:20]:  # warm up: connection, code paths
        session.post(url, data=body, headers=headers).raise_for_status()
    begin = time.perf_counter()
    for body in bodies:
        session.post(url, data=body, headers=headers).json()
    return len(bodies) * weight / (time.perf_counter() - begin)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--batches", type=int, default=30)
    parser.add_argument("--sizes", default="1000,10000")
    args = parser.parse_args()

    worker, wurl = start([sys.executable, "-m", "varpulis", "--log-level", "warning", "server",
                          "--port", "0", "--api-key", "bench"])  # fmt: skip
    bare, burl = start([sys.executable, "-c", BARE])
    try:
        s = requests.Session()
        s.headers["x-api-key"] = "bench"
        r = s.post(wurl + "/api/v1/pipelines", json={"name": "bench", "source": PROGRAM})
        pid = r.json()["id"]
        inject = f"{wurl}/api/v1/pipelines/{pid}"

        singles = [json.dumps(e).encode() for e in events(args.requests, 1)]
        base = rate(requests.Session(), burl + "/bare", singles, 1)
        ours = rate(requests.Session(), inject + "/events", singles, 1)
        print(f"single inject : {ours:>10,.0f} req/s   bare handler {base:>10,.0f} req/s"
              f"   ratio {ours / base:.2f} (target >= 0.70)")  # fmt: skip

        for size in (int(x) for x in args.sizes.split(",")):
            bodies = [json.dumps({"events": events(size, seed)}).encode()
                      for seed in range(args.batches)]  # fmt: skip
            base = rate(requests.Session(), burl + "/bare", bodies, size)
            ours = rate(requests.Session(), inject + "/events-batch", bodies, size)
            mib = len(bodies[0]) / (1 << 20)
            print(f"batch {size:>6,} : {ours:>10,.0f} events/s  bare handler {base:>10,.0f}"
                  f" events/s   ({mib:.2f} MiB/request; target >= 300,000)")  # fmt: skip
    finally:
        for proc in (worker, bare):
            proc.terminate()
            proc.wait(10)


if __name__ == "__main__":
    main()
