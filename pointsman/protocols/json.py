"""JSON in and out of every protocol: orjson, with parse errors a person can act on."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import orjson

from pointsman.errors import BadRequest

_DUMP_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS
_EXAMPLE = '{"rows": [{"column": "value"}]}'


def loads(body: bytes, *, example: str = _EXAMPLE, allow_nan: bool = False) -> Any:
    """Parse a request body; BadRequest says where it broke and what to send instead.

    `allow_nan` also accepts the NaN / Infinity tokens TF Serving and Python's json emit.
    """
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        if allow_nan:
            found = _loads_with_nan(body)
            if found is not None:
                return found[0]
        raise BadRequest(describe_error(exc, example)) from None


def describe_error(exc: orjson.JSONDecodeError, example: str = _EXAMPLE) -> str:
    """The sentence for a JSON parse error, with its position and an example of valid input."""
    if exc.msg.startswith("Input is a zero-length"):
        return f"Body is empty. Send a JSON object like {example}."
    if exc.msg == "depth limit exceeded":
        return (
            f"Body nests arrays/objects deeper than 1024 levels (at char {exc.pos}). "
            f"Send a JSON object like {example} with less nesting."
        )
    where = f"line {exc.lineno} column {exc.colno} (char {exc.pos})"
    return f"Body is not valid JSON: {exc.msg} at {where}. Send a JSON object like {example}."


def _loads_with_nan(body: bytes) -> tuple[Any] | None:
    """Retry with the stdlib parser, which takes NaN/Infinity; None if it fails too."""
    try:
        return (json.loads(body),)
    except (ValueError, RecursionError):
        return None


def dumps(obj: Any) -> bytes:
    """Serialise a response body; NaN and infinities become null, numpy values plain JSON."""
    return orjson.dumps(obj, default=_default, option=_DUMP_OPTIONS)


def _default(obj: Any) -> Any:
    # orjson serialises numeric numpy arrays itself; object arrays and odd scalars land here.
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, bytes):
        return obj.decode("utf-8", "replace")
    if isinstance(obj, (set, frozenset)):
        return list(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")
