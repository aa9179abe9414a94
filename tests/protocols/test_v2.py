"""protocols.v2: Open Inference Protocol requests (JSON and binary) ⇄ Frame and responses."""

from __future__ import annotations

import struct
from typing import Any

import numpy as np
import orjson
import pytest

from pointsman.errors import BadRequest, InvalidInput
from pointsman.protocols import v2
from pointsman.protocols.json import dumps
from pointsman.types import Signature

from .samples import CUSTOMER_ROWS, IRIS_ROWS, assert_customer_frame, assert_iris_frame, prediction

AGES = [r["age"] for r in CUSTOMER_ROWS]
INCOMES = [r["income"] for r in CUSTOMER_ROWS]
PLANS = [r["plan"] for r in CUSTOMER_ROWS]
ACTIVES = [r["active"] for r in CUSTOMER_ROWS]


def tensor(name: str, datatype: str, shape: list[int], data: Any) -> dict[str, Any]:
    return {"name": name, "datatype": datatype, "shape": shape, "data": data}


def customer_inputs(shape_of: Any = lambda n: [n], nest: bool = False) -> list[dict[str, Any]]:
    columns: list[tuple[str, str, list[Any]]] = [
        ("age", "INT64", AGES),
        ("income", "FP64", INCOMES),
        ("plan", "BYTES", PLANS),
        ("active", "BOOL", ACTIVES),
    ]
    return [
        tensor(name, dt, shape_of(len(data)), [[v] for v in data] if nest else data)
        for name, dt, data in columns
    ]


def decode(payload: dict[str, Any], signature: Signature) -> v2.V2Request:
    return v2.decode(orjson.dumps(payload), None, signature)


def binary(name: str, datatype: str, shape: list[int], raw: bytes) -> tuple[dict[str, Any], bytes]:
    """A binary input's JSON part and its bytes."""
    head = {"name": name, "datatype": datatype, "shape": shape}
    return {**head, "parameters": {"binary_data_size": len(raw)}}, raw


def bytes_elements(values: list[str]) -> bytes:
    """BYTES on the wire: 4-byte little-endian length, then the UTF-8 bytes, per element."""
    return b"".join(struct.pack("<I", len(b)) + b for b in (v.encode() for v in values))


def binary_request(
    inputs: list[dict[str, Any] | tuple[dict[str, Any], bytes]], **extra: Any
) -> tuple[bytes, int]:
    """A request body with JSON header then the binary tensors; and the header length."""
    header = {"inputs": [i if isinstance(i, dict) else i[0] for i in inputs], **extra}
    head = orjson.dumps(header)
    return head + b"".join(i[1] for i in inputs if isinstance(i, tuple)), len(head)


# --- accepted shapes ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shape_of", "nest"),
    [(lambda n: [n], False), (lambda n: [n, 1], False), (lambda n: [n, 1], True)],
    ids=["[n] flat", "[n, 1] flat", "[n, 1] nested"],
)
def test_one_input_per_column(shape_of: Any, nest: bool, customer: Signature) -> None:
    request = decode({"inputs": customer_inputs(shape_of, nest)}, customer)
    assert_customer_frame(request.frame)
    assert (request.id, request.outputs, request.parameters) == (None, None, {})


def test_input_order_does_not_matter(customer: Signature) -> None:
    request = decode({"inputs": customer_inputs()[::-1]}, customer)
    assert_customer_frame(request.frame)


@pytest.mark.parametrize(
    ("name", "datatype", "data"),
    [
        ("input-0", "FP32", [v for row in IRIS_ROWS for v in row]),
        ("input-0", "FP64", IRIS_ROWS),
        ("sepal_length", "FP64", IRIS_ROWS),
    ],
    ids=["flat FP32", "nested FP64", "named like a column"],
)
def test_one_table_input_is_mapped_by_position(
    name: str, datatype: str, data: Any, iris: Signature
) -> None:
    request = decode({"inputs": [tensor(name, datatype, [2, 4], data)]}, iris)
    assert_iris_frame(request.frame)


def test_id_parameters_and_unknown_keys(customer: Signature) -> None:
    payload = {
        "id": "abc",
        "model_name": "churn",
        "parameters": {"binary_data_output": True, "custom": 1},
        "inputs": customer_inputs(),
        "outputs": [{"name": "probabilities", "parameters": {"binary_data": True}}],
    }
    request = decode(payload, customer)
    assert request.id == "abc"
    assert request.parameters == {"binary_data_output": True, "custom": 1}
    assert request.outputs == ["probabilities"]


