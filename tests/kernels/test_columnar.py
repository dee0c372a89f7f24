"""ColumnarBatch: rows in, rows out, types kept, refusals where a column cannot hold them."""

from __future__ import annotations

import numpy as np
import pytest

from kernels.columnar import ColumnarBatch, column_from_values


def test_rows_round_trip_keep_types_and_order() -> None:
    rows = [{"x": 1, "t": 1.5, "ok": True, "s": "a"}, {"x": -2, "t": 2.0, "ok": False, "s": "b"}]
    batch = ColumnarBatch.from_rows("R", rows, timestamps=[10, 20])
    assert batch is not None
    assert len(batch) == 2 and batch.fields == ["x", "t", "ok", "s"]
    assert batch.columns["x"].dtype == np.int64 and batch.columns["ok"].dtype == np.bool_
    out = batch.to_dicts()
    assert out == rows
    assert [type(v) for v in out[0].values()] == [int, float, bool, str]
    assert list(batch.iter_rows()) == [(rows[0], 10), (rows[1], 20)]


@pytest.mark.parametrize(
    "values",
    [[1, 2.0], [1, None], [None, None], [2**70], [[1], [2]], [True, 1]],
    ids=["int-float", "int-none", "none", "bigint", "lists", "bool-int"],
)
def test_values_without_one_scalar_type_have_no_column(values: list) -> None:
    assert column_from_values(values) is None


def test_rows_with_different_keys_or_key_order_are_refused() -> None:
    assert ColumnarBatch.from_rows("R", [{"a": 1}, {"b": 1}]) is None
    assert ColumnarBatch.from_rows("R", [{"a": 1, "b": 2}, {"b": 2, "a": 1}]) is None
    assert ColumnarBatch.from_rows("R", []) is None


def test_take_concat_and_shared_timestamp() -> None:
    batch = ColumnarBatch("P", {"v": np.arange(5)}, timestamp=7)
    assert batch.row_timestamps().tolist() == [7] * 5
    picked = batch.take(np.array([True, False, True, False, True]))
    assert picked.to_dicts() == [{"v": 0}, {"v": 2}, {"v": 4}]
    both = ColumnarBatch.concat([picked, ColumnarBatch("P", {"v": np.arange(2)}, timestamp=9)])
    assert [r for r, _ in both.iter_rows()] == [{"v": 0}, {"v": 2}, {"v": 4}, {"v": 0}, {"v": 1}]
    assert both.row_timestamps().tolist() == [7, 7, 7, 9, 9]


def test_unequal_columns_are_an_error() -> None:
    with pytest.raises(ValueError, match="unequal"):
        ColumnarBatch("P", {"a": np.arange(2), "b": np.arange(3)})
