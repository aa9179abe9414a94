"""pointsman's own JSON: {"rows": [...]} or {"columns": [...], "data": [...]} ⇄ Frame."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pointsman.errors import BadRequest
from pointsman.protocols import json
from pointsman.protocols.base import Codec, Decoded
from pointsman.protocols.tabular import (
    check_column_names,
    check_has_rows,
    rows_to_columns,
)
from pointsman.types import Frame, Prediction, Signature, json_type, plain_list
from pointsman.validation.signature import build_frame, records_to_columns

EXAMPLE = '{"rows": [{"age": 42, "plan": "pro"}]}'
_SHAPES = (
    '{"rows": [{column: value, ...}, ...]} or {"columns": [name, ...], "data": [[value, ...], ...]}'
)


def decode(body: bytes, signature: Signature) -> Frame:
    """A native request body → a checked Frame (BadRequest 400, InvalidInput 422)."""
    payload = json.loads(body, example=EXAMPLE)
    if type(payload) is not dict:
        raise BadRequest(f"Body must be a JSON object, got a {json_type(payload)}. Send {_SHAPES}.")
    if "rows" in payload:
        if "columns" in payload or "data" in payload:
            raise BadRequest(f'Send either "rows" or "columns" + "data", not both: {_SHAPES}.')
        return _decode_rows(payload["rows"], signature)
    if "columns" in payload and "data" in payload:
        return _decode_table(payload["columns"], payload["data"], signature)
    keys = ", ".join(map(repr, payload)) or "none"
    raise BadRequest(f"Body has no rows (keys: {keys}). Send {_SHAPES}.")


def _decode_rows(rows: Any, signature: Signature) -> Frame:
    if type(rows) is not list:
        raise BadRequest(f'"rows" must be a list of objects, got a {json_type(rows)}.')
    check_has_rows(len(rows), '"rows"', EXAMPLE)
    columns, n_rows, problems = records_to_columns(rows, signature)
    return build_frame(signature, columns, n_rows, problems)


def _decode_table(names: Any, data: Any, signature: Signature) -> Frame:
    names = check_column_names(names, '"columns"')
    if type(data) is not list:
        raise BadRequest(f'"data" must be a list of rows (lists), got a {json_type(data)}.')
    check_has_rows(len(data), '"data"', '{"columns": ["age"], "data": [[42]]}')
    return build_frame(signature, rows_to_columns(data, names, '"data"'), len(data))


def encode(prediction: Prediction) -> dict[str, Any]:
    """A Prediction → the native response body."""
    outputs = prediction.outputs
    body: dict[str, Any] = {"predictions": plain_list(outputs.predictions)}
    if outputs.probabilities is not None:
        records = outputs.probability_records()
        body["probabilities"] = records if records is not None else outputs.probabilities.tolist()
    body["model"] = prediction.model
    body["version"] = prediction.version
    body["request_id"] = prediction.request_id
    if prediction.findings:
        body["warnings"] = prediction.findings
    if prediction.fallback is not None:
        body["fallback"] = prediction.fallback.to_json()
    return body


class NativeCodec(Codec):
    """pointsman's own JSON."""

    name = "native"
    paths = ("/v1/models/{model}/predict", "/v1/models/{model}/versions/{version}/predict")

    def decode(self, body: bytes, headers: Mapping[str, str], signature: Signature) -> Decoded:
        return Decoded(decode(body, signature))

    def encode(self, prediction: Prediction, decoded: Decoded) -> dict[str, Any]:
        return encode(prediction)


CODEC = NativeCodec()