def test_nullable_column_takes_json_null() -> None:
    from pointsman.types import ColumnSpec

    signature = Signature(inputs=(ColumnSpec("x", "double", nullable=True),))
    request = decode({"inputs": [tensor("x", "FP64", [2], [1.5, None])]}, signature)
    assert np.isnan(request.frame.columns["x"][1])


# --- binary tensor extension ---------------------------------------------------------------


def test_binary_fp32_table_round_trips(iris: Signature) -> None:
    table = np.array(IRIS_ROWS, dtype=np.float32)
    body, length = binary_request([binary("input-0", "FP32", [2, 4], table.tobytes())])
    request = v2.decode(body, length, iris)
    assert_iris_frame(request.frame)
    assert all(c.flags.writeable and c.flags.c_contiguous for c in request.frame.columns.values())


@pytest.mark.parametrize("datatype", ["FP16", "FP64", "BF16"])
def test_binary_float_widths(datatype: str, iris: Signature) -> None:
    table = np.array(IRIS_ROWS, dtype=np.float32)
    if datatype == "BF16":
        raw = (table.view(np.uint32) >> 16).astype("<u2").tobytes()
    else:
        raw = table.astype({"FP16": "<f2", "FP64": "<f8"}[datatype]).tobytes()
    body, length = binary_request([binary("input-0", datatype, [2, 4], raw)])
    frame = v2.decode(body, length, iris).frame
    got = np.column_stack(list(frame.columns.values()))
    np.testing.assert_allclose(got, IRIS_ROWS, rtol=1e-2)


def test_binary_inputs_of_every_column_type(customer: Signature) -> None:
    body, length = binary_request(
        [
            binary("age", "INT64", [2], np.array(AGES, dtype="<i8").tobytes()),
            binary("income", "FP64", [2], np.array(INCOMES, dtype="<f8").tobytes()),
            binary("plan", "BYTES", [2], bytes_elements(PLANS)),
            binary("active", "BOOL", [2], np.array(ACTIVES, dtype=np.bool_).tobytes()),
        ]
    )
    assert_customer_frame(v2.decode(body, length, customer).frame)


def test_mixed_json_and_binary_inputs(customer: Signature) -> None:
    json_inputs = customer_inputs()
    body, length = binary_request(
        [
            json_inputs[0],
            binary("income", "FP64", [2, 1], np.array(INCOMES, dtype="<f8").tobytes()),
            json_inputs[2],
            binary("active", "BOOL", [2], bytes([1, 0])),
        ]
    )
    assert_customer_frame(v2.decode(body, length, customer).frame)


def test_binary_bytes_may_hold_utf8_and_empty_strings() -> None:
    from pointsman.types import ColumnSpec

    signature = Signature(inputs=(ColumnSpec("text", "string"),))
    body, length = binary_request([binary("text", "BYTES", [3], bytes_elements(["é", "", "ok"]))])
    assert v2.decode(body, length, signature).frame.columns["text"].tolist() == ["é", "", "ok"]


def sized(name: str, datatype: str, shape: list[int], raw: bytes, size: Any) -> tuple[Any, bytes]:
    head = {"name": name, "datatype": datatype, "shape": shape}
    return {**head, "parameters": {"binary_data_size": size}}, raw


FOUR_FLOATS = np.zeros(4, dtype="<f4").tobytes()


@pytest.mark.parametrize(
    ("inputs", "expected"),
    [
        ([binary("input-0", "FP32", [1, 4], FOUR_FLOATS[:12])], "takes 4 x 4 = 16 bytes"),
        ([binary("input-0", "FP64", [1, 4], FOUR_FLOATS)], "takes 4 x 8 = 32 bytes"),
        ([sized("input-0", "FP32", [1, 4], FOUR_FLOATS, 32)], "only 16 bytes of binary data"),
        ([sized("input-0", "FP32", [1, 4], FOUR_FLOATS + b"xx", 16)], "2 bytes after the last"),
        ([sized("input-0", "FP32", [1, 4], FOUR_FLOATS, -1)], "non-negative integer, got -1"),
        ([sized("input-0", "FP32", [1, 4], FOUR_FLOATS, "16")], "non-negative integer"),
        ([binary("sepal_length", "BOOL", [2], bytes([0, 2]))], "bytes other than 0 and 1"),
    ],
)
def test_binary_size_mismatches_are_bad_requests(
    inputs: list[Any], expected: str, iris: Signature
) -> None:
    body, length = binary_request(inputs)
    with pytest.raises(BadRequest) as caught:
        v2.decode(body, length, iris)
    assert expected in caught.value.message


