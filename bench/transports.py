"""Throughput of ``transports`` between two processes, against raw pyzmq in the same run.

A spawned child connects to a receiver in this process and sends row batches
(``--batch`` ``("Pixel", {x, y, iterations, diverged}, ts)`` tuples, JSON-encoded per
send, decoded to tuples here) or columnar batches (``--col-batch`` rows of four numpy
columns) over ``ipc://`` and ``tcp://``. The baseline pushes the same frames, encoded
once beforehand, through a bare PUSH/PULL pair and does not decode them: the ratio is
what framing, encoding and decoding cost. For rows a second baseline is the
hand-written way, bare PUSH/PULL with ``json.dumps``/``json.loads`` of each batch, and
a what-if line shows the same with marshal, the fastest stdlib alternative. Each
figure is the best of ``--repeat`` bursts from one child, timed from the first to the
last message received, so process start-up is excluded; other work on the machine
still shows up in the figures, so compare within one run. First, an in-process table
compares row-batch encodings. Run ``python bench/transports.py`` (about 10 s).
"""

from __future__ import annotations

import argparse
import json
import marshal
import multiprocessing
import os
import pickle
import sys
import time

# Run as a script, this file's directory would shadow the ``transports`` package.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]
sys.path.insert(0, os.path.dirname(_HERE))

import numpy as np  # noqa: E402
import zmq  # noqa: E402

import transports  # noqa: E402
from transports import Message, codec  # noqa: E402

SPAWN = multiprocessing.get_context("spawn")
WILDCARD = {"ipc": "ipc://", "tcp": "tcp://127.0.0.1:0"}
TIMEOUT = 60.0


