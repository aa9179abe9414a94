"""JSON Schemas of the predict bodies and answers of every protocol, in the OpenAPI document.

For a model whose signature is known, the schema is its rows exactly as the decoders check
them (validation/signature.py): every input column required, its type and nullability, the
numbers its dtype can hold, no other column (but the route's sticky key); what the route's
validation policy may still refuse (a value outside the training range, an unknown
category) is a 422 documented beside it. For a path that names no model, the generic shape
of the protocol. JSON Schema cannot tie a V2 tensor's shape to its data, so the per-model
V2 schema shows one row per request; every other form the decoders read is in the
description.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pointsman.protocols.tensors import DATATYPES
from pointsman.types import V2_DATATYPES, ColumnSpec, Signature

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
# Per protocol: the key carrying rows of objects, and the keys that may not come with it.
ROW_KEYS = {
    "native": ("rows", ("columns", "data")),
    "v1": ("instances", ("inputs",)),
    "mlflow": ("dataframe_records", ("dataframe_split", "instances", "inputs")),
}
SHARED_MEMORY = ("shared_memory_region", "shared_memory_byte_size", "shared_memory_offset")
FORMS = {
    "native": 'Also read: {"columns": [name, ...], "data": [[value, ...], ...]}.',
    "v1": 'Also read: rows as lists in input order, and {"inputs": {column: [values]}}.',
    "v2": "The schema shows one row (shape [1]); n rows are shape [n] (or [n, 1]) with n "
    "values each, or one [n, columns] tensor; binary tensors with "
    "Inference-Header-Content-Length.",
    "mlflow": 'Also read: "dataframe_split", "instances" and "inputs", and text/csv.',
}


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


def row_schema(signature: Signature, profile: dict[str, Any] | None) -> dict[str, Any]:
    """One row as an object: every input required (a nullable one may be null), no other key
    but the route's sticky key."""
    features = (profile or {}).get("features", {})
    properties = {c.name: value_schema(c, features.get(c.name)) for c in signature.inputs}
    for name in signature.passthrough:
        properties.setdefault(name, {"description": "The route's sticky key; not an input."})
    return {
        "type": "object",
        "properties": properties,
        "required": signature.names,
        "additionalProperties": False,
    }


def _rows(signature: Signature, profile: dict[str, Any] | None, max_rows: int) -> dict[str, Any]:
    items = row_schema(signature, profile)
    return {"type": "array", "items": items, "minItems": 1, "maxItems": max_rows}


def _one_key(
    key: str, schema: dict[str, Any], conflicts: tuple[str, ...] = (), **more: Any
) -> dict[str, Any]:
    """A body carrying `key`: the decoders ignore other keys but `conflicts` (400)."""
    return {
        "type": "object",
        "properties": {key: schema, **more, **dict.fromkeys(conflicts, False)},
        "required": [key],
    }


def _tensor(column: ColumnSpec, stats: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "name": {"const": column.name},
            "shape": {"const": [1]},
            "datatype": {"const": V2_DATATYPES[column.type]},
            "data": {
                "type": "array",
                "items": value_schema(column, stats),
                "minItems": 1,
                "maxItems": 1,
            },
            "parameters": _v2_parameters(),
        },
        "required": ["name", "shape", "datatype", "data"],
    }


def _v2_parameters() -> dict[str, Any]:
    # Shared-memory tensors are refused (400): the schema forbids their keys.
    return {"type": ["object", "null"], "properties": dict.fromkeys(SHARED_MEMORY, False)}


def _v2_outputs(names: list[str] | None) -> dict[str, Any]:
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


def model_body(
    protocol: str, signature: Signature, profile: dict[str, Any] | None, max_rows: int
) -> dict[str, Any]:
    """The request body of `protocol` for a model with `signature`."""
    if protocol == "v2":
        features = (profile or {}).get("features", {})
        tensors = [_tensor(c, features.get(c.name)) for c in signature.inputs]
        outputs = list(signature.outputs)
        if signature.has_probabilities and "probabilities" not in outputs:
            outputs.append("probabilities")
        schema = _one_key(
            "inputs",
            {"type": "array", "prefixItems": tensors, "items": False, "minItems": len(tensors)},
            id={"type": ["string", "null"]},
            parameters=_v2_parameters(),
            outputs=_v2_outputs(outputs),
        )
    else:
        key, conflicts = ROW_KEYS[protocol]
        schema = _one_key(key, _rows(signature, profile, max_rows), conflicts)
    return {**schema, "description": FORMS[protocol]}


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
                _one_key("rows", rows, ("columns", "data")),
                {
                    **_one_key("columns", names, ("rows",), data=table),
                    "required": ["columns", "data"],
                },
            ]
        }
    if protocol == "v1":
        return {
            "anyOf": [
                _one_key("instances", {"type": "array", "minItems": 1}, ("inputs",)),
                _one_key("inputs", listed, ("instances",)),
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
                "parameters": _v2_parameters(),
            },
            "required": ["name", "shape", "datatype", "data"],
        }
        return _one_key(
            "inputs",
            {"type": "array", "items": tensor, "minItems": 1},
            id={"type": ["string", "null"]},
            parameters=_v2_parameters(),
            outputs=_v2_outputs(None),
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
            _one_key(key, schema, tuple(k for k in formats if k != key))
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
