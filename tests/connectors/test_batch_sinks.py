"""Columnar sinks: payloads serialised from columns are byte-identical to per-event ones."""

from __future__ import annotations

import math
import socket
from pathlib import Path
from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from kernels.columnar import ColumnarBatch
from varpulis.connectors.base import ConnectorConfig, batch_payloads
from varpulis.connectors.file import FileSink
from varpulis.connectors.mqtt import MqttSink
from varpulis.events import Event, dumps_sink

TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=6)
NAMES = st.sampled_from(["x", "y", "timestamp", "event_type", "%s", 'q"k', "é"])
FLOATS = st.floats(allow_nan=True, allow_infinity=True, width=64)
OBJECTS = st.one_of(
    st.none(), st.lists(FLOATS, max_size=2), st.dictionaries(TEXT, FLOATS, max_size=2)
)
COLUMNS = {
    "int": (st.integers(-(2**63), 2**63 - 1), np.int64),
    "float": (FLOATS, np.float64),
    "bool": (st.booleans(), np.bool_),
    "str": (TEXT, object),
    "object": (OBJECTS, object),
}
STAMPS = st.integers(-(10**17), 4 * 10**18)


@st.composite
def batches(draw: st.DrawFn) -> ColumnarBatch:
    n = draw(st.integers(0, 6))
    names = draw(st.lists(NAMES, unique=True, max_size=4))
    columns = {}
    for name in names:
        values, dtype = COLUMNS[draw(st.sampled_from(list(COLUMNS)))]
        drawn = draw(st.lists(values, min_size=n, max_size=n))
        column = np.empty(n, dtype=dtype)
        for i, v in enumerate(drawn):  # one by one: lists stay list objects
            column[i] = v
        columns[name] = column
    if draw(st.booleans()):
        stamps = np.array(draw(st.lists(STAMPS, min_size=n, max_size=n)), dtype=np.int64)
        return ColumnarBatch("Out", columns, timestamps=stamps)
    return ColumnarBatch("Out", columns, timestamp=draw(STAMPS))


def events_of(batch: ColumnarBatch) -> list[Event]:
    return [Event(batch.event_type, f, t) for f, t in batch.iter_rows()]


@settings(max_examples=300, deadline=None)
@given(batch=batches())
def test_batch_payloads_equal_dumps_sink(batch: ColumnarBatch) -> None:
    assert batch_payloads(batch) == [dumps_sink(e) for e in events_of(batch)]


def sample() -> ColumnarBatch:
    names = np.empty(5, dtype=object)
    names[:] = ["a", "é\n", 'q"', "d", "e"]
    return ColumnarBatch(
        "Hot",
        {"sensor": names, "t": np.array([1.5, math.nan, 3.0, -0.0, 1e300]),
         "n": np.arange(5, dtype=np.int64)},
        timestamps=np.arange(5, dtype=np.int64) * 1_250_000_000,
    )  # fmt: skip


def test_file_sink_writes_the_same_bytes(tmp_path: Path) -> None:
    per_event = FileSink(ConnectorConfig("F", "file", {"path": str(tmp_path / "a.jsonl")}))
    columnar = FileSink(ConnectorConfig("F", "file", {"path": str(tmp_path / "b.jsonl")}))
    per_event.send(events_of(sample()))
    columnar.send_batch(sample())
    per_event.close()
    columnar.close()
    assert (tmp_path / "b.jsonl").read_bytes() == (tmp_path / "a.jsonl").read_bytes()
    assert columnar.sent == per_event.sent == 5


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def held(sink: MqttSink) -> list[tuple[bytes, int]]:
    with sink._lock:  # noqa: SLF001 - what the sink holds while disconnected
        return list(sink._buffer)  # noqa: SLF001


def test_mqtt_sink_batch_messages_equal_per_event_messages() -> None:
    for size in (1, 2, 10):
        params: dict[str, Any] = {
            "host": "127.0.0.1",
            "port": closed_port(),
            "batch_size": size,
            "flush_timeout": 0.1,
        }
        one = MqttSink(ConnectorConfig("M", "mqtt", params))
        two = MqttSink(ConnectorConfig("M", "mqtt", params))
        try:
            one.send(events_of(sample()))
            two.send_batch(sample())
            assert held(two) == held(one)
            assert len(held(one)) == -(-5 // size)
            assert two.queued_while_disconnected == one.queued_while_disconnected == 5
        finally:
            one.close()
            two.close()
