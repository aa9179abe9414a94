"""MLflow scoring server /invocations bodies (JSON or CSV) ⇄ Frame, and its error shape."""

from __future__ import annotations

import io
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

import pandas as pd

from pointsman.errors import BadRequest, InvalidInput, PointsmanError, UnsupportedMediaType
from pointsman.protocols import json
from pointsman.protocols.base import Codec, Decoded
from pointsman.protocols.tabular import check_column_names, check_has_rows, rows_to_columns
from pointsman.protocols.v1 import inputs_to_columns, instances_to_columns
from pointsman.types import Frame, Prediction, Signature, plain_list
from pointsman.validation.signature import build_frame, records_to_columns

CONTENT_TYPES = ("application/json", "text/csv")
FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")
EXAMPLE = '{"dataframe_split": {"columns": ["age"], "data": [[42]]}}'
_REQUIRED = (
    "The input must be a JSON dictionary with exactly one of the input fields "
    "{'dataframe_split', 'dataframe_records', 'instances', 'inputs'}"
)
_NOT_A_FRAME = "Provided dataframe_split field is not a valid dataframe representation"
_ERROR_CODES = {
    HTTPStatus.NOT_FOUND: "RESOURCE_DOES_NOT_EXIST",
    HTTPStatus.SERVICE_UNAVAILABLE: "TEMPORARILY_UNAVAILABLE",
    HTTPStatus.UNAUTHORIZED: "UNAUTHENTICATED",
    HTTPStatus.FORBIDDEN: "PERMISSION_DENIED",
    HTTPStatus.TOO_MANY_REQUESTS: "RESOURCE_EXHAUSTED",
}


def decode(body: bytes, content_type: str | None, signature: Signature) -> Frame:
    """An /invocations body → a checked Frame; UnsupportedMediaType 415, 400 or 422."""
    if parse_content_type(content_type) == "text/csv":
        return _decode_csv(body, signature)
    return _decode_json(body, signature)


def parse_content_type(value: str | None) -> str:
    """The media type MLflow would parse the body as; 415 for anything it would refuse."""
    if value is None or not value.strip():
        raise UnsupportedMediaType(
            "Content-Type is missing; /invocations takes application/json or text/csv. "
            "Send Content-Type: application/json with a body like " + EXAMPLE + "."
        )
    media, *pairs = (part.strip() for part in value.split(";"))
    params = {}
    for pair in filter(None, pairs):
        key, _, val = pair.partition("=")
        params[key.strip().lower()] = val.strip().strip('"')
    charset = params.pop("charset", "utf-8").lower()
    if charset != "utf-8":
        raise UnsupportedMediaType(
            f"The scoring server only supports UTF-8, got charset={charset}; "
            "encode the body as UTF-8 and send charset=utf-8 (or no charset)."
        )
    if params:
        raise UnsupportedMediaType(
            f"Unrecognized content type parameters: {', '.join(sorted(params))}. Only "
            "charset=utf-8 is allowed: since MLflow 2.0 the format goes in the JSON body "
            '(e.g. {"dataframe_split": ...} instead of format=pandas-split).'
        )
    media = media.lower()
    if media not in CONTENT_TYPES:
        raise UnsupportedMediaType(
            "This predictor only supports the following content types: "
            f"{', '.join(CONTENT_TYPES)}. Got {value!r:.80}."
        )
    return media


def _decode_json(body: bytes, signature: Signature) -> Frame:
    try:
        payload = json.loads(body, example=EXAMPLE, allow_nan=True)
    except BadRequest as exc:
        raise BadRequest(
            "Failed to parse input from JSON. Ensure that input is a valid JSON formatted "
            f"string. Error: {exc.message}"
        ) from None
    if type(payload) is not dict:
        got = (
            "a list"
            if type(payload) is list
            else f"unexpected input type {type(payload).__name__!r}"
        )
        raise BadRequest(f"{_REQUIRED}. Received {got}.")
    keys = [key for key in FORMATS if key in payload]
    if len(keys) != 1:
        raise BadRequest(f"{_REQUIRED}. Received dictionary with input fields: {list(payload)}.")
    key = keys[0]
    value = payload[key]
    if key == "dataframe_split":
        return _from_split(value, signature)
    if key == "dataframe_records":
        if type(value) is not list:
            raise BadRequest(
                f"Dataframe records format must be a list of records. Got {_py_type(value)}."
            )
        check_has_rows(len(value), "dataframe_records", EXAMPLE)
        return build_frame(signature, *records_to_columns(value, signature))
    if key == "instances":
        return build_frame(signature, *instances_to_columns(value, signature))
    return build_frame(signature, *inputs_to_columns(value, signature))


