"""Message ⇄ frames: layout, round trips, zero copy, and rejection of bad input."""

from __future__ import annotations

import json

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from transports import CodecError, Message
from transports.codec import VERSION, decode, encode

PIXELS = [
    ("Pixel", {"x": i, "y": 2 * i, "iterations": 256 - i, "diverged": i % 2 == 0}, 10**18 + i)
    for i in range(5)
]


def round_trip(message: Message) -> Message:
    # bytes(...) simulates the wire: the receiver never sees the sender's objects.
    return decode([bytes(frame) for frame in encode(message)])


# ----------------------------------------------------------------------- layout


def test_control_message_is_one_json_header_frame():
    frames = encode(Message.control("barrier", {"id": 7, "source": "t00"}))
    assert len(frames) == 1
    assert json.loads(frames[0]) == {
        "v": VERSION,
        "kind": "barrier",
        "meta": {"id": 7, "source": "t00"},
    }


def test_row_batch_is_header_plus_one_json_array():
    header, payload = encode(Message.rows(PIXELS, {"event_type": "Pixel"}))
    assert json.loads(header) == {"v": VERSION, "kind": "rows", "meta": {"event_type": "Pixel"}}
    assert json.loads(payload) == [list(row) for row in PIXELS]


def test_columnar_batch_describes_each_column_in_the_header():
    x = np.arange(6, dtype=np.int32).reshape(2, 3)
    frames = encode(Message.columns({"x": x, "ok": np.array([True, False])}, {"count": 2}))
    header = json.loads(frames[0])
    assert header["cols"] == [["x", "<i4", [2, 3]], ["ok", "|b1", [2]]]
    assert header["meta"] == {"count": 2}
    assert [memoryview(f).nbytes for f in frames[1:]] == [24, 2]


def test_contiguous_arrays_are_framed_without_copying():
    x = np.arange(100_000, dtype=np.float64)
    (frame,) = encode(Message.columns({"x": x}))[1:]
    assert np.shares_memory(np.frombuffer(frame, dtype=np.float64), x)


def test_non_contiguous_arrays_are_copied_once_and_still_round_trip():
    x = np.arange(20.0).reshape(4, 5)[:, ::2]
    got = round_trip(Message.columns({"x": x})).body["x"]
    np.testing.assert_array_equal(got, x)


# ------------------------------------------------------------------- round trips


def test_rows_come_back_as_tuples_with_json_types():
    rows = [("E", {"s": "é", "n": None, "l": [1, 2.5], "t": (1, 2)}, 1)]
    (got,) = round_trip(Message.rows(rows)).body
    assert isinstance(got, tuple)
    assert got == ("E", {"s": "é", "n": None, "l": [1, 2.5], "t": [1, 2]}, 1)


@pytest.mark.parametrize(
    "array",
    [
        np.arange(5, dtype=np.int64),
        np.linspace(0, 1, 7, dtype=np.float32),
        np.array([True, False, True]),
        np.array(["ab", "", "xyz"]),
        np.array([b"ab", b"c"]),
        np.array(["2024-01-01T00:00:00", "NaT"], dtype="datetime64[ns]"),
        np.arange(6, dtype=">u2").reshape(3, 2),
        np.array(3.5),
        np.zeros((0, 4)),
    ],
    ids=lambda a: f"{a.dtype.str}{list(a.shape)}",
)
def test_columns_keep_values_dtype_and_shape(array):
    got = round_trip(Message.columns({"c": array})).body["c"]
    assert got.dtype == array.dtype
    assert got.shape == array.shape
    np.testing.assert_array_equal(got, array)


def test_received_arrays_are_read_only():
    got = round_trip(Message.columns({"c": np.arange(3)})).body["c"]
    with pytest.raises(ValueError, match="read-only"):
        got[0] = 1


