"""varpulis.wire: the REST JSON codec (orjson, the json module where orjson refuses)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from varpulis.wire import dumps, loads


def test_compact_utf8_and_key_order() -> None:
    assert (
        dumps({"b": 1, "a": [1.5, "é", None, True]}) == '{"b":1,"a":[1.5,"é",null,true]}'.encode()
    )


def test_reads_as_the_original_server_does() -> None:
    assert loads(b'{"a": 18446744073709551615, "b": -9223372036854775808}') == {
        "a": 18446744073709551615,
        "b": -9223372036854775808,
    }
    beyond = loads(b"[123456789012345678901234567890]")[0]
    assert isinstance(beyond, float) and beyond == 1.2345678901234568e29
    assert math.isnan(loads(b"[NaN]")[0]) and loads(b"[-Infinity, 1e400]") == [-math.inf, math.inf]
    assert loads(b'"\\ud800"') == "\ud800"
    assert loads('{"a":1,"a":2}') == {"a": 2}


def test_writes_what_orjson_refuses_through_the_json_module() -> None:
    assert dumps({"n": 2**70}) == b'{"n":1180591620717411303424}'
    assert dumps({1: "x"}) == b'{"1":"x"}'
    assert dumps({"x": np.float64(1.5)}) == b'{"x":1.5}'
    assert json.loads(dumps({"s": "\ud800"})) == {"s": "\ud800"}  # valid JSON, escaped
    assert dumps([math.nan, math.inf]) == b"[null,null]"


def test_invalid_text_gets_line_and_column() -> None:
    with pytest.raises(ValueError, match=r"line 2 column 5"):
        loads(b'{"a":\n    oops}')
    with pytest.raises(ValueError):
        loads(b"\xff\xfe")


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.text()
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)  # fmt: skip


@given(JSONISH)
def test_round_trips_as_the_json_module(value: object) -> None:
    assert loads(dumps(value)) == json.loads(json.dumps(value)) == value
    assert json.loads(dumps(value)) == value