def _from_split(value: Any, signature: Signature) -> Frame:
    if type(value) is not dict:
        raise BadRequest(f"Dataframe split format must be a dictionary. Got {_py_type(value)}.")
    data = value.get("data")
    if type(data) is not list:
        raise BadRequest(f'{_NOT_A_FRAME}: "data" must be a list of rows. Example: {EXAMPLE}.')
    check_has_rows(len(data), "dataframe_split.data", EXAMPLE)
    raw_names = value.get("columns")
    # Without "columns" pandas numbers them 0..k-1; take them in signature order.
    names = signature.names if raw_names is None else check_column_names(raw_names, "columns")
    index = value.get("index")
    if index is not None and (type(index) is not list or len(index) != len(data)):
        raise BadRequest(f'{_NOT_A_FRAME}: "index" must be a list with one label per row.')
    try:
        columns = rows_to_columns(data, names, "dataframe_split.data")
    except BadRequest as exc:
        raise BadRequest(f"{_NOT_A_FRAME}: {exc.message}") from None
    return build_frame(signature, columns, len(data))


def _py_type(value: Any) -> str:
    return "dictionary" if type(value) is dict else type(value).__name__


def _decode_csv(body: bytes, signature: Signature) -> Frame:
    # Strings stay strings ("007"); numbers and booleans are left to pandas' inference.
    dtype = {c.name: str for c in signature.inputs if c.type == "string"}
    try:
        table = pd.read_csv(io.BytesIO(body), dtype=dtype or None, encoding="utf-8")
    except pd.errors.EmptyDataError:
        raise BadRequest(
            "The CSV body is empty; send a header row and one line per row, e.g. age,plan\\n42,pro."
        ) from None
    except Exception as exc:  # pandas raises many kinds on malformed CSV; all are the caller's
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BadRequest(
            f"Failed to parse input as a CSV table: {reason}. Send a header row and one line per "
            "row, as pandas.DataFrame.to_csv(index=False) writes it."
        ) from None
    if not isinstance(table.index, pd.RangeIndex):
        # pandas turns the extra leading fields of too-long rows into an index.
        header = ", ".join(map(str, table.columns))
        raise BadRequest(
            f"The CSV rows have more fields than the header row ({header}); "
            "give every row exactly one value per header column."
        )
    check_has_rows(len(table), "The CSV body (below its header row)", "age,plan\\n42,pro")
    columns = {str(name): _csv_values(table[name]) for name in table.columns}
    frame = build_frame(signature, columns, len(table))
    # CSV is text: "41" in a long column is how a number is written there, not a mistype.
    frame.findings = [f for f in frame.findings if f.rule != "coerced"]
    return frame


def _csv_values(series: pd.Series) -> list[Any]:
    values = series.to_numpy()
    if values.dtype.kind in "iub":
        return list(values.tolist())
    # Missing cells come back as NaN; the signature check wants them as null.
    return [None if type(v) is float and v != v else v for v in values.tolist()]


def encode(prediction: Prediction) -> dict[str, Any]:
    """A Prediction → MLflow's {"predictions": [...]} body."""
    return {"predictions": plain_list(prediction.outputs.predictions)}


def to_mlflow_error(err: PointsmanError) -> tuple[int, dict[str, Any]]:
    """An error → MLflow's (status, {"error_code", "message"}) keeping "error" and "code"."""
    status = err.status
    if isinstance(err, InvalidInput):
        # MLflow answers schema mismatches with 400 INVALID_PARAMETER_VALUE, not 422.
        status, error_code = HTTPStatus.BAD_REQUEST, "INVALID_PARAMETER_VALUE"
    elif status in _ERROR_CODES:
        error_code = _ERROR_CODES[status]
    elif status < 500:
        error_code = "BAD_REQUEST"
    else:
        error_code = "INTERNAL_ERROR"
    body = {"error_code": error_code, "message": err.message, **err.to_json()}
    return int(status), body


class MlflowCodec(Codec):
    """MLflow's scoring server: JSON or CSV by Content-Type, and MLflow's error body."""

    name = "mlflow"
    paths = ("/invocations", "/v1/models/{model}/invocations")

    def decode(self, body: bytes, headers: Mapping[str, str], signature: Signature) -> Decoded:
        return Decoded(decode(body, headers.get("content-type"), signature))

    def encode(self, prediction: Prediction, decoded: Decoded) -> dict[str, Any]:
        return encode(prediction)

    def error(self, exc: PointsmanError) -> tuple[int, dict[str, Any]]:
        return to_mlflow_error(exc)


CODEC = MlflowCodec()