@pytest.mark.parametrize(
    ("raw", "shape", "expected"),
    [
        (bytes_elements(["ab"])[:-1], [1], "claims 2 bytes but only 1 remain"),
        (bytes_elements(["ab"]) + b"\x00", [1], "1 bytes are left over"),
        (bytes_elements(["ab"]), [2], "cannot hold even their 4-byte length prefixes"),
        (bytes_elements(["ab"]) + b"\x01\x00", [2], "its 4-byte length does not fit"),
    ],
)
def test_truncated_bytes_tensors_are_bad_requests(
    raw: bytes, shape: list[int], expected: str
) -> None:
    from pointsman.types import ColumnSpec

    signature = Signature(inputs=(ColumnSpec("text", "string"),))
    body, length = binary_request([binary("text", "BYTES", shape, raw)])
    with pytest.raises(BadRequest) as caught:
        v2.decode(body, length, signature)
    assert expected in caught.value.message


def test_binary_input_without_the_header_is_a_bad_request(iris: Signature) -> None:
    body, length = binary_request([binary("input-0", "FP32", [1, 4], FOUR_FLOATS)])
    with pytest.raises(BadRequest, match="no Inference-Header-Content-Length header"):
        v2.decode(body[:length], None, iris)
    with pytest.raises(BadRequest, match="give the JSON's length in the Inference-Header-Con"):
        v2.decode(body, None, iris)


@pytest.mark.parametrize(
    ("length", "expected"), [(0, "is not supported"), (10_000, "the body has only")]
)
def test_header_length_must_fit_the_body(length: int, expected: str, iris: Signature) -> None:
    body, _ = binary_request([binary("input-0", "FP32", [1, 4], FOUR_FLOATS)])
    with pytest.raises(BadRequest, match=expected):
        v2.decode(body, length, iris)


def test_data_and_binary_size_together_are_refused(iris: Signature) -> None:
    head, raw = binary("input-0", "FP32", [1, 4], FOUR_FLOATS)
    body, length = binary_request([({**head, "data": [0, 0, 0, 0]}, raw)])
    with pytest.raises(BadRequest, match='both "data" and binary_data_size'):
        v2.decode(body, length, iris)


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, None), ("120", 120), (" 7 ", 7), ("-1", "whole number"), ("x", "whole number")],
)
def test_parse_header_length(value: str | None, expected: int | str | None) -> None:
    if isinstance(expected, str):
        with pytest.raises(BadRequest, match=expected):
            v2.parse_header_length(value)
    else:
        assert v2.parse_header_length(value) == expected


# --- malformed requests ------------------------------------------------------------------


def iris_input(**change: Any) -> dict[str, Any]:
    return {"inputs": [{**tensor("input-0", "FP32", [1, 4], [1.0, 2.0, 3.0, 4.0]), **change}]}


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ([], "Body must be a JSON object, got a array"),
        ({}, '"inputs" must be a non-empty list'),
        ({"inputs": []}, '"inputs" must be a non-empty list'),
        ({"inputs": [1]}, "inputs[0] must be an object"),
        ({"inputs": [{"shape": [1], "datatype": "FP32", "data": [1]}]}, 'needs a "name"'),
        ({"id": 5, **iris_input()}, '"id" must be a string'),
        ({"parameters": [1], **iris_input()}, '"parameters" must be an object'),
        (iris_input(shape=[1, -4]), "list of non-negative integers, got [1, -4]"),
        (iris_input(shape=[1, 4.0]), "list of non-negative integers"),
        (iris_input(shape="1,4"), "list of non-negative integers"),
        (iris_input(shape=[1, 1, 4]), "send [n] per column or [n, columns]"),
        (iris_input(shape=[1, 2**62]), "has 4 data elements but shape [1, 4611686018427387904]"),
        (iris_input(shape=[2, 4]), "has 4 data elements but shape [2, 4] needs 8"),
        (iris_input(datatype="FLOAT32"), "datatype 'FLOAT32'; use one of BOOL, UINT8"),
        ({"inputs": [{"name": "x", "shape": [1], "datatype": "FP32"}]}, 'has no "data"'),
        (iris_input(data="1,2,3,4"), "data must be a list, got a string"),
        (iris_input(data=[[1.0, 2.0], [3.0, 4.0]]), "nested data does not match shape [1, 4]"),
        (iris_input(data=[1.0, 2.0, "3", 4.0]), "FP32 but data[2] is a string ('3')"),
        (iris_input(data=[1.0, 2.0, True, 4.0]), "data[2] is a boolean"),
        (iris_input(datatype="INT64", data=[1, 2, 3.5, 4]), "INT64 data must be integers"),
        (iris_input(datatype="INT8", data=[1, 2, 300, 4]), "300 is out of range for INT8"),
        (iris_input(datatype="UINT8", data=[1, 2, -3, 4]), "-3 is out of range for UINT8"),
        (iris_input(datatype="BOOL", data=[1, 0, 1, 0]), "BOOL data must be true/false"),
        (iris_input(datatype="BYTES", data=[1, 0, 1, 0]), "BYTES data must be strings"),
        (iris_input(shape=[1, 3], data=[1.0, 2.0, 3.0]), "shape [n, 4] in that column order"),
        (iris_input(shape=[0, 4], data=[]), '"inputs" is empty; send at least one row'),
        (
            {"inputs": [tensor("a", "FP32", [1], [1.0]), tensor("a", "FP32", [1], [1.0])]},
            "Input 'a' appears twice",
        ),
        (
            {"inputs": [tensor("a", "FP32", [1], [1.0]), tensor("b", "FP32", [2], [1.0, 2.0])]},
            "Inputs disagree on the number of rows",
        ),
    ],
)
def test_malformed_requests_are_bad_requests(payload: Any, expected: str, iris: Signature) -> None:
    with pytest.raises(BadRequest) as caught:
        decode(payload, iris)
    assert expected in caught.value.message


