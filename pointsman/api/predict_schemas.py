"""JSON Schemas of the predict bodies and answers of every protocol, in the OpenAPI document:
the generic shape of each protocol for a path that names no model, the values each column
type holds, and the answers. A version's own bodies are api/model_schemas.py's.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pointsman.protocols.tensors import DATATYPES
from pointsman.types import ColumnSpec

FLOAT32_MAX = float(np.finfo(np.float32).max)
FLOAT64_MAX = float(np.finfo(np.float64).max)
# The values each column type holds (validation/signature.py refuses the others).
VALUES: dict[str, dict[str, Any]] = {
    "double": {"type": "number", "minimum": -FLOAT64_MAX, "maximum": FLOAT64_MAX},
    "float": {"type": "number", "minimum": -FLOAT32_MAX, "maximum": FLOAT32_MAX},
    "long": {"type": "integer", "minimum": -(2**63), "maximum": 2**63 - 1},
    "integer": {"type": "integer", "minimum": -(2**31), "maximum": 2**31 - 1},
    "boolean": {"type": "boolean"},
    "string": {"type": "string"},
}
SHARED_MEMORY = ("shared_memory_region", "shared_memory_byte_size", "shared_memory_offset")


def value_schema(column: ColumnSpec, stats: dict[str, Any] | None = None) -> dict[str, Any]:
    """One input value: its JSON type and bounds, null when the column is nullable; the
    training range or categories as its description."""
    schema = dict(VALUES[column.type])
    if column.nullable:
        schema["type"] = [schema["type"], "null"]
    stats = stats or {}
    if "min" in stats and "max" in stats:
        schema["description"] = f"training range {stats['min']:g} … {stats['max']:g}"
    elif stats.get("categories"):
        schema["description"] = "training categories: " + ", ".join(map(str, stats["categories"]))
    return schema


def one_key(
    key: str,
    schema: dict[str, Any],
    conflicts: tuple[str, ...] = (),
    required: tuple[str, ...] = (),
    **more: Any,
) -> dict[str, Any]:
    """An object carrying `key` (and `required`): the decoders ignore other keys but
    `conflicts` (400)."""
    return {
        "type": "object",
        "properties": {key: schema, **more, **dict.fromkeys(conflicts, False)},
        "required": [key, *required],
    }


def v2_parameters() -> dict[str, Any]:
    """A V2 `parameters` object: shared-memory tensors are refused (400)."""
    return {"type": ["object", "null"], "properties": dict.fromkeys(SHARED_MEMORY, False)}


def v2_outputs(names: list[str] | None) -> dict[str, Any]:
    """A V2 request's `outputs`: names it has, no classification nor shared memory."""
    name: dict[str, Any] = {"type": "string"} if names is None else {"enum": names}
    return {
        "type": ["array", "null"],
        "items": {
            "type": "object",
            "properties": {
                "name": name,
                "parameters": {
                    "type": ["object", "null"],
                    "properties": {"classification": False, **dict.fromkeys(SHARED_MEMORY, False)},
                },
            },
            "required": ["name"],
        },
    }


def generic_body(protocol: str, max_rows: int) -> dict[str, Any]:
    """The request body of `protocol` for a path naming no known model: its shape only (each
    model's inputs are at GET /v1/models/{model} and in its own paths here)."""
    rows = {"type": "array", "items": {"type": "object"}, "minItems": 1, "maxItems": max_rows}
    table = {"type": "array", "items": {"type": "array"}, "minItems": 1, "maxItems": max_rows}
    names = {"type": "array", "items": {"type": "string"}, "uniqueItems": True}
    columns = {"type": "object", "additionalProperties": {"type": "array"}, "minProperties": 1}
    listed = {"anyOf": [columns, {"type": "array", "minItems": 1}]}
    if protocol == "native":
        return {
            "anyOf": [
                one_key("rows", rows, ("columns", "data")),
                one_key("columns", names, ("rows",), ("data",), data=table),
            ]
        }
    if protocol == "v1":
        return {
            "anyOf": [
                one_key("instances", {"type": "array", "minItems": 1}, ("inputs",)),
                one_key("inputs", listed, ("instances",)),
            ]
        }
    if protocol == "v2":
        tensor = {
            "type": "object",
            "properties": {
                "name": {"type": "string", "minLength": 1},
                "shape": {
                    "type": "array",
                    "items": {"type": "integer", "minimum": 0},
                    "minItems": 1,
                    "maxItems": 2,
                },
                "datatype": {"enum": list(DATATYPES)},
                "data": {"type": "array"},
                "parameters": v2_parameters(),
            },
            "required": ["name", "shape", "datatype", "data"],
        }
        return one_key(
            "inputs",
            {"type": "array", "items": tensor, "minItems": 1},
            id={"type": ["string", "null"]},
            parameters=v2_parameters(),
            outputs=v2_outputs(None),
        )
    split = {
        "type": "object",
        "properties": {"columns": names, "data": table, "index": {"type": "array"}},
        "required": ["data"],
    }
    formats: dict[str, dict[str, Any]] = {
        "dataframe_split": split,
        "dataframe_records": rows,
        "instances": {"type": "array", "minItems": 1},
        "inputs": listed,
    }
    return {
        "anyOf": [
            one_key(key, schema, tuple(k for k in formats if k != key))
            for key, schema in formats.items()
        ]
    }


def answer_schema(protocol: str) -> dict[str, Any]:
    """The 200 answer of `protocol`."""
    labels = {"type": "array"}
    if protocol == "native":
        properties: dict[str, Any] = {
            "predictions": labels,
            "probabilities": {"type": "array"},
            "model": {"type": "string"},
            "version": {"type": "integer"},
            "request_id": {"type": "string"},
            "warnings": {"type": "array", "items": {"type": "object"}},
            "fallback": {"type": "object"},
        }
        required = ["predictions", "model", "version", "request_id"]
    elif protocol == "v2":
        properties = {
            "model_name": {"type": "string"},
            "model_version": {"type": "string"},
            "id": {"type": "string"},
            "outputs": {"type": "array", "items": {"type": "object"}},
        }
        required = ["model_name", "outputs"]
    elif protocol == "v1":
        return {"anyOf": [_answer("predictions", labels), _answer("outputs", labels)]}
    else:
        return _answer("predictions", labels)
    return {"type": "object", "properties": properties, "required": required}


def _answer(key: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": {key: schema}, "required": [key]}