json_scalars = st.none() | st.booleans() | st.integers() | st.text() | st.floats(allow_nan=False)
fields = st.dictionaries(st.text(), json_scalars, max_size=5)
rows = st.lists(st.tuples(st.text(min_size=1), fields, st.integers(min_value=0)), max_size=20)


@settings(max_examples=50, deadline=None)
@given(rows, st.dictionaries(st.text(), json_scalars, max_size=3))
def test_any_json_row_batch_round_trips(batch, meta):
    got = round_trip(Message.rows(batch, meta))
    assert (got.kind, got.meta, got.body) == ("rows", meta, batch)


plain_dtypes = hnp.integer_dtypes() | hnp.floating_dtypes() | hnp.boolean_dtypes()


@settings(max_examples=50, deadline=None)
@given(hnp.arrays(plain_dtypes, hnp.array_shapes(min_dims=0, max_dims=3, min_side=0)))
def test_any_plain_array_round_trips(array):
    got = round_trip(Message.columns({"a": array})).body["a"]
    assert got.dtype == array.dtype
    np.testing.assert_array_equal(got, array)


# ------------------------------------------------------------------ bad messages


@pytest.mark.parametrize(
    ("message", "match"),
    [
        (Message.rows([("E", {"b": b"raw"}, 1)]), "cannot encode message rows"),
        (Message.control("stop", {"when": object()}), "cannot encode message meta"),
        (Message.columns({"o": np.array([{}, 1], dtype=object)}), "'o' has dtype '|O'"),
        (Message.columns({"s": np.zeros(2, dtype="i4,f8")}), "only fixed-size plain dtypes"),
        (Message.columns({"m": np.ma.masked_array([1, 2])}), "plain numpy.ndarray"),
        (Message.columns({"l": [1, 2]}), "plain numpy.ndarray, not list"),
        (Message.columns({1: np.arange(2)}), "column names must be strings"),
        (Message("rows", {}, None), "needs a list of rows"),
        (Message("columns", {}, [1]), "needs a dict of arrays"),
        (Message("stop", {}, [1]), "body must be None"),
        (Message("", {}, None), "non-empty string"),
        (Message("stop", [1], None), "meta must be a dict"),
    ],
)
def test_encode_rejects_with_a_named_reason(message, match):
    with pytest.raises(CodecError, match=match):
        encode(message)


def header(**fields) -> bytes:
    return json.dumps({"v": VERSION, "kind": "columns", "meta": {}, **fields}).encode()


@pytest.mark.parametrize(
    ("frames", "match"),
    [
        ([], "empty list of frames"),
        ([b"{not json"], "header frame is not valid JSON"),
        ([b'{"v": 99, "kind": "stop", "meta": {}}'], "version 1 header"),
        ([b'{"v": 1, "kind": "stop"}'], "'meta' object"),
        ([b'{"v": 1, "kind": "stop", "meta": {}}', b"extra"], "has 1 frame"),
        ([b'{"v": 1, "kind": "rows", "meta": {}}', b'{"a": 1}'], "JSON array"),
        ([b'{"v": 1, "kind": "rows", "meta": {}}', b"[1, 2]"], "every row must be"),
        ([header(cols=[["x", "|O", [1]]]), b"\0" * 8], "only fixed-size plain dtypes"),
        ([header(cols=[["x", "<f8", [2]]]), b"\0" * 8], "needs 16 bytes"),
        ([header(cols=[["x", "nonsense", [2]]]), b""], "bad column descriptor"),
        ([header(cols=[["x", "<f8", [-1]]]), b""], "bad column descriptor"),
        ([header(cols=[["x", "<f8"]]), b""], "bad column descriptor"),
        ([header(cols="x")], "'cols' list"),
    ],
)
def test_decode_rejects_malformed_frames(frames, match):
    with pytest.raises(CodecError, match=match):
        decode(frames)


def test_control_kinds_cannot_impersonate_batches():
    with pytest.raises(ValueError, match="other than .'rows', 'columns'.*not 'rows'"):
        Message.control("rows")