def test_bad_json_is_a_bad_request_with_its_position(iris: Signature) -> None:
    with pytest.raises(BadRequest, match=r"line 1 column \d+ \(char \d+\)"):
        v2.decode(b'{"inputs": [{"name": "x",}]}', None, iris)


@pytest.mark.parametrize(
    ("index", "change", "field"),
    [
        (0, {"datatype": "BYTES", "data": ["thirty", "forty"]}, "age"),
        (1, {"datatype": "BYTES", "data": ["lots", "more"]}, "income"),
        (2, {"datatype": "INT64", "data": [1, 2]}, "plan"),
        (3, {"datatype": "INT64", "data": [1, 0]}, "active"),
        (0, {"name": "years"}, "years"),
    ],
)
def test_values_that_miss_the_signature_are_invalid_input(
    index: int, change: dict[str, Any], field: str, customer: Signature
) -> None:
    inputs = customer_inputs()
    inputs[index] = {**inputs[index], **change}
    with pytest.raises(InvalidInput) as caught:
        decode({"inputs": inputs}, customer)
    assert field in {p.field for p in caught.value.problems}


def test_binary_float_tensor_for_an_integer_column_is_invalid_input(customer: Signature) -> None:
    inputs = customer_inputs()
    body, length = binary_request(
        [binary("age", "FP32", [2], np.array(AGES, dtype="<f4").tobytes()), *inputs[1:]]
    )
    with pytest.raises(InvalidInput, match="'age': wrong tensor datatype float32"):
        v2.decode(body, length, customer)


def test_a_table_for_a_mixed_signature_names_the_columns_it_cannot_fill(
    customer: Signature,
) -> None:
    with pytest.raises(InvalidInput) as caught:
        decode({"inputs": [tensor("input-0", "FP64", [1, 4], [30, 1.5, 2, 1])]}, customer)
    assert {p.field for p in caught.value.problems} == {"plan", "active"}


# --- requested outputs -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("outputs", "expected"),
    [
        (
            [{"name": "scores"}],
            "Unknown output 'scores'; this model has outputs predictions, probabilities",
        ),
        ([{"name": "predictions", "parameters": {"classification": 2}}], "classification (top-k)"),
        ([{"name": "predictions", "parameters": {"shared_memory_region": "r"}}], "shared-memory"),
        ([{"parameters": {}}], 'outputs[0] must be an object with a "name"'),
        ("predictions", '"outputs" must be a list'),
    ],
)
def test_requested_outputs_are_checked(outputs: Any, expected: str, customer: Signature) -> None:
    with pytest.raises(BadRequest) as caught:
        decode({"inputs": customer_inputs(), "outputs": outputs}, customer)
    assert expected in caught.value.message


def test_probabilities_are_unknown_for_a_model_without_classes(customer: Signature) -> None:
    regressor = Signature(inputs=customer.inputs)
    with pytest.raises(BadRequest, match=r"this model has outputs predictions\. Omit"):
        decode({"inputs": customer_inputs(), "outputs": [{"name": "probabilities"}]}, regressor)