def pixel_rows(n: int) -> list[tuple]:
    return [
        (
            "Pixel",
            {"x": i % 1000, "y": i // 1000, "iterations": (i * 7) % 257, "diverged": i % 3 > 0},
            1_700_000_000_000_000_000 + i,
        )
        for i in range(n)
    ]


def pixel_columns(n: int) -> dict[str, np.ndarray]:
    i = np.arange(n, dtype=np.int64)
    return {
        "x": i % 1000,
        "y": i // 1000,
        "iterations": ((i * 7) % 257).astype(np.int32),
        "diverged": i % 3 > 0,
    }


def make_message(kind: str, size: int) -> Message:
    if kind == "rows":
        return Message.rows(pixel_rows(size), {"event_type": "Pixel"})
    return Message.columns(pixel_columns(size), {"event_type": "Pixel", "count": size})


def produce(address: str, kind: str, size: int, count: int, mode: str, go) -> None:
    """Child: on every ``"go"`` from *go*, send *count* messages of *size* events.

    *mode* is ``transports`` (encode with the codec on every send), ``raw`` (bare
    PUSH of frames encoded once), ``json`` (bare PUSH, ``json.dumps`` of the rows on
    every send: the usual hand-written way) or ``marshal`` (same with marshal: what a
    faster row encoding would give). The child closes only on ``"stop"``, once the
    parent has everything: LINGER 0 drops unsent messages at close.
    """
    message = make_message(kind, size)
    if mode == "transports":
        tx = transports.connect(address)
        send, close = tx.send, tx.close
    else:
        frames = [bytes(frame) for frame in codec.encode(message)]
        sock = zmq.Context.instance().socket(zmq.PUSH)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(address)
        close = sock.close
        if mode == "json":

            def send(m: Message) -> None:
                sock.send(json.dumps(m.body).encode(), copy=False)
        elif mode == "marshal":

            def send(m: Message) -> None:
                sock.send(marshal.dumps(m.body), copy=False)
        else:

            def send(m: Message) -> None:
                sock.send_multipart(frames, copy=False)

    while go.get(timeout=TIMEOUT) == "go":
        for _ in range(count):
            send(message)
    close()


def run(scheme: str, kind: str, size: int, count: int, mode: str, repeat: int) -> float:
    """Best events per second received here over *repeat* bursts from one child."""
    go = SPAWN.Queue()
    if mode == "transports":
        rx = transports.bind(WILDCARD[scheme])
        address, close = rx.address, rx.close

        def receive() -> None:
            rx.recv(TIMEOUT)
    else:
        sock = zmq.Context.instance().socket(zmq.PULL)
        sock.setsockopt(zmq.LINGER, 0)
        sock.bind("tcp://127.0.0.1:*" if scheme == "tcp" else "ipc://*")
        address, close = sock.getsockopt_string(zmq.LAST_ENDPOINT), sock.close

        def receive() -> None:
            if not sock.poll(int(TIMEOUT * 1000)):
                raise TimeoutError(address)
            frames = sock.recv_multipart(copy=False)
            if mode == "json":
                json.loads(frames[0].bytes)
            elif mode == "marshal":
                marshal.loads(frames[0].bytes)

    child = SPAWN.Process(target=produce, args=(address, kind, size, count, mode, go))
    child.start()
    best = 0.0
    try:
        for _ in range(repeat):
            go.put("go")
            receive()  # the clock starts at the first message: no start-up, no wake-up
            start = time.perf_counter()
            for _ in range(count - 1):
                receive()
            best = max(best, (count - 1) * size / (time.perf_counter() - start))
    finally:
        go.put("stop")
        child.join(TIMEOUT)
        close()
    return best


def best_time(fn, arg, repeat: int = 5, number: int = 50) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(number):
            fn(arg)
        best = min(best, (time.perf_counter() - start) / number)
    return best


def codec_table(size: int) -> None:
    """Encode + decode cost of one row batch in this process, per format."""
    message = Message.rows(pixel_rows(size))
    formats = {
        "json (transports.codec)": (codec.encode, codec.decode),
        "pickle protocol 5": (lambda m: pickle.dumps(m.body, 5), pickle.loads),
        "marshal": (lambda m: marshal.dumps(m.body), marshal.loads),
    }
    print(f"row-batch encodings, {size:,} events per batch, one process:")
    for name, (encode, decode) in formats.items():
        encoded = encode(message)
        t_enc, t_dec = best_time(encode, message), best_time(decode, encoded)
        print(
            f"  {name:24s} encode {t_enc * 1e6:7.0f} us ({size / t_enc:12,.0f} events/s)"
            f"  decode {t_dec * 1e6:7.0f} us ({size / t_dec:12,.0f} events/s)"
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000, help="events per row burst")
    parser.add_argument("--repeat", type=int, default=3, help="bursts per figure; best is shown")
    parser.add_argument(
        "--col-events", type=int, default=2_000_000, help="events per columnar burst"
    )
    parser.add_argument("--batch", type=int, default=1_000, help="events per row batch")
    parser.add_argument("--col-batch", type=int, default=10_000, help="rows per columnar batch")
    parser.add_argument("--schemes", nargs="+", default=["ipc", "tcp"], choices=list(WILDCARD))
    args = parser.parse_args(argv)

    print(f"python {sys.version.split()[0]}, pyzmq {zmq.__version__}, numpy {np.__version__}")
    codec_table(args.batch)
    print("between processes (target >= 500,000 events/s):")
    runs = (("rows", args.batch, args.events), ("columns", args.col_batch, args.col_events))
    for scheme in args.schemes:
        for kind, size, events in runs:
            count = max(2, events // size)
            nbytes = sum(memoryview(f).nbytes for f in codec.encode(make_message(kind, size)))
            rate = run(scheme, kind, size, count, "transports", args.repeat)
            base = run(scheme, kind, size, count, "raw", args.repeat)
            line = (
                f"{scheme} {kind}: {rate:,.0f} events/s (baseline raw zmq {base:,.0f} "
                f"msg-bytes equivalent events/s, ratio {rate / base:.2f}"
            )
            if kind == "rows":
                hand = run(scheme, kind, size, count, "json", args.repeat)
                line += f"; raw zmq + json.dumps/loads {hand:,.0f} events/s"
                line += f", ratio {rate / hand:.2f}"
            print(f"{line}) [{size:,} events/batch, {nbytes:,} bytes/message]", flush=True)
            if kind == "rows":
                what_if = run(scheme, kind, size, count, "marshal", args.repeat)
                print(f"  what-if: raw zmq + marshal rows {what_if:,.0f} events/s", flush=True)


if __name__ == "__main__":
    main()
