"""The runner protocol on the wire: length-prefixed frames carrying frames and outputs.

Every message is `u32 length | u8 kind | u64 request id | payload`, many requests in flight
on one connection. A runner told to stop sends DRAIN (request id 0) on every connection; it
answers what reaches it after that with a "draining" error until the caller hangs up.
A caller that gives up on a call (its deadline passed, its own caller went away) sends
CANCEL with that call's id: a runner that has not started it drops it unanswered.
PREDICT_FLAGGED is a PREDICT whose rows carry validation findings: batched like any other,
but when a batch fails, the runner retries the calls without findings together first, so
that garbage from one client costs the clean callers one model call, not one each.
Frames travel as typed column blocks (numbers as raw little-endian arrays, text columns as
JSON lists); outputs as JSON labels plus a raw probability block.
Nothing read from the wire is ever unpickled: a runner may run untrusted code, and behind
TCP anyone may write to the socket.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import Any

import numpy as np
import orjson

from pointsman.types import Frame, Outputs

HEADER = struct.Struct("<IBQ")  # length of what follows the length, kind, request id
PREDICT, RESULT, ERROR, CANCEL, DRAIN, PREDICT_FLAGGED = 1, 2, 3, 4, 5, 6
MAX_MESSAGE = 1 << 31

_ROWS = struct.Struct("<IH")  # rows, columns
_COLUMN = struct.Struct("<HcI")  # name length, dtype code, data length
_CODES: dict[np.dtype[Any], bytes] = {
    np.dtype(np.float64): b"d",
    np.dtype(np.float32): b"f",
    np.dtype(np.int64): b"q",
    np.dtype(np.int32): b"i",
    np.dtype(np.bool_): b"?",
}
_DTYPES: dict[bytes, np.dtype[Any]] = {code: dtype for dtype, code in _CODES.items()}
_JSON = orjson.OPT_SERIALIZE_NUMPY


class WireError(Exception):
    """A message that does not follow the protocol (the connection is closed)."""


def message(kind: int, request_id: int, payload: bytes = b"") -> bytes:
    return HEADER.pack(len(payload) + HEADER.size - 4, kind, request_id) + payload


def split(buffer: bytearray) -> Iterator[tuple[int, int, bytes]]:
    """Take every complete message off the front of `buffer`: (kind, request id, payload)."""
    offset = 0
    size = len(buffer)
    while size - offset >= HEADER.size:
        length, kind, request_id = HEADER.unpack_from(buffer, offset)
        if length > MAX_MESSAGE:
            raise WireError(f"message of {length} bytes")
        end = offset + 4 + length
        if end > size:
            break
        yield kind, request_id, bytes(buffer[offset + HEADER.size : end])
        offset = end
    del buffer[:offset]


def encode_frame(frame: Frame) -> bytes:
    """A frame's columns as typed blocks (extras and findings stay with the caller)."""
    parts = [_ROWS.pack(frame.n_rows, len(frame.columns))]
    for name, column in frame.columns.items():
        code = _CODES.get(column.dtype)
        if code is None:  # text, or values of mixed type: JSON keeps them as they are
            code, data = b"O", orjson.dumps(column.tolist(), option=_JSON)
        else:
            data = np.ascontiguousarray(column).tobytes()
        raw = name.encode()
        parts += [_COLUMN.pack(len(raw), code, len(data)), raw, data]
    return b"".join(parts)


def decode_frame(payload: bytes) -> Frame:
    try:
        n_rows, n_columns = _ROWS.unpack_from(payload, 0)
        offset = _ROWS.size
        columns: dict[str, np.ndarray] = {}
        for _ in range(n_columns):
            name_length, code, length = _COLUMN.unpack_from(payload, offset)
            offset += _COLUMN.size
            name = payload[offset : offset + name_length].decode()
            offset += name_length
            data = payload[offset : offset + length]
            offset += length
            if code == b"O":
                values = orjson.loads(data)
                column = np.empty(len(values), dtype=object)
                column[:] = values
            else:
                column = np.frombuffer(data, dtype=_DTYPES[code]).copy()
            if len(column) != n_rows:
                raise WireError(f"column {name!r} has {len(column)} values for {n_rows} rows")
            columns[name] = column
    except (struct.error, KeyError, UnicodeDecodeError, orjson.JSONDecodeError) as exc:
        raise WireError(f"malformed frame: {exc}") from exc
    return Frame(columns, n_rows)


def encode_outputs(outputs: Outputs, runtime: str | None = None) -> bytes:
    """Outputs on the wire; `runtime` says which runtime computed them (original, compiled)."""
    probabilities = outputs.probabilities
    head: dict[str, Any] = {"p": outputs.predictions, "c": outputs.classes, "s": None}
    if runtime is not None:
        head["r"] = runtime
    block = b""
    if probabilities is not None:
        table = np.ascontiguousarray(probabilities, dtype=np.float64)
        head["s"] = list(table.shape)
        block = table.tobytes()
    raw = orjson.dumps(head, option=_JSON)
    return struct.pack("<I", len(raw)) + raw + block


def decode_outputs(payload: bytes) -> Outputs:
    try:
        (length,) = struct.unpack_from("<I", payload, 0)
        head = orjson.loads(payload[4 : 4 + length])
        probabilities = None
        if head["s"] is not None:
            block = np.frombuffer(payload[4 + length :], dtype=np.float64)
            probabilities = block.reshape(head["s"])
    except (struct.error, KeyError, ValueError, orjson.JSONDecodeError) as exc:
        raise WireError(f"malformed outputs: {exc}") from exc
    return Outputs(head["p"], probabilities, head["c"], head.get("r"))


def encode_error(code: str, kind: str, message_: str) -> bytes:
    """A failure the runner reports: code (model_error, memory, disk, queue_full, …)."""
    return orjson.dumps({"code": code, "kind": kind, "message": message_[:2000]})


def decode_error(payload: bytes) -> dict[str, str]:
    try:
        data = orjson.loads(payload)
        return {k: str(data.get(k, "")) for k in ("code", "kind", "message")}
    except orjson.JSONDecodeError as exc:
        raise WireError(f"malformed error: {exc}") from exc
