"""Sample rows, frame checks and predictions shared by the protocol tests."""

from __future__ import annotations

from typing import Any

import numpy as np

from pointsman.types import Frame, Outputs, Prediction

IRIS_COLUMNS = ("sepal_length", "sepal_width", "petal_length", "petal_width")


CUSTOMER_ROWS: list[dict[str, Any]] = [
    {"age": 30, "income": 1000.5, "plan": "basic", "active": True},
    {"age": 41, "income": 2000.0, "plan": "pro", "active": False},
]
IRIS_ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]


def assert_customer_frame(frame: Frame) -> None:
    """The frame holds CUSTOMER_ROWS with the signature's dtypes."""
    assert frame.n_rows == 2
    assert frame.to_records() == CUSTOMER_ROWS
    assert frame.columns["age"].dtype == np.int64
    assert frame.columns["income"].dtype == np.float64
    assert frame.columns["plan"].dtype == object
    assert frame.columns["active"].dtype == np.bool_


def assert_iris_frame(frame: Frame) -> None:
    """The frame holds IRIS_ROWS (to float32 precision) as float64 columns."""
    assert frame.n_rows == 2
    table = np.column_stack([frame.columns[n] for n in IRIS_COLUMNS])
    assert table.dtype == np.float64
    np.testing.assert_allclose(table, np.array(IRIS_ROWS), rtol=1e-6)


def prediction(
    labels: list[object] | np.ndarray, probabilities: np.ndarray | None = None
) -> Prediction:
    """A Prediction for model churn v3 with the given labels (and probabilities)."""
    classes = ["churn", "stay"] if probabilities is not None else None
    outputs = Outputs(predictions=list(labels), probabilities=probabilities, classes=classes)
    return Prediction(model="churn", version=3, request_id="req-1", outputs=outputs)
