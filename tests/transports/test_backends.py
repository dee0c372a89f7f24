"""The same scenarios for every backend: round trips, fan-in, timeouts, close, addresses."""

from __future__ import annotations

import multiprocessing
import os
import pickle
import socket
import threading
import time
import uuid

import numpy as np
import pytest

import transports
from tests.utils import poll_for
from transports import Message, TransportClosed, TransportTimeout

SCHEMES = ["inproc", "ipc", "tcp"]
WILDCARD = {"inproc": "inproc://", "ipc": "ipc://", "tcp": "tcp://127.0.0.1:0"}
TIMEOUT = 10.0  # generous upper bound for anything that should happen at once
SPAWN = multiprocessing.get_context("spawn")


@pytest.fixture(params=SCHEMES)
def scheme(request) -> str:
    return request.param


@pytest.fixture
def receiver(scheme):
    with transports.bind(WILDCARD[scheme]) as rx:
        yield rx


@pytest.fixture
def sender(receiver):
    with transports.connect(receiver.address) as tx:
        yield tx


def pixels(n: int, offset: int = 0) -> list[tuple]:
    return [
        (
            "Pixel",
            {"x": i % 1000, "y": i // 1000, "iterations": i % 257, "diverged": i % 3 > 0},
            1_700_000_000_000_000_000 + i,
        )
        for i in range(offset, offset + n)
    ]


def unused_address(scheme: str, tmp_path) -> str:
    """An address nobody listens on yet, in the form a receiver can later bind."""
    if scheme == "inproc":
        return f"inproc://unbound-{uuid.uuid4().hex}"
    if scheme == "ipc":
        return f"ipc://{tmp_path / 'later.sock'}"
    # A plain socket releases its port on close; a zmq receiver does so in the background.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{probe.getsockname()[1]}"


def bind_when_free(address: str, timeout: float = TIMEOUT) -> transports.Receiver:
    """Bind *address* that a closed receiver held: zmq frees it asynchronously."""
    return poll_for(lambda: transports.bind(address), timeout, what=f"bind {address}")


def receive(rx, count: int, timeout: float = TIMEOUT) -> list[Message]:
    """Receive *count* messages, all within one deadline."""
    deadline = time.monotonic() + timeout
    return [rx.recv(max(0.0, deadline - time.monotonic())) for _ in range(count)]


# ----------------------------------------------------------------------- addresses


def test_bind_reports_a_concrete_address(scheme, receiver):
    prefix, _, loc = receiver.address.partition("://")
    assert prefix == scheme
    if scheme == "tcp":
        host, _, port = loc.rpartition(":")
        assert host == "127.0.0.1" and port.isdigit() and int(port) > 0
    elif scheme == "ipc":
        assert os.path.exists(loc)
    else:
        assert loc


@pytest.mark.parametrize("wildcard", ["0", "*"])
def test_tcp_wildcard_port_becomes_the_real_port(wildcard):
    with transports.bind(f"tcp://127.0.0.1:{wildcard}") as rx:
        port = int(rx.address.rsplit(":", 1)[1])
        assert port > 0
        with transports.connect(f"tcp://127.0.0.1:{port}") as tx:
            tx.send(Message.control("ping"))
            assert rx.recv(TIMEOUT).kind == "ping"


@pytest.mark.parametrize(
    ("addr", "match"),
    [
        ("ipc:///tmp/" + "x" * 200, "longer than 107 characters"),
        ("tcp://no-such-host.invalid:0", "cannot bind"),
    ],
)
def test_bind_failures_are_invalid_addresses(addr, match):
    with pytest.raises(transports.InvalidAddress, match=match):
        transports.bind(addr)


def test_binding_a_bound_address_raises_address_in_use(receiver):
    with pytest.raises(transports.AddressInUse, match="in use|already bound"):
        transports.bind(receiver.address)


# --------------------------------------------------------------------- round trips


def test_row_batch_round_trip(sender, receiver):
    batch = pixels(1000)
    sender.send(Message.rows(batch, {"event_type": "Pixel"}))
    got = receiver.recv(TIMEOUT)
    assert (got.kind, got.meta) == ("rows", {"event_type": "Pixel"})
    assert got.body == batch


def test_columnar_batch_round_trip(sender, receiver):
    n = 100_000  # large enough for pyzmq's zero-copy path (frames over 64 KiB)
    columns = {
        "x": np.arange(n, dtype=np.int32) % 1000,
        "cx": np.linspace(-2.0, 1.0, n),
        "diverged": np.arange(n) % 3 > 0,
        "label": np.array(["a", "bc"] * (n // 2)),
        "grid": np.arange(12, dtype=np.uint8).reshape(3, 4),
    }
    sender.send(Message.columns(columns, {"event_type": "Pixel", "count": n}))
    got = receiver.recv(TIMEOUT)
    assert (got.kind, got.meta) == ("columns", {"event_type": "Pixel", "count": n})
    assert list(got.body) == list(columns)
    for name, array in columns.items():
        assert got.body[name].dtype == array.dtype, name
        np.testing.assert_array_equal(got.body[name], array)
        assert not got.body[name].flags.writeable


@pytest.mark.parametrize("kind", ["barrier", "watermark", "stop"])
def test_control_message_round_trip(sender, receiver, kind):
    sender.send(Message.control(kind, {"id": 42, "path": ["t00", "t01"]}))
    got = receiver.recv(TIMEOUT)
    assert (got.kind, got.meta, got.body) == (kind, {"id": 42, "path": ["t00", "t01"]}, None)
    assert got.is_control


def test_one_sender_keeps_order_across_kinds(sender, receiver):
    sent = []
    for i in range(30):
        sent.append(
            [
                Message.rows(pixels(2, i), {"seq": i}),
                Message.columns({"v": np.full(3, i)}, {"seq": i}),
                Message.control("barrier", {"seq": i}),
            ][i % 3]
        )
        sender.send(sent[-1])
    got = receive(receiver, len(sent))
    assert [(m.kind, m.meta["seq"]) for m in got] == [(m.kind, m.meta["seq"]) for m in sent]


def test_unencodable_message_fails_in_the_sender_which_stays_usable(sender, receiver):
    with pytest.raises(transports.CodecError):
        sender.send(Message.rows([("E", {"raw": b"bytes"}, 1)]))
    sender.send(Message.control("stop"))
    assert receiver.recv(TIMEOUT).kind == "stop"


# -------------------------------------------------------------------------- fan-in


def test_fan_in_from_threads_keeps_per_sender_order(receiver):
    n_threads, n_batches = 4, 25
    done = threading.Event()

    def produce(sender_id: int) -> None:
        with transports.connect(receiver.address) as tx:
            for seq in range(n_batches):
                tx.send(Message.rows(pixels(10, seq), {"sender": sender_id, "seq": seq}))
            # LINGER 0: closing drops what the receiver has not taken yet, so a
            # sender stays open until the receiving side acknowledges.
            done.wait(TIMEOUT)

    threads = [threading.Thread(target=produce, args=(i,)) for i in range(n_threads)]
    for thread in threads:
        thread.start()
    try:
        got = receive(receiver, n_threads * n_batches)
    finally:
        done.set()
        for thread in threads:
            thread.join(TIMEOUT)
    by_sender: dict[int, list[int]] = {}
    for message in got:
        by_sender.setdefault(message.meta["sender"], []).append(message.meta["seq"])
    assert by_sender == {i: list(range(n_batches)) for i in range(n_threads)}


def _child_sender(address: str, sender_id: int, n_batches: int, done) -> None:
    with transports.connect(address) as tx:
        for seq in range(n_batches):
            tx.send(Message.rows(pixels(100, seq), {"sender": sender_id, "seq": seq}))
        tx.send(Message.columns({"id": np.full(4, sender_id)}, {"sender": sender_id, "seq": -1}))
        # LINGER 0 drops what is still queued at close: wait for the parent's ack.
        done.wait(TIMEOUT)


@pytest.mark.parametrize("scheme", ["ipc", "tcp"])
def test_fan_in_from_spawned_processes(receiver):
    n_children, n_batches = 2, 20
    done = SPAWN.Event()
    children = [
        SPAWN.Process(target=_child_sender, args=(receiver.address, i, n_batches, done))
        for i in range(n_children)
    ]
    for child in children:
        child.start()
    try:
        got = receive(receiver, n_children * (n_batches + 1), timeout=30)
    finally:
        done.set()
        for child in children:
            child.join(TIMEOUT)
    assert [child.exitcode for child in children] == [0] * n_children
    rows = [m for m in got if m.kind == "rows"]
    assert sorted((m.meta["sender"], m.meta["seq"]) for m in rows) == [
        (i, seq) for i in range(n_children) for seq in range(n_batches)
    ]
    assert all(m.body == pixels(100, m.meta["seq"]) for m in rows)
    columns = {m.meta["sender"]: m.body["id"] for m in got if m.kind == "columns"}
    assert {i: a.tolist() for i, a in columns.items()} == {i: [i] * 4 for i in range(n_children)}


def _child_receiver(wildcard: str, report) -> None:
    with transports.bind(wildcard) as rx:
        report.put(rx.address)
        events = 0
        while (message := rx.recv(TIMEOUT)).kind != "stop":
            events += len(message.body) if message.kind == "rows" else 0
        report.put(events)


@pytest.mark.parametrize("scheme", ["ipc", "tcp"])
def test_child_binds_and_reports_its_address(scheme):
    report = SPAWN.Queue()
    child = SPAWN.Process(target=_child_receiver, args=(WILDCARD[scheme], report))
    child.start()
    try:
        address = report.get(timeout=30)
        assert address.startswith(f"{scheme}://") and not address.endswith((":0", ":*"))
        with transports.connect(address) as tx:
            for i in range(10):
                tx.send(Message.rows(pixels(50, i)))
            tx.send(Message.control("stop"))
            assert report.get(timeout=TIMEOUT) == 500
    finally:
        child.join(TIMEOUT)
    assert child.exitcode == 0


def _forked_child(address: str, inproc_name: str, done) -> None:
    # The parent's zmq context and inproc names must not leak into this process.
    with transports.bind(inproc_name), transports.connect(address) as tx:
        tx.send(Message.control("hello", {"pid": os.getpid()}))
        done.wait(TIMEOUT)


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="no fork")
def test_forked_child_gets_its_own_context_and_names():
    fork = multiprocessing.get_context("fork")
    done = fork.Event()
    with transports.bind("ipc://") as rx, transports.bind("inproc://") as named:
        child = fork.Process(target=_forked_child, args=(rx.address, named.address, done))
        child.start()
        try:
            got = rx.recv(TIMEOUT)
        finally:
            done.set()
            child.join(TIMEOUT)
    assert (got.kind, got.meta) == ("hello", {"pid": child.pid})
    assert child.exitcode == 0


def test_sender_may_connect_before_the_receiver_binds(scheme, tmp_path):
    address = unused_address(scheme, tmp_path)
    with transports.connect(address) as tx:
        for seq in range(3):
            tx.send(Message.control("early", {"seq": seq}))
        with transports.bind(address) as rx:
            assert [m.meta["seq"] for m in receive(rx, 3)] == [0, 1, 2]


# ------------------------------------------------------------------------ timeouts


def test_recv_times_out_within_bounds(receiver):
    start = time.monotonic()
    with pytest.raises(TransportTimeout, match=r"within 0\.2 s"):
        receiver.recv(0.2)
    assert 0.15 <= time.monotonic() - start < 2.0


def test_zero_timeout_never_waits(sender, receiver):
    start = time.monotonic()
    assert receiver.poll() is False
    with pytest.raises(TransportTimeout):
        receiver.recv(0)
    assert time.monotonic() - start < 0.5
    sender.send(Message.control("ping"))
    assert receiver.poll(TIMEOUT) is True
    assert receiver.poll(0) is True  # polling does not consume
    assert receiver.recv(0).kind == "ping"
    assert receiver.poll(0.05) is False


def test_send_times_out_at_the_high_water_mark(scheme, tmp_path):
    # Nobody receives, so the sender's own queue is all there is; zmq may accept
    # a few more than hwm messages, but never an unbounded number.
    with transports.connect(unused_address(scheme, tmp_path), hwm=1) as tx:
        start = time.monotonic()
        with pytest.raises(TransportTimeout, match="high-water mark"):
            for _ in range(100):
                tx.send(Message.control("fill"), timeout=0.05)
        assert time.monotonic() - start < 3.0


# --------------------------------------------------------------------------- close


def test_close_is_idempotent_and_final(sender, receiver):
    for endpoint in (sender, receiver):
        endpoint.close()
        endpoint.close()
        assert endpoint.closed
        assert "closed" in repr(endpoint)
    with pytest.raises(TransportClosed, match="is closed"):
        sender.send(Message.control("late"))
    with pytest.raises(TransportClosed):
        receiver.recv(0)
    with pytest.raises(TransportClosed):
        receiver.poll()


def test_close_frees_the_address_for_a_new_receiver(scheme, receiver):
    address = receiver.address
    receiver.close()
    if scheme == "ipc":
        # the fresh path lived in a temporary directory created for it
        assert not os.path.exists(os.path.dirname(address.removeprefix("ipc://")))
        return
    with bind_when_free(address) as again, transports.connect(address) as tx:
        tx.send(Message.control("ping"))
        assert again.recv(TIMEOUT).kind == "ping"


def test_endpoints_refuse_to_be_pickled(sender, receiver):
    for endpoint in (sender, receiver):
        with pytest.raises(TypeError, match="pass its address"):
            pickle.dumps(endpoint)


def test_inproc_forgets_a_name_once_nothing_uses_it():
    from transports import inproc

    rx = transports.bind("inproc://short-lived")
    tx = transports.connect(rx.address)
    rx.close()
    assert "short-lived" in inproc._channels  # the sender may still queue for a new receiver
    tx.close()
    assert "short-lived" not in inproc._channels
