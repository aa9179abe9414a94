"""KServe V1 / TF Serving predict bodies: {"instances": ...} or {"inputs": ...} ⇄ Frame."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pointsman.errors import BadRequest, FieldProblem
from pointsman.protocols import json
from pointsman.protocols.base import Codec, Decoded
from pointsman.protocols.tabular import check_has_rows, rows_to_columns
from pointsman.types import Frame, Prediction, Signature, json_type, plain_list
from pointsman.validation.signature import build_frame, records_to_columns

Style = Literal["instances", "inputs"]
EXAMPLE = '{"instances": [{"age": 42, "plan": "pro"}]}'
Columns = dict[str, list[Any]]


def decode(body: bytes, signature: Signature) -> tuple[Frame, Style]:
    """A predict body → (checked Frame, which key it used); BadRequest 400, InvalidInput 422."""
    # TF Serving writes NaN / Infinity tokens, so accept them here (never emit them).
    payload = json.loads(body, example=EXAMPLE, allow_nan=True)
    if type(payload) is not dict:
        raise BadRequest(f"Body must be a JSON object, got a {json_type(payload)}. Send {EXAMPLE}.")
    has_instances, has_inputs = "instances" in payload, "inputs" in payload
    if has_instances == has_inputs:
        which = "both" if has_instances else "neither"
        raise BadRequest(
            f'Send exactly one of "instances" (rows) or "inputs" (columns); the body has {which}. '
            f"Example: {EXAMPLE}."
        )
    if has_instances:
        columns, n_rows, problems = instances_to_columns(payload["instances"], signature)
        return build_frame(signature, columns, n_rows, problems), "instances"
    columns, n_rows = inputs_to_columns(payload["inputs"], signature)
    return build_frame(signature, columns, n_rows), "inputs"


def instances_to_columns(
    instances: Any, signature: Signature, key: str = "instances"
) -> tuple[Columns, int, list[FieldProblem]]:
    """Row format: objects {column: value}, lists in signature order, or scalars (1 column)."""
    if type(instances) is not list:
        raise BadRequest(f'"{key}" must be a list of rows, got a {json_type(instances)}.')
    check_has_rows(len(instances), f'"{key}"', EXAMPLE)
    first = instances[0]
    if type(first) is dict:
        return records_to_columns(instances, signature)
    if type(first) is list:
        return rows_to_columns(instances, signature.names, f'"{key}"'), len(instances), []
    return _scalar_column(instances, signature, key), len(instances), []


def inputs_to_columns(
    inputs: Any, signature: Signature, key: str = "inputs"
) -> tuple[Columns, int]:
    """Columnar format: {column: [values]}, one [n, columns] table, or a list (1 column)."""
    if type(inputs) is list:
        check_has_rows(len(inputs), f'"{key}"', '{"inputs": {"age": [42]}}')
        if type(inputs[0]) is list:
            return rows_to_columns(inputs, signature.names, f'"{key}"'), len(inputs)
        return _scalar_column(inputs, signature, key), len(inputs)
    if type(inputs) is not dict:
        raise BadRequest(
            f'"{key}" must be an object {{column: [values]}} or a list of rows, '
            f"got a {json_type(inputs)}."
        )
    if not inputs:
        raise BadRequest(f'"{key}" is empty; send {{column: [values], ...}}.')
    if len(inputs) == 1:
        ((name, table),) = inputs.items()
        if name not in signature.names and type(table) is list and table and type(table[0]) is list:
            # One named tensor holding the whole table, e.g. {"input_1": [[...], ...]}.
            return inputs_to_columns(table, signature, f"{key}.{name}")
    columns = {name: _column(name, values, key) for name, values in inputs.items()}
    n_rows = len(next(iter(columns.values())))
    check_has_rows(n_rows, f'"{key}"', '{"inputs": {"age": [42]}}')
    return columns, n_rows


def _column(name: str, values: Any, key: str) -> list[Any]:
    if type(values) is not list:
        raise BadRequest(
            f'"{key}"[{name!r}] must be a list with one value per row, got a {json_type(values)}.'
        )
    if values and type(values[0]) is list and all(type(v) is list and len(v) == 1 for v in values):
        return [v[0] for v in values]  # an [n, 1] column
    return values


def _scalar_column(values: list[Any], signature: Signature, key: str) -> Columns:
    names = signature.names
    if len(names) != 1:
        raise BadRequest(
            f'"{key}"[0] is a {json_type(values[0])}, but this model takes {len(names)} columns; '
            f"send each row as a list in the order {', '.join(names)} or as an object "
            "{column: value}."
        )
    return {names[0]: values}


def encode(prediction: Prediction, style: Style) -> dict[str, Any]:
    """A Prediction → {"predictions": labels} for instances, {"outputs": labels} for inputs."""
    key = "predictions" if style == "instances" else "outputs"
    return {key: plain_list(prediction.outputs.predictions)}


class V1Codec(Codec):
    """KServe V1 / TF Serving: answers in the style (instances or inputs) it was asked in."""

    name = "v1"
    paths = ("/v1/models/{model}:predict", "/v1/models/{model}/versions/{version}:predict")

    def decode(self, body: bytes, headers: Mapping[str, str], signature: Signature) -> Decoded:
        frame, style = decode(body, signature)
        return Decoded(frame, context=style)

    def encode(self, prediction: Prediction, decoded: Decoded) -> dict[str, Any]:
        style: Style = decoded.context
        return encode(prediction, style)


CODEC = V1Codec()