def test_shared_memory_inputs_are_refused(iris: Signature) -> None:
    payload = iris_input(parameters={"shared_memory_region": "input0_data"})
    with pytest.raises(BadRequest, match="shared_memory_region: shared-memory tensors"):
        decode(payload, iris)


# --- responses ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("labels", "datatype", "data"),
    [
        (np.array([1, 0]), "INT64", [1, 0]),
        ([np.int64(2), 3], "INT64", [2, 3]),
        (np.array([0.5, np.nan]), "FP64", [0.5, None]),
        ([1, 2.5], "FP64", [1, 2.5]),
        (np.array([True, False]), "BOOL", [True, False]),
        (np.array(["churn", "stay"]), "BYTES", ["churn", "stay"]),
        (["a", 1], "BYTES", ["a", "1"]),
    ],
)
def test_encode_infers_the_predictions_datatype(
    labels: Any, datatype: str, data: list[Any]
) -> None:
    request = v2.V2Request(id="abc", frame=None)  # type: ignore[arg-type]
    encoded = v2.encode(prediction(labels), request)
    assert encoded == {
        "model_name": "churn",
        "model_version": "3",
        "id": "abc",
        "outputs": [{"name": "predictions", "datatype": datatype, "shape": [2], "data": data}],
    }


PROBABILITIES = np.array([[0.9, 0.1], [0.25, 0.75]])


@pytest.mark.parametrize(
    ("requested", "names"),
    [
        (None, ["predictions", "probabilities"]),
        (["probabilities"], ["probabilities"]),
        (["probabilities", "predictions"], ["probabilities", "predictions"]),
    ],
)
def test_encode_keeps_the_requested_outputs(requested: list[str] | None, names: list[str]) -> None:
    request = v2.V2Request(id=None, frame=None, outputs=requested)  # type: ignore[arg-type]
    encoded = v2.encode(prediction(["churn", "stay"], PROBABILITIES), request)
    assert encoded["id"] == "req-1"
    assert [o["name"] for o in encoded["outputs"]] == names
    [probs] = [o for o in encoded["outputs"] if o["name"] == "probabilities"]
    assert probs == {
        "name": "probabilities",
        "datatype": "FP64",
        "shape": [2, 2],
        "data": [0.9, 0.1, 0.25, 0.75],
    }


def test_a_decoded_request_encodes_into_a_response_tritonclient_can_read(iris: Signature) -> None:
    body, length = binary_request(
        [binary("input-0", "FP32", [2, 4], np.array(IRIS_ROWS, dtype=np.float32).tobytes())],
        id="7",
        outputs=[{"name": "predictions", "parameters": {"binary_data": True}}],
    )
    request = v2.decode(body, length, iris)
    response = orjson.loads(dumps(v2.encode(prediction(np.array([0, 2])), request)))
    [output] = response["outputs"]
    as_numpy = np.array(output["data"], dtype=np.int64).reshape(output["shape"])
    assert response["id"] == "7" and as_numpy.tolist() == [0, 2]


def test_model_metadata(customer: Signature, iris: Signature) -> None:
    meta = v2.model_metadata("churn", ["1", "2"], customer, "sklearn_joblib")
    assert meta == {
        "name": "churn",
        "versions": ["1", "2"],
        "platform": "sklearn_joblib",
        "inputs": [
            {"name": "age", "datatype": "INT64", "shape": [-1, 1]},
            {"name": "income", "datatype": "FP64", "shape": [-1, 1]},
            {"name": "plan", "datatype": "BYTES", "shape": [-1, 1]},
            {"name": "active", "datatype": "BOOL", "shape": [-1, 1]},
        ],
        "outputs": [
            {"name": "predictions", "datatype": "BYTES", "shape": [-1]},
            {"name": "probabilities", "datatype": "FP64", "shape": [-1, 2]},
        ],
    }
    assert v2.model_metadata("iris", ["1"], iris, "onnx")["outputs"][0]["datatype"] == "INT64"
    regressor = Signature(inputs=iris.inputs)
    assert v2.model_metadata("r", ["1"], regressor, "onnx")["outputs"] == [
        {"name": "predictions", "datatype": "FP64", "shape": [-1]}
    ]


def test_server_metadata_lists_binary_tensor_data() -> None:
    assert v2.server_metadata("0.1.0") == {
        "name": "pointsman",
        "version": "0.1.0",
        "extensions": ["binary_tensor_data"],
    }
