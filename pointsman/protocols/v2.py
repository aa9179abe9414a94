"""Open Inference Protocol (KServe V2 / Triton) REST bodies ⇄ Frame, with binary tensors."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pointsman.errors import BadRequest
from pointsman.protocols import json
from pointsman.protocols.base import Codec, Decoded
from pointsman.protocols.tabular import check_has_rows
from pointsman.protocols.tensors import DATATYPES, from_binary, from_json
from pointsman.types import V2_DATATYPES, Frame, Prediction, Signature, json_type, plain_list
from pointsman.validation.signature import build_frame

EXAMPLE = '{"inputs": [{"name": "age", "shape": [1], "datatype": "INT64", "data": [42]}]}'
HEADER = "Inference-Header-Content-Length"
_SHARED_MEMORY = ("shared_memory_region", "shared_memory_byte_size", "shared_memory_offset")


@dataclass
class V2Request:
    """A decoded inference request: its id, the checked frame and what to answer with."""

    id: str | None
    frame: Frame
    outputs: list[str] | None = None  # requested output names; None = all of them
    parameters: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Tensor:
    name: str
    shape: list[int]
    values: list[Any] | np.ndarray  # flat, row-major


def parse_header_length(value: str | None) -> int | None:
    """The Inference-Header-Content-Length header → the JSON header's size in bytes."""
    if value is None:
        return None
    text = value.strip()
    if not text.isdigit():
        raise BadRequest(f"{HEADER} must be a whole number of bytes, got {value!r:.40}.")
    return int(text)


def decode(body: bytes, header_length: int | None, signature: Signature) -> V2Request:
    """An infer request body (JSON, or JSON + binary tensors) → V2Request; 400 or 422."""
    header, blob = _split(body, header_length)
    try:
        payload = json.loads(header, example=EXAMPLE)
    except BadRequest as exc:
        if header_length is None and "unexpected content after document" in exc.message:
            raise BadRequest(
                f"{exc.message} If binary tensors follow the JSON, give the JSON's length in "
                f"the {HEADER} header."
            ) from None
        raise
    if type(payload) is not dict:
        raise BadRequest(f"Body must be a JSON object, got a {json_type(payload)}. Send {EXAMPLE}.")
    request_id = payload.get("id")
    if request_id is not None and type(request_id) is not str:
        raise BadRequest(f'"id" must be a string, got a {json_type(request_id)}.')
    parameters = _parameters(payload.get("parameters"), "The request")
    tensors = _read_inputs(payload.get("inputs"), blob)
    outputs = _requested_outputs(payload.get("outputs"), signature)
    columns, n_rows = _to_columns(tensors, signature)
    check_has_rows(n_rows, '"inputs"', EXAMPLE)
    frame = build_frame(signature, columns, n_rows, coerce_types=False)
    return V2Request(request_id, frame, outputs, parameters)


def _split(body: bytes, header_length: int | None) -> tuple[bytes, memoryview | None]:
    if header_length is None:
        return body, None
    if header_length == 0:
        raise BadRequest(
            f"{HEADER}: 0 (a body that is one raw tensor) is not supported; send a JSON "
            f"header with the inputs and give its length in {HEADER}."
        )
    if header_length > len(body):
        raise BadRequest(
            f"{HEADER} is {header_length} but the body has only {len(body)} bytes; "
            "set it to the length of the JSON part."
        )
    return body[:header_length], memoryview(body)[header_length:]


