"""protocols.v1: KServe V1 / TF Serving {"instances"} and {"inputs"} ⇄ Frame and responses."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import orjson
import pytest

from pointsman.errors import BadRequest, InvalidInput
from pointsman.protocols import v1
from pointsman.types import ColumnSpec, Signature

from .samples import (
    CUSTOMER_ROWS,
    IRIS_COLUMNS,
    IRIS_ROWS,
    assert_customer_frame,
    assert_iris_frame,
    prediction,
)

CUSTOMER_LISTS = [list(r.values()) for r in CUSTOMER_ROWS]
CUSTOMER_COLUMNS = {name: [r[name] for r in CUSTOMER_ROWS] for name in CUSTOMER_ROWS[0]}


def decode(payload: Any, signature: Signature) -> tuple[Any, str]:
    return v1.decode(orjson.dumps(payload), signature)


@pytest.mark.parametrize(
    ("payload", "style"),
    [
        ({"instances": CUSTOMER_ROWS}, "instances"),
        ({"instances": CUSTOMER_LISTS}, "instances"),
        ({"signature_name": "serving_default", "instances": CUSTOMER_ROWS}, "instances"),
        ({"inputs": CUSTOMER_COLUMNS}, "inputs"),
        ({"inputs": {k: [[v] for v in vs] for k, vs in CUSTOMER_COLUMNS.items()}}, "inputs"),
        ({"inputs": CUSTOMER_LISTS}, "inputs"),
        ({"inputs": {"input_1": CUSTOMER_LISTS}}, "inputs"),
    ],
)
def test_every_accepted_shape_gives_the_same_frame(
    payload: Any, style: str, customer: Signature
) -> None:
    frame, got_style = decode(payload, customer)
    assert_customer_frame(frame)
    assert got_style == style


@pytest.mark.parametrize(
    "payload",
    [
        {"instances": IRIS_ROWS},
        {"inputs": IRIS_ROWS},
        {"inputs": dict(zip(IRIS_COLUMNS, zip(*IRIS_ROWS, strict=True), strict=True))},
    ],
)
def test_iris_tables(payload: Any, iris: Signature) -> None:
    assert_iris_frame(decode(payload, iris)[0])


@pytest.mark.parametrize("key", ["instances", "inputs"])
def test_a_single_column_model_takes_plain_scalars(key: str) -> None:
    signature = Signature(inputs=(ColumnSpec("x", "double"),))
    frame, _ = decode({key: [1.5, 2]}, signature)
    assert frame.columns["x"].tolist() == [1.5, 2.0]


def test_nan_and_infinity_tokens_are_accepted() -> None:
    signature = Signature(inputs=(ColumnSpec("x", "double"),))
    frame, _ = v1.decode(b'{"instances": [NaN, Infinity, -Infinity]}', signature)
    values = frame.columns["x"]
    assert math.isnan(values[0]) and values[1:].tolist() == [math.inf, -math.inf]


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ([1], "Body must be a JSON object, got a array"),
        ({}, 'exactly one of "instances" (rows) or "inputs" (columns); the body has neither'),
        ({"instances": [], "inputs": {}}, "the body has both"),
        ({"instances": {"age": [1]}}, '"instances" must be a list of rows, got a object'),
        ({"instances": []}, '"instances" is empty'),
        ({"instances": [[30, 1.5]]}, '"instances"[0] must be a list of 4 values in the order age'),
        ({"instances": [CUSTOMER_LISTS[0], CUSTOMER_ROWS[1]]}, "got a object"),
        ({"instances": [CUSTOMER_ROWS[0], CUSTOMER_LISTS[1]]}, "Row 1 must be an object"),
        ({"instances": [30, 41]}, '"instances"[0] is a integer, but this model takes 4 columns'),
        ({"inputs": "age"}, '"inputs" must be an object {column: [values]} or a list of rows'),
        ({"inputs": {}}, '"inputs" is empty'),
        ({"inputs": []}, '"inputs" is empty'),
        ({"inputs": {"age": 30}}, """"inputs"['age'] must be a list with one value per row"""),
        ({"inputs": {"age": [], "plan": []}}, '"inputs" is empty'),
        (
            {"inputs": {**CUSTOMER_COLUMNS, "age": [30]}},
            "Column 'income' has 2 values but the batch",
        ),
        ({"inputs": {"input_1": [[1, 2]]}}, '"inputs.input_1"[0] must be a list of 4 values'),
    ],
)
def test_wrong_shapes_are_bad_requests(payload: Any, expected: str, customer: Signature) -> None:
    with pytest.raises(BadRequest) as caught:
        decode(payload, customer)
    assert expected in caught.value.message


def test_bad_json_is_a_bad_request_with_its_position(customer: Signature) -> None:
    with pytest.raises(BadRequest, match=r"line 1 column \d+ \(char \d+\).*instances"):
        v1.decode(b'{"instances": [1, 2', customer)


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"instances": [CUSTOMER_LISTS[0], [30, 1.5, "pro", "yes"]]}, "active"),
        ({"instances": [{**CUSTOMER_ROWS[0], "age": "x"}]}, "age"),
        ({"instances": [{"age": 30}]}, "income"),
        ({"inputs": {**CUSTOMER_COLUMNS, "plan": [{"a": 1}, {"b": 2}]}}, "plan"),
        ({"inputs": {**CUSTOMER_COLUMNS, "extra": [1, 2]}}, "extra"),
    ],
)
def test_mistyped_values_are_invalid_input_naming_the_field(
    payload: Any, field: str, customer: Signature
) -> None:
    with pytest.raises(InvalidInput) as caught:
        decode(payload, customer)
    assert field in {p.field for p in caught.value.problems}


@pytest.mark.parametrize(
    ("style", "expected"),
    [("instances", {"predictions": ["churn", "stay"]}), ("inputs", {"outputs": ["churn", "stay"]})],
)
def test_encode_answers_in_the_style_of_the_request(style: v1.Style, expected: Any) -> None:
    pred = prediction(np.array(["churn", "stay"]), np.array([[0.9, 0.1], [0.3, 0.7]]))
    assert v1.encode(pred, style) == expected
