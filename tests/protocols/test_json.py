"""protocols.json: orjson in and out, parse errors with their position."""

from __future__ import annotations

import math

import numpy as np
import orjson
import pytest

from pointsman.errors import BadRequest
from pointsman.protocols.json import dumps, loads


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            b'{"rows": x}',
            "unexpected character, expected a JSON value at line 1 column 10 (char 9)",
        ),
        (b'{"a": 1,}', "trailing comma is not allowed at line 1 column 8 (char 7)"),
        (b'{"a": 1}\n{"b": 2}', "unexpected content after document at line 2 column 1 (char 9)"),
        (b"", "Body is empty"),
        (b"[" * 2000 + b"]" * 2000, "deeper than 1024 levels"),
        (b'{"a": "\xff"}', "not valid UTF-8"),
    ],
)
def test_bad_json_is_a_bad_request_that_says_where(body: bytes, expected: str) -> None:
    with pytest.raises(BadRequest) as caught:
        loads(body)
    assert expected in caught.value.message
    assert "Send a JSON object like" in caught.value.message


def test_nan_tokens_are_refused_unless_allowed() -> None:
    with pytest.raises(BadRequest, match=r"line 1 column 7 \(char 6\)"):
        loads(b"[1.0, NaN]")
    values = loads(b"[1.0, NaN, Infinity, -Infinity]", allow_nan=True)
    assert values[0] == 1.0 and math.isnan(values[1]) and values[2:] == [math.inf, -math.inf]


def test_allow_nan_still_reports_orjsons_position_when_the_body_is_broken() -> None:
    with pytest.raises(BadRequest, match=r"line 1 column 7 \(char 6\)"):
        loads(b'{"a": x}', allow_nan=True)


def test_dumps_never_writes_nan_or_infinity() -> None:
    body = {
        "a": math.nan,
        "b": np.array([1.5, np.nan, np.inf]),
        "c": np.float64("-inf"),
        "d": np.int64(3),
        "e": np.array(["x", None], dtype=object),
        "f": np.bool_(True),
        1: "int key",
    }
    out = dumps(body)
    assert b"NaN" not in out and b"Infinity" not in out
    assert orjson.loads(out) == {
        "a": None,
        "b": [1.5, None, None],
        "c": None,
        "d": 3,
        "e": ["x", None],
        "f": True,
        "1": "int key",
    }


def test_dumps_refuses_what_is_not_json() -> None:
    with pytest.raises(TypeError):
        dumps({"a": object()})