def _parameters(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if type(value) is not dict:
        raise BadRequest(f'{where}: "parameters" must be an object, got a {json_type(value)}.')
    for key in _SHARED_MEMORY:
        if key in value:
            raise BadRequest(
                f"{where} uses parameters.{key}: shared-memory tensors are not supported. "
                "Send the tensor in the body as JSON data or binary data instead."
            )
    return value


def _read_inputs(raw: Any, blob: memoryview | None) -> list[_Tensor]:
    if type(raw) is not list or not raw:
        raise BadRequest(f'"inputs" must be a non-empty list of tensors, like {EXAMPLE}.')
    tensors: list[_Tensor] = []
    offset = 0
    for i, item in enumerate(raw):
        if type(item) is not dict:
            raise BadRequest(f"inputs[{i}] must be an object, got a {json_type(item)}.")
        name, shape, datatype = _tensor_header(item, i)
        if any(t.name == name for t in tensors):
            raise BadRequest(f"Input {name!r} appears twice; send each input once.")
        params = _parameters(item.get("parameters"), f"Input {name!r}")
        size = params.get("binary_data_size")
        if size is None:
            if "data" not in item:
                raise BadRequest(f'Input {name!r} has no "data" (and no binary_data_size).')
            values: list[Any] | np.ndarray = from_json(name, item["data"], shape, datatype)
        else:
            chunk = _binary_chunk(name, item, size, blob, offset)
            offset += len(chunk)
            values = from_binary(name, chunk, datatype, shape)
        tensors.append(_Tensor(name, shape, values))
    if blob is not None and offset != len(blob):
        raise BadRequest(
            f"The body has {len(blob) - offset} bytes after the last binary input; the "
            f"binary_data_size values must add up to the body length minus {HEADER}."
        )
    return tensors


def _tensor_header(item: dict[str, Any], i: int) -> tuple[str, list[int], str]:
    name = item.get("name")
    if type(name) is not str or not name:
        raise BadRequest(f'inputs[{i}] needs a "name" string.')
    shape = item.get("shape")
    if type(shape) is not list or not all(type(d) is int and d >= 0 for d in shape):
        raise BadRequest(
            f'Input {name!r}: "shape" must be a list of non-negative integers, got {shape!r:.60}.'
        )
    if len(shape) not in (1, 2):
        raise BadRequest(
            f"Input {name!r} has shape {shape}; send [n] per column or [n, columns] "
            "for a whole table."
        )
    datatype = item.get("datatype")
    if datatype not in DATATYPES:
        raise BadRequest(
            f"Input {name!r} has datatype {datatype!r:.40}; use one of {', '.join(DATATYPES)}."
        )
    return name, shape, datatype


def _binary_chunk(
    name: str, item: dict[str, Any], size: Any, blob: memoryview | None, offset: int
) -> memoryview:
    if blob is None:
        raise BadRequest(
            f"Input {name!r} has parameters.binary_data_size but the request has no {HEADER} "
            "header; set it to the length of the JSON part, or send the data as JSON."
        )
    if "data" in item:
        raise BadRequest(f'Input {name!r} has both "data" and binary_data_size; send one.')
    if type(size) is not int or size < 0:
        raise BadRequest(
            f"Input {name!r}: binary_data_size must be a non-negative integer, got {size!r:.40}."
        )
    if size > len(blob) - offset:
        raise BadRequest(
            f"Input {name!r} declares binary_data_size {size} but only {len(blob) - offset} "
            "bytes of binary data remain in the body; fix the size or send the missing bytes."
        )
    return blob[offset : offset + size]


def _requested_outputs(raw: Any, signature: Signature) -> list[str] | None:
    if raw is None or raw == []:
        return None
    if type(raw) is not list:
        raise BadRequest(f'"outputs" must be a list of {{"name": ...}} objects, got {raw!r:.60}.')
    available = list(signature.outputs)
    if signature.has_probabilities and "probabilities" not in available:
        available.append("probabilities")
    names: list[str] = []
    for i, item in enumerate(raw):
        name = item.get("name") if type(item) is dict else None
        if type(name) is not str:
            raise BadRequest(f'outputs[{i}] must be an object with a "name" string.')
        params = _parameters(item.get("parameters"), f"Requested output {name!r}")
        if "classification" in params:
            raise BadRequest(
                f"Requested output {name!r} asks for classification (top-k), which is not "
                "supported; drop the parameter (class_count=0) and read 'probabilities'."
            )
        if name not in available:
            raise BadRequest(
                f"Unknown output {name!r}; this model has outputs {', '.join(available)}. "
                'Omit "outputs" to get all of them.'
            )
        if name not in names:
            names.append(name)
    return names


def _to_columns(
    tensors: list[_Tensor], signature: Signature
) -> tuple[dict[str, list[Any] | np.ndarray], int]:
    names = signature.names
    width = len(names)
    first = tensors[0]
    if len(tensors) == 1 and len(first.shape) == 2 and first.shape[1] == width:
        # One [n, columns] table (tritonclient's iris-style "input-0"): columns by position.
        n_rows = first.shape[0]
        if isinstance(first.values, np.ndarray):
            table = first.values.reshape(n_rows, width)
            return {c: np.ascontiguousarray(table[:, j]) for j, c in enumerate(names)}, n_rows
        return {c: first.values[j::width] for j, c in enumerate(names)}, n_rows
    columns: dict[str, list[Any] | np.ndarray] = {}
    for tensor in tensors:
        if len(tensor.shape) == 2 and tensor.shape[1] != 1:
            raise BadRequest(
                f"Input {tensor.name!r} has shape {tensor.shape}, which does not fit this "
                f"model's {width} columns ({', '.join(names)}). Send one input per column with "
                f"shape [n] or [n, 1], or one input of shape [n, {width}] in that column order."
            )
        if tensor.shape[0] != first.shape[0]:
            raise BadRequest(
                f"Inputs disagree on the number of rows: {first.name!r} has shape {first.shape} "
                f"but {tensor.name!r} has {tensor.shape}; every column needs one value per row."
            )
        columns[tensor.name] = tensor.values
    return columns, first.shape[0]


def encode(prediction: Prediction, request: V2Request) -> dict[str, Any]:
    """A Prediction → the inference response, keeping only the requested outputs."""
    labels = plain_list(prediction.outputs.predictions)
    datatype, data = label_tensor(labels)
    produced = {
        "predictions": {
            "name": "predictions",
            "datatype": datatype,
            "shape": [len(data)],
            "data": data,
        }
    }
    probabilities = prediction.outputs.probabilities
    if probabilities is not None:
        table = np.asarray(probabilities, dtype=np.float64)
        produced["probabilities"] = {
            "name": "probabilities",
            "datatype": "FP64",
            "shape": list(table.shape),
            "data": table.ravel().tolist(),
        }
    wanted = request.outputs if request.outputs is not None else list(produced)
    return {
        "model_name": prediction.model,
        "model_version": str(prediction.version),
        "id": request.id or prediction.request_id,
        "outputs": [produced[name] for name in wanted if name in produced],
    }


def label_tensor(labels: list[Any]) -> tuple[str, list[Any]]:
    """Plain label values → their V2 datatype and JSON data (strings for BYTES)."""
    kinds = set(map(type, labels))
    if kinds and kinds <= {bool}:
        return "BOOL", labels
    if kinds and kinds <= {int}:
        return "INT64", labels
    if kinds <= {int, float, type(None)}:
        return "FP64", labels
    return "BYTES", [v if v is None or type(v) is str else str(v) for v in labels]


def model_metadata(
    name: str, versions: list[str], signature: Signature, platform: str
) -> dict[str, Any]:
    """The model metadata body: one [-1, 1] input per column, predictions (+ probabilities)."""
    inputs = [
        {"name": c.name, "datatype": V2_DATATYPES[c.type], "shape": [-1, 1]}
        for c in signature.inputs
    ]
    classes = signature.classes
    label_type = "FP64" if classes is None else label_tensor(plain_list(list(classes)))[0]
    outputs: list[dict[str, Any]] = [{"name": "predictions", "datatype": label_type, "shape": [-1]}]
    if classes is not None:
        outputs.append({"name": "probabilities", "datatype": "FP64", "shape": [-1, len(classes)]})
    return {
        "name": name,
        "versions": versions,
        "platform": platform,
        "inputs": inputs,
        "outputs": outputs,
    }


def server_metadata(version: str) -> dict[str, Any]:
    """The server metadata body, listing the extensions pointsman implements."""
    return {"name": "pointsman", "version": version, "extensions": ["binary_tensor_data"]}


class V2Codec(Codec):
    """Open Inference Protocol: JSON or binary tensors; the body's `id` is echoed back."""

    name = "v2"
    paths = ("/v2/models/{model}/infer", "/v2/models/{model}/versions/{version}/infer")

    def decode(self, body: bytes, headers: Mapping[str, str], signature: Signature) -> Decoded:
        request = decode(body, parse_header_length(headers.get(HEADER.lower())), signature)
        return Decoded(request.frame, request.id, request)

    def encode(self, prediction: Prediction, decoded: Decoded) -> dict[str, Any]:
        request: V2Request = decoded.context
        return encode(prediction, request)


CODEC = V2Codec()
