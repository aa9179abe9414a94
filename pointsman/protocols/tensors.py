"""Open Inference Protocol tensor data: JSON or binary elements → one flat list or array."""

from __future__ import annotations

import struct
from typing import Any

import numpy as np

from pointsman.errors import BadRequest
from pointsman.types import json_type

# Little-endian numpy dtype of each fixed-size datatype on the wire (binary tensor extension).
WIRE_DTYPES: dict[str, np.dtype[Any]] = {
    "BOOL": np.dtype("u1"),
    "UINT8": np.dtype("u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "INT8": np.dtype("i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"),
    "BF16": np.dtype("<u2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
}
DATATYPES = (*WIRE_DTYPES, "BYTES")

_NONE = type(None)
_INT_RANGES = {
    name: np.iinfo(dtype) for name, dtype in WIRE_DTYPES.items() if name[:3] in ("INT", "UIN")
}
# JSON element types each datatype takes; null passes through to the signature check.
_JSON_TYPES: dict[str, frozenset[type]] = {
    name: frozenset({int, _NONE})
    if name in _INT_RANGES
    else frozenset({bool, _NONE})
    if name == "BOOL"
    else frozenset({int, float, _NONE})
    for name in WIRE_DTYPES
}
_JSON_TYPES["BYTES"] = frozenset({str, _NONE})
_JSON_KINDS = {"BOOL": "true/false", "BYTES": "strings"}


def from_json(name: str, data: Any, shape: list[int], datatype: str) -> list[Any]:
    """An input's JSON `data` (flat or nested to its shape) → a flat row-major list."""
    if type(data) is not list:
        raise BadRequest(f"Input {name!r}: data must be a list, got a {json_type(data)}.")
    flat = _flatten(name, data, shape)
    count = _count(shape)
    if len(flat) != count:
        raise BadRequest(
            f"Input {name!r} has {len(flat)} data elements but shape {shape} needs {count}; "
            "make the shape match the data."
        )
    _check_json_types(name, flat, datatype)
    return flat


def _flatten(name: str, data: list[Any], shape: list[int]) -> list[Any]:
    if len(shape) < 2 or not data or type(data[0]) is not list:
        return data  # already flat; stray nested lists fail the element type check
    rows, width = shape[0], shape[1]
    ragged = len(data) != rows or any(type(r) is not list or len(r) != width for r in data)
    if ragged:
        raise BadRequest(
            f"Input {name!r}: nested data does not match shape {shape} (expected {rows} lists "
            f"of {width} values). Send the data flat in row-major order or nested to the shape."
        )
    return [v for row in data for v in row]


def _check_json_types(name: str, flat: list[Any], datatype: str) -> None:
    allowed = _JSON_TYPES[datatype]
    if not set(map(type, flat)) <= allowed:
        i, value = next((i, v) for i, v in enumerate(flat) if type(v) not in allowed)
        kind = _JSON_KINDS.get(datatype, "integers" if datatype in _INT_RANGES else "numbers")
        raise BadRequest(
            f"Input {name!r} is {datatype} but data[{i}] is a {json_type(value)} "
            f"({value!r:.60}); {datatype} data must be {kind}. Fix the value or the datatype."
        )
    limits = _INT_RANGES.get(datatype)
    if limits is not None and flat:
        ints = [v for v in flat if v is not None]
        for value in (min(ints, default=0), max(ints, default=0)):
            if not limits.min <= value <= limits.max:
                raise BadRequest(
                    f"Input {name!r}: value {value} is out of range for {datatype} "
                    f"({limits.min}..{limits.max}); use a wider datatype such as INT64."
                )


def from_binary(name: str, chunk: memoryview, datatype: str, shape: list[int]) -> np.ndarray:
    """An input's raw little-endian bytes → a flat numpy array that owns its data."""
    count = _count(shape)
    if datatype == "BYTES":
        return _bytes_elements(name, chunk, count)
    wire = WIRE_DTYPES[datatype]
    needed = count * wire.itemsize
    if len(chunk) != needed:
        raise BadRequest(
            f"Input {name!r} declares binary_data_size {len(chunk)} but {datatype} with shape "
            f"{shape} takes {count} x {wire.itemsize} = {needed} bytes; fix the size or shape."
        )
    raw = np.frombuffer(chunk, dtype=wire)
    if datatype == "BOOL":
        if count and int(raw.max()) > 1:
            raise BadRequest(f"Input {name!r} is BOOL but holds bytes other than 0 and 1.")
        return raw.astype(np.bool_)
    if datatype == "BF16":
        # bfloat16 is the top half of a float32.
        return (raw.astype(np.uint32) << 16).view(np.float32)
    if datatype == "FP16":
        return raw.astype(np.float32)
    return raw.astype(wire.newbyteorder("="))


def _count(shape: list[int]) -> int:
    count = 1
    for dim in shape:
        count *= dim
    return count


def _bytes_elements(name: str, chunk: memoryview, count: int) -> np.ndarray:
    """BYTES on the wire: per element a 4-byte little-endian length, then that many bytes."""
    size = len(chunk)
    if count * 4 > size:
        raise BadRequest(
            f"Input {name!r} declares {count} BYTES elements but binary_data_size {size} cannot "
            "hold even their 4-byte length prefixes; fix the shape or the size."
        )
    out = np.empty(count, dtype=object)
    pos = 0
    for i in range(count):
        if pos + 4 > size:
            raise BadRequest(
                f"Input {name!r}: BYTES element {i} starts at byte {pos} but its 4-byte length "
                f"does not fit in binary_data_size {size}; the tensor is truncated."
            )
        (length,) = struct.unpack_from("<I", chunk, pos)
        pos += 4
        if pos + length > size:
            raise BadRequest(
                f"Input {name!r}: BYTES element {i} claims {length} bytes but only "
                f"{size - pos} remain in binary_data_size {size}; the tensor is truncated."
            )
        out[i] = bytes(chunk[pos : pos + length])
        pos += length
    if pos != size:
        raise BadRequest(
            f"Input {name!r}: {size - pos} bytes are left over after its {count} BYTES "
            f"elements; binary_data_size {size} must equal the bytes of the elements."
        )
    return out
