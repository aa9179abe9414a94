"""A chunk's predictions go to Arrow from the model's array, typed as their Python values were."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from pointsman.batch.score import arrow_labels
from pointsman.batch.sinks import dictionary_columns
from pointsman.types import plain_list

LABELS = [
    np.array([0, 1, 1], dtype=np.int8),
    np.array([3, 70000], dtype=np.uint32),
    np.array([2**40, -1], dtype=np.int64),
    np.array([0.5, np.nan, 2.0], dtype=np.float32),
    np.array([True, False]),
    np.array(["yes", "no", "maybe"]),
    np.array(["yes", None, "no"], dtype=object),
    np.array([1, 2], dtype=object),
    np.array([1, "a"], dtype=object),  # mixed: read value by value, as a request's answers
    [1, 2, None],  # a runtime that answers a list
    [0, 1, 1],  # ONNX's predict: Python ints
    [2**40, -1],
    ["yes", "no"],
    [1, True],  # a bool is not an int here
    [1, 2.5],
    [1, np.int64(2)],
]


@pytest.mark.parametrize("labels", LABELS, ids=lambda v: str(getattr(v, "dtype", "list")))
def test_labels_convert_as_their_python_values_did(labels: object) -> None:
    try:
        before = pa.array(plain_list(labels))
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        with pytest.raises((pa.ArrowInvalid, pa.ArrowTypeError)):
            arrow_labels(labels)
        return
    assert arrow_labels(labels).equals(before)


def test_no_labels_keep_their_type() -> None:
    assert arrow_labels(np.array([], dtype=np.int64)).type == pa.int64()  # not a null column


def test_only_columns_of_few_values_are_dictionary_encoded() -> None:
    schema = pa.schema(
        [
            ("row", pa.int64()),
            ("customer_id", pa.string()),
            ("prediction", pa.int64()),
            ("p_yes", pa.float64()),
            ("version", pa.int64()),
            ("status", pa.string()),
        ]
    )
    assert dictionary_columns(schema) == ["customer_id", "prediction", "version", "status"]
