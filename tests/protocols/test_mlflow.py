"""protocols.mlflow: /invocations bodies (JSON and CSV), content types and MLflow's errors."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import pytest

from pointsman.errors import (
    BadRequest,
    FieldProblem,
    InvalidInput,
    ModelFailed,
    ModelNotFound,
    NotDeployed,
    PayloadTooLarge,
    PointsmanError,
    UnsupportedMediaType,
)
from pointsman.protocols import mlflow
from pointsman.types import ColumnSpec, Signature

from .samples import CUSTOMER_ROWS, IRIS_ROWS, assert_customer_frame, assert_iris_frame, prediction

JSON = "application/json"
NAMES = list(CUSTOMER_ROWS[0])
LISTS = [list(r.values()) for r in CUSTOMER_ROWS]


def decode(payload: Any, signature: Signature, content_type: str = JSON) -> Any:
    return mlflow.decode(orjson.dumps(payload), content_type, signature)


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "application/json; charset=utf-8",
        "Application/JSON;charset=UTF-8",
        'application/json; charset="utf-8"',
    ],
)
def test_json_content_types_that_mlflow_accepts(content_type: str, customer: Signature) -> None:
    assert_customer_frame(decode({"dataframe_records": CUSTOMER_ROWS}, customer, content_type))


@pytest.mark.parametrize(
    ("content_type", "expected"),
    [
        (None, "Content-Type is missing"),
        ("", "Content-Type is missing"),
        ("application/json; format=pandas-split", "Unrecognized content type parameters: format"),
        ("application/json; format=pandas-records", "since MLflow 2.0 the format goes in"),
        ("application/json; charset=latin-1", "only supports UTF-8, got charset=latin-1"),
        ("text/plain", "supports the following content types: application/json, text/csv"),
        ("application/octet-stream", "Got 'application/octet-stream'"),
    ],
)
def test_other_content_types_are_unsupported_media_types(
    content_type: str | None, expected: str, customer: Signature
) -> None:
    body = orjson.dumps({"dataframe_records": CUSTOMER_ROWS})
    with pytest.raises(UnsupportedMediaType) as caught:
        mlflow.decode(body, content_type, customer)
    assert expected in caught.value.message
    assert caught.value.status == 415


@pytest.mark.parametrize(
    "payload",
    [
        {"dataframe_split": {"columns": NAMES, "data": LISTS}},
        {"dataframe_split": {"columns": NAMES, "data": LISTS, "index": [0, 1]}},
        {"dataframe_split": {"data": LISTS}},
        {"dataframe_records": CUSTOMER_ROWS},
        {"instances": CUSTOMER_ROWS},
        {"instances": LISTS},
        {"inputs": {n: [r[n] for r in CUSTOMER_ROWS] for n in NAMES}},
        {"inputs": LISTS},
        {"dataframe_records": CUSTOMER_ROWS, "params": {"threshold": 0.5}},
    ],
)
def test_every_json_key_form_gives_the_same_frame(payload: Any, customer: Signature) -> None:
    assert_customer_frame(decode(payload, customer))


def test_what_mlflows_own_client_sends_for_a_numpy_array(iris: Signature) -> None:
    # ScoringServerClient.invoke(ndarray) → {"inputs": array.tolist()}
    assert_iris_frame(decode({"inputs": np.array(IRIS_ROWS).tolist()}, iris))


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"[1, 2]", "exactly one of the input fields {'dataframe_split', 'dataframe_records', "),
        (b"[1, 2]", "Received a list."),
        (b"3", "Received unexpected input type 'int'."),
        (b"{}", "Received dictionary with input fields: []."),
        (b'{"data": [[1]]}', "Received dictionary with input fields: ['data']."),
        (
            b'{"inputs": [[1]], "instances": [[1]]}',
            "Received dictionary with input fields: ['inputs', 'instances'].",
        ),
        (b'{"dataframe_split": [[1]]}', "Dataframe split format must be a dictionary. Got list."),
        (
            b'{"dataframe_records": {"age": [1]}}',
            "Dataframe records format must be a list of records. Got dictionary.",
        ),
        (
            b'{"dataframe_split": {"columns": ["age", "plan"], "data": [[1, "a"], [2]]}}',
            "Provided dataframe_split field is not a valid dataframe representation: "
            "dataframe_split.data[1] must be a list of 2 values",
        ),
        (
            b'{"dataframe_split": {"columns": ["age"], "data": [[1]], "index": [0, 1]}}',
            "not a valid dataframe representation",
        ),
        (b'{"dataframe_split": {"columns": ["age"]}}', "not a valid dataframe representation"),
        (b'{"dataframe_split": {"columns": ["age"], "data": []}}', "dataframe_split.data is empty"),
        (b'{"dataframe_records": []}', "dataframe_records is empty"),
        (b'{"dataframe_split": {"columns": [1], "data": [[1]]}}', "list of column-name strings"),
        (
            b'{"dataframe_records": [{"age": 1]}',
            "Failed to parse input from JSON. Ensure that input is a valid JSON formatted string.",
        ),
        (b'{"dataframe_records": [{"age": 1]}', "at line 1 column 33 (char 32)"),
    ],
)
def test_wrong_shapes_use_mlflows_wording(body: bytes, expected: str, customer: Signature) -> None:
    with pytest.raises(BadRequest) as caught:
        mlflow.decode(body, JSON, customer)
    assert expected in caught.value.message


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"dataframe_records": [{**CUSTOMER_ROWS[0], "age": "old"}]}, "age"),
        ({"dataframe_split": {"columns": ["age"], "data": [[1]]}}, "plan"),
        ({"instances": [{**CUSTOMER_ROWS[0], "active": 2}]}, "active"),
    ],
)
def test_mistyped_values_are_invalid_input(payload: Any, field: str, customer: Signature) -> None:
    with pytest.raises(InvalidInput) as caught:
        decode(payload, customer)
    assert field in {p.field for p in caught.value.problems}


def csv(text: str, signature: Signature, content_type: str = "text/csv") -> Any:
    return mlflow.decode(text.encode(), content_type, signature)


def test_csv_as_pandas_writes_it(customer: Signature) -> None:
    text = "age,income,plan,active\n30,1000.5,basic,True\n41,2000.0,pro,False\n"
    assert_customer_frame(csv(text, customer))
    assert_customer_frame(
        csv(text.replace("income,plan", "income,plan"), customer, "text/csv; charset=utf-8")
    )


def test_csv_columns_may_come_in_any_order(customer: Signature) -> None:
    text = "plan,active,age,income\nbasic,true,30,1000.5\npro,false,41,2000\n"
    assert_customer_frame(csv(text, customer))


def test_csv_string_columns_keep_their_text() -> None:
    signature = Signature(inputs=(ColumnSpec("zip", "string"), ColumnSpec("n", "long")))
    frame = csv("zip,n\n007,1\n10115,2\n", signature)
    assert frame.columns["zip"].tolist() == ["007", "10115"]
    assert frame.columns["n"].tolist() == [1, 2]


def test_csv_missing_cells_are_nulls() -> None:
    signature = Signature(
        inputs=(ColumnSpec("x", "double", nullable=True), ColumnSpec("s", "string", nullable=True))
    )
    frame = csv("x,s\n1.5,a\n,\n", signature)
    assert np.isnan(frame.columns["x"][1]) and frame.columns["s"].tolist() == ["a", None]


@pytest.mark.parametrize(
    ("text", "field", "problem"),
    [
        (
            "age,income,plan,active\n30,1.5,basic,True\n,2.5,pro,False\n",
            "age",
            "null is not allowed",
        ),
        ("age,income,plan,active\nold,1.5,basic,True\n", "age", "wrong type string"),
        ("age,income,plan,active\n30,1.5,basic,maybe\n", "active", "wrong type string"),
        ("age,income,plan\n30,1.5,basic\n", "active", "missing"),
    ],
)
def test_csv_values_that_miss_the_signature_are_invalid_input(
    text: str, field: str, problem: str, customer: Signature
) -> None:
    with pytest.raises(InvalidInput) as caught:
        csv(text, customer)
    assert [(p.field, p.problem) for p in caught.value.problems] == [(field, problem)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "The CSV body is empty"),
        ("\n\n", "The CSV body is empty"),
        ("age,income,plan,active\n", "The CSV body (below its header row) is empty"),
        ('age,plan\n1,"unterminated\n', "Failed to parse input as a CSV table"),
        ("age,plan\n1,a,b,c\n", "more fields than the header row (age, plan)"),
        ("age,plan\n1,a\n2,b,c\n", "Expected 2 fields in line 3, saw 3"),
    ],
)
def test_empty_or_broken_csv_is_a_bad_request(
    text: str, expected: str, customer: Signature
) -> None:
    with pytest.raises(BadRequest) as caught:
        csv(text, customer)
    assert expected in caught.value.message


def test_csv_that_is_not_utf8_is_a_bad_request(customer: Signature) -> None:
    with pytest.raises(BadRequest, match="Failed to parse input as a CSV table"):
        mlflow.decode(b"age,plan\n1,\xff\xfe\n", "text/csv", customer)


def test_encode_gives_only_the_labels() -> None:
    pred = prediction(np.array(["churn", "stay"]), np.array([[0.9, 0.1], [0.3, 0.7]]))
    assert mlflow.encode(pred) == {"predictions": ["churn", "stay"]}


@pytest.mark.parametrize(
    ("error", "status", "error_code"),
    [
        (BadRequest("bad body"), 400, "BAD_REQUEST"),
        (UnsupportedMediaType("no csv"), 415, "BAD_REQUEST"),
        (PayloadTooLarge(10, 5), 413, "BAD_REQUEST"),
        (
            InvalidInput([FieldProblem("age", "missing", expected="long")]),
            400,
            "INVALID_PARAMETER_VALUE",
        ),
        (ModelNotFound("churn", ["iris"]), 404, "RESOURCE_DOES_NOT_EXIST"),
        (NotDeployed("churn", ["1"]), 503, "TEMPORARILY_UNAVAILABLE"),
        (ModelFailed("churn", "1", "req-1", "ValueError"), 500, "INTERNAL_ERROR"),
    ],
)
def test_errors_in_mlflows_shape_keep_error_and_code(
    error: PointsmanError, status: int, error_code: str
) -> None:
    got_status, body = mlflow.to_mlflow_error(error)
    assert got_status == status
    assert body["error_code"] == error_code
    assert body["message"] == body["error"] == error.message
    assert body["code"] == error.code
    if isinstance(error, InvalidInput):
        assert body["fields"] == [{"field": "age", "problem": "missing", "expected": "long"}]
