"""REST inject throughput of ``varpulis server`` (a script; never a test).

Starts two real processes on free ports: the worker (``python -m varpulis server
--port 0``, pipeline ``stream Hot = SensorReading .where(temperature > 100)
.emit(...)``) and, as the same-run baseline, a bare bottle app served by the
same :func:`varpulis.web.serve` whose handlers read the body and return a
constant. Then, from this process over one keep-alive connection per
measurement (``http.client``, or ``--client requests``; see :func:`rate`):

* single inject: requests/s of ``POST .../events`` vs the bare handler
  (target: ≥ 70 % of the bare handler);
* batch inject: events/s of ``POST .../events-batch`` with batches of 1,000
  and 10,000 events (about 10 % pass the filter), vs the bare handler
  receiving the same bodies (target: ≥ 300,000 events/s end to end: request
  bodies are pre-encoded, responses are decoded).

    python bench/rest.py [--requests 3000] [--batches 30] [--sizes 1000,10000] [--client http]
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import re
import subprocess
import sys
import time
from urllib.parse import urlsplit

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


def rate(url: str, bodies: list[bytes], weight: int, client: str = "http") -> float:
    """Items/s over posting every body once on one keep-alive connection (each counts *weight*).

    *client* ``http`` (default) is ``http.client``; ``requests`` is a
    ``requests.Session``, which on this machine spends about 1.4 ms per
    request on its own side and so hides much of the server's cost. Every
    response is read and decoded.
    """
    headers = {"content-type": "application/json", "x-api-key": "bench"}
    if client == "requests":
        session = requests.Session()

        def post(body: bytes) -> None:
            session.post(url, data=body, headers=headers).raise_for_status()

    else:
        parts = urlsplit(url)
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)

        def post(body: bytes) -> None:
            conn.request("POST", parts.path, body, headers)
            response = conn.getresponse()
            data = response.read()
            if response.status != 200:
                raise SystemExit(f"POST {url}: {response.status} {data[:200]!r}")
            json.loads(data)

    for body in bodies[:20]:  # warm up: connection, code paths
        post(body)
    begin = time.perf_counter()
    for body in bodies:
        post(body)
    return len(bodies) * weight / (time.perf_counter() - begin)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--batches", type=int, default=30)
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--client", choices=("http", "requests"), default="http")
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
        base = rate(burl + "/bare", singles, 1, args.client)
        ours = rate(inject + "/events", singles, 1, args.client)
        print(f"single inject : {ours:>10,.0f} req/s   bare handler {base:>10,.0f} req/s"
              f"   ratio {ours / base:.2f} (target >= 0.70)")  # fmt: skip

        for size in (int(x) for x in args.sizes.split(",")):
            bodies = [json.dumps({"events": events(size, seed)}).encode()
                      for seed in range(args.batches)]  # fmt: skip
            base = rate(burl + "/bare", bodies, size, args.client)
            ours = rate(inject + "/events-batch", bodies, size, args.client)
            mib = len(bodies[0]) / (1 << 20)
            print(f"batch {size:>6,} : {ours:>10,.0f} events/s  bare handler {base:>10,.0f}"
                  f" events/s   ({mib:.2f} MiB/request; target >= 300,000)")  # fmt: skip
    finally:
        for proc in (worker, bare):
            proc.terminate()
            proc.wait(10)


if __name__ == "__main__":
    main()
