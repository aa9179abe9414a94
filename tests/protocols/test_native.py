"""protocols.native: {"rows": ...} / {"columns", "data"} ⇄ Frame and the native response."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from pointsman.errors import BadRequest, InvalidInput
from pointsman.protocols import native
from pointsman.protocols.json import dumps
from pointsman.types import Fallback, Signature

from .samples import CUSTOMER_ROWS, assert_customer_frame, prediction


def body(obj: object) -> bytes:
    return orjson.dumps(obj)


@pytest.mark.parametrize(
    "payload",
    [
        {"rows": CUSTOMER_ROWS},
        {"rows": [dict(reversed(r.items())) for r in CUSTOMER_ROWS]},
        {
            "columns": ["age", "income", "plan", "active"],
            "data": [list(r.values()) for r in CUSTOMER_ROWS],
        },
        {
            "columns": ["active", "plan", "income", "age"],
            "data": [list(reversed(r.values())) for r in CUSTOMER_ROWS],
        },
        {"rows": CUSTOMER_ROWS, "request_note": "unknown keys are ignored"},
    ],
)
def test_every_accepted_shape_gives_the_same_frame(payload: object, customer: Signature) -> None:
    assert_customer_frame(native.decode(body(payload), customer))


def test_integral_floats_are_accepted_for_a_long_column(customer: Signature) -> None:
    rows = [dict(CUSTOMER_ROWS[0], age=30.0), CUSTOMER_ROWS[1]]
    assert_customer_frame(native.decode(body({"rows": rows}), customer))


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ([CUSTOMER_ROWS[0]], "Body must be a JSON object, got a array"),
        ({}, "Body has no rows (keys: none)"),
        ({"row": CUSTOMER_ROWS}, "Body has no rows (keys: 'row')"),
        ({"columns": ["age"]}, '{"columns": [name, ...], "data": [[value, ...], ...]}'),
        ({"rows": []}, '"rows" is empty; send at least one row'),
        ({"rows": {"age": 3}}, '"rows" must be a list of objects, got a object'),
        ({"rows": [1, 2]}, "Row 0 must be an object of column: value, got integer"),
        ({"rows": CUSTOMER_ROWS, "columns": ["age"]}, 'either "rows" or "columns" + "data"'),
        ({"columns": ["age"], "data": []}, '"data" is empty'),
        ({"columns": ["age"], "data": {"age": 1}}, '"data" must be a list of rows'),
        ({"columns": "age", "data": [[1]]}, '"columns" must be a list of column-name strings'),
        ({"columns": ["age", 2], "data": [[1, 2]]}, "list of column-name strings"),
        ({"columns": ["age", "age"], "data": [[1, 2]]}, "repeats column(s) age"),
        ({"columns": ["age", "plan"], "data": [[1, "a"], [2]]}, '"data"[1] must be a list of 2'),
        ({"columns": ["age", "plan"], "data": [[1, "a"], 7]}, "got a integer"),
    ],
)
def test_wrong_shapes_are_bad_requests_naming_what_to_send(
    payload: object, expected: str, customer: Signature
) -> None:
    with pytest.raises(BadRequest) as caught:
        native.decode(body(payload), customer)
    assert expected in caught.value.message


def test_bad_json_is_a_bad_request_with_its_position(customer: Signature) -> None:
    with pytest.raises(BadRequest, match=r"line 1 column 11 \(char 10\).*\{\"rows\""):
        native.decode(b'{"rows": [}', customer)


@pytest.mark.parametrize(
    ("change", "field", "problem"),
    [
        ({"age": "thirty"}, "age", "wrong type string"),
        ({"income": "lots"}, "income", "wrong type string"),
        ({"plan": [3]}, "plan", "wrong type array"),
        ({"active": "yes"}, "active", "wrong type string"),
        ({"age": None}, "age", "null is not allowed"),
        ({"extra": 1}, "extra", "unexpected column"),
    ],
)
def test_mistyped_values_are_invalid_input_naming_the_field(
    change: dict[str, object], field: str, problem: str, customer: Signature
) -> None:
    rows = [CUSTOMER_ROWS[0], {**CUSTOMER_ROWS[1], **change}]
    with pytest.raises(InvalidInput) as caught:
        native.decode(body({"rows": rows}), customer)
    [found] = caught.value.problems
    assert (found.field, found.row) == (field, 1)
    assert problem in found.problem


def test_missing_columns_in_the_table_form_are_named(customer: Signature) -> None:
    with pytest.raises(InvalidInput) as caught:
        native.decode(body({"columns": ["age", "plan"], "data": [[1, "a"]]}), customer)
    assert sorted(p.field for p in caught.value.problems) == ["active", "income"]


def test_encode_gives_labels_probabilities_and_where_they_came_from() -> None:
    pred = prediction(np.array(["churn", "stay"]), np.array([[0.9, 0.1], [0.25, 0.75]]))
    pred.findings = [{"row": 0, "feature": "income", "rule": "out_of_range"}]
    pred.fallback = Fallback(4, "timeout", "timed out after 200 ms")
    assert native.encode(pred) == {
        "predictions": ["churn", "stay"],
        "probabilities": [{"churn": 0.9, "stay": 0.1}, {"churn": 0.25, "stay": 0.75}],
        "model": "churn",
        "version": 3,
        "request_id": "req-1",
        "warnings": [{"row": 0, "feature": "income", "rule": "out_of_range"}],
        "fallback": {"from_version": 4, "reason": "timeout", "detail": "timed out after 200 ms"},
    }


def test_encode_leaves_out_probabilities_when_the_model_has_none() -> None:
    encoded = native.encode(prediction([np.float64(1.5), np.float64(np.nan), np.int64(2)]))
    assert encoded == {
        "predictions": [1.5, None, 2],
        "model": "churn",
        "version": 3,
        "request_id": "req-1",
    }
    assert orjson.loads(dumps(encoded))["predictions"] == [1.5, None, 2]
