"""Routed inject through ``varpulis coordinator`` vs straight to the worker (never a test).

Starts two real processes on free ports, a worker (``varpulis server``) and a
coordinator (``varpulis coordinator``), registers the worker (from loopback, as
the tutorial's workers do) and deploys groups whose pipeline is ``stream Hot =
SensorReading .where(temperature > 100) .emit(...)`` (about 10 % of events pass).
Then, from this process over one keep-alive ``http.client`` connection per
target (``requests`` costs about 1.4 ms per call on the client side here, which
would hide both servers' cost), every response read and decoded:

* single inject: p50/p99 latency and requests/s of ``POST /pipeline-groups/{id}/inject``
  vs ``POST /api/v1/pipelines/{id}/events`` on the worker, same events, same run,
  one request at a time (target: p50 <= 2 ms; a second waitress hop costs about
  as much as the first, so one-at-a-time throughput is near half the direct one);
  then requests/s with ``--clients`` concurrent connections, where the coordinator
  and the worker work in parallel, direct and routed runs alternating
  ``--rounds`` times (target: median ratio >= 60 % of the direct throughput);
* inject-batch: events/s of ``POST /pipeline-groups/{id}/inject-batch`` with
  ``--size`` events per call, for a one-pipeline group (forwarded undecoded)
  and a two-pipeline group whose events all go to one pipeline (the body's
  types found by one scan, forwarded undecoded), vs the worker's
  ``events-batch`` (target: >= 200,000 events/s through the coordinator);
  then the two-pipeline group with every other event of the other pipeline's
  type (decoded, split, two worker calls in parallel).

    python bench/cluster.py [--requests 3000] [--batches 20] [--size 10000]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from urllib.parse import urlsplit

import requests
from rest import events, start  # bench/rest.py: same processes, same events

PROGRAM = (
    "stream Hot = SensorReading .where(temperature > 100)"
    " .emit(sensor: sensor, temperature: temperature)"
)
OTHER = "stream Cold = Other .emit(n: 1)"


def run(url: str, key: str, bodies: list[bytes]) -> list[float]:
    """Post every body once on one keep-alive connection; the latency of each (s)."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    headers = {"content-type": "application/json", "x-api-key": key}

    def post(body: bytes) -> None:
        conn.request("POST", parts.path, body, headers)
        response = conn.getresponse()
        data = response.read()
        if response.status != 200:
            raise SystemExit(f"POST {url}: {response.status} {data[:200]!r}")
        json.loads(data)

    for body in bodies[:20]:  # warm up: connections (both hops), code paths
        post(body)
    out = []
    clock = time.perf_counter
    for body in bodies:
        begin = clock()
        post(body)
        out.append(clock() - begin)
    conn.close()
    return out


def concurrent_rate(url: str, key: str, bodies: list[bytes], clients: int) -> float:
    """Requests/s with *clients* threads, each on its own keep-alive connection."""
    share = [bodies[i::clients] for i in range(clients)]
    run(url, key, bodies[:20])  # warm up
    threads = [threading.Thread(target=run, args=(url, key, part)) for part in share]
    begin = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return (len(bodies) + 20 * clients) / (time.perf_counter() - begin)


def cpu_seconds(proc: subprocess.Popen[str]) -> float:
    """User + system CPU time of a child so far (Linux /proc)."""
    with open(f"/proc/{proc.pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pct(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--size", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=4, help="connections of the concurrent run")
    parser.add_argument("--rounds", type=int, default=5, help="alternating concurrent pairs")
    parser.add_argument("--coordinator-args", default="", help="extra coordinator flags")
    args = parser.parse_args()
    py = [sys.executable, "-m", "varpulis", "--log-level", "warning"]
    worker, wurl = start([*py, "server", "--port", "0", "--api-key", "test"])
    coord, curl = start(
        [
            *py,
            "coordinator",
            "--port",
            "0",
            "--api-key",
            "admin",
            "--heartbeat-timeout",
            "3600",
            *args.coordinator_args.split(),
        ]
    )
    try:
        s = requests.Session()
        r = s.post(
            curl + "/api/v1/cluster/workers/register",
            json={
                "worker_id": "w0",
                "address": wurl,
                "api_key": "test",
                "capacity": {"cpu_cores": 2, "pipelines_running": 0, "max_pipelines": 100},
            },
        )
        r.raise_for_status()
        s.headers["x-api-key"] = "admin"

        def deploy(pipelines: list[dict]) -> dict:
            r = s.post(
                curl + "/api/v1/cluster/pipeline-groups",
                json={
                    "name": "bench",
                    "pipelines": pipelines,
                    "routes": [
                        {
                            "from_pipeline": "_external",
                            "to_pipeline": "hot",
                            "event_types": ["Sensor*"],
                        }
                    ],
                },
            )
            r.raise_for_status()
            return r.json()

        one = deploy([{"name": "hot", "source": PROGRAM}])
        two = deploy([{"name": "other", "source": OTHER}, {"name": "hot", "source": PROGRAM}])
        direct = f"{wurl}/api/v1/pipelines/{one['placements'][0]['pipeline_id']}"
        routed = f"{curl}/api/v1/cluster/pipeline-groups/{one['id']}"

        singles = [json.dumps(e).encode() for e in events(args.requests, 1)]
        base = run(direct + "/events", "test", singles)
        ours = run(routed + "/inject", "admin", singles)
        b_rate, o_rate = len(base) / sum(base), len(ours) / sum(ours)
        print(
            f"single inject, direct to worker : p50 {pct(base, 50):.2f} ms  p99 "
            f"{pct(base, 99):.2f} ms  {b_rate:>8,.0f} req/s"
        )
        print(
            f"single inject, via coordinator  : p50 {pct(ours, 50):.2f} ms  p99 "
            f"{pct(ours, 99):.2f} ms  {o_rate:>8,.0f} req/s   ratio {o_rate / b_rate:.2f}"
            f" (target: p50 <= 2 ms)"
        )
        # Direct and routed runs alternate: this shared machine's speed drifts, so each
        # ratio compares a routed run with the direct run just before it.
        ratios, rates = [], []
        cpu_coord = cpu_worker = 0.0
        for _ in range(args.rounds):
            b_rate = concurrent_rate(direct + "/events", "test", singles, args.clients)
            cpu = (cpu_seconds(coord), cpu_seconds(worker))
            o_rate = concurrent_rate(routed + "/inject", "admin", singles, args.clients)
            cpu_coord += cpu_seconds(coord) - cpu[0]
            cpu_worker += cpu_seconds(worker) - cpu[1]
            ratios.append(o_rate / b_rate)
            rates.append((b_rate, o_rate))
        n = (len(singles) + 20 * args.clients) * args.rounds
        print(
            f"CPU per routed inject: coordinator {cpu_coord / n * 1e3:.2f} ms"
            f", worker {cpu_worker / n * 1e3:.2f} ms"
        )
        b_rate, o_rate = rates[ratios.index(statistics.median_low(ratios))]
        print(
            f"single inject, {args.clients} concurrent clients: direct {b_rate:>8,.0f} req/s"
            f"   via coordinator {o_rate:>8,.0f} req/s   ratio {statistics.median(ratios):.2f}"
            f" (median of {args.rounds} alternating pairs: "
            f"{', '.join(f'{r:.2f}' for r in ratios)}; target >= 0.60)"
        )

        bodies = [
            json.dumps({"events": events(args.size, seed)}).encode() for seed in range(args.batches)
        ]
        mib = len(bodies[0]) / (1 << 20)

        def ev_rate(url: str, key: str) -> float:
            times = run(url, key, bodies)
            return len(times) * args.size / sum(times)

        base_b = ev_rate(direct + "/events-batch", "test")
        print(
            f"batch {args.size:,} ({mib:.2f} MiB), direct events-batch     : "
            f"{base_b:>10,.0f} events/s"
        )
        for label, group in (("1-pipeline group", one), ("2-pipeline group", two)):
            rate = ev_rate(
                f"{curl}/api/v1/cluster/pipeline-groups/{group['id']}/inject-batch", "admin"
            )
            print(
                f"batch {args.size:,}, inject-batch, {label} : {rate:>10,.0f} events/s   "
                f"ratio {rate / base_b:.2f} (target >= 200,000)"
            )
        # every other event an ``Other``: decoded, split in two, two worker calls at once
        split = []
        for seed in range(args.batches):
            items = events(args.size, seed)
            for item in items[::2]:
                item["event_type"], item["fields"] = "Other", {"n": 1}
            split.append(json.dumps({"events": items}).encode())
        bodies[:] = split
        rate = ev_rate(f"{curl}/api/v1/cluster/pipeline-groups/{two['id']}/inject-batch", "admin")
        print(
            f"batch {args.size:,}, inject-batch, 2 pipelines, split  : {rate:>10,.0f} events/s"
            f"   ratio {rate / base_b:.2f}"
        )
    finally:
        for proc in (coord, worker):
            proc.terminate()
            proc.wait(10)


if __name__ == "__main__":
    main()
