"""Numbers at and past what a column's dtype holds, as JSON sends them: held or refused (422),
never converted to something else (an infinity, a wrapped integer) on the way."""

from __future__ import annotations

import numpy as np
import pytest

from pointsman.errors import InvalidInput
from pointsman.protocols import native
from pointsman.types import ColumnSpec, Signature

FLOAT32_MAX = "3.4028234663852886e38"


def decoded(column_type: str, number: str) -> np.ndarray:
    """`number` (JSON text) in a one-column row of that type, decoded as the native protocol."""
    signature = Signature(inputs=(ColumnSpec("x", column_type),))
    body = f'{{"rows": [{{"x": {number}}}]}}'.encode()
    return native.decode(body, signature).columns["x"]


@pytest.mark.parametrize(
    ("column_type", "number", "held"),
    [
        ("double", "1e308", 1e308),
        ("double", "-1.7976931348623157e308", -1.7976931348623157e308),
        ("double", "5e-324", 5e-324),
        ("double", "18446744073709551616", 2.0**64),  # an integer past int64, as a double
        ("float", FLOAT32_MAX, float(np.finfo(np.float32).max)),
        ("float", "5e-324", 0.0),  # below float32's smallest: zero, as numpy rounds it
        ("long", "9223372036854775807", 2**63 - 1),
        ("long", "-9223372036854775808", -(2**63)),
        ("integer", "2147483647", 2**31 - 1),
        ("integer", "-2147483648", -(2**31)),
    ],
)
def test_the_edges_of_each_type_are_held(column_type: str, number: str, held: float) -> None:
    assert decoded(column_type, number)[0] == held


@pytest.mark.parametrize(
    ("column_type", "number"),
    [
        ("float", "3.5e38"),  # past float32: it would be infinity
        ("float", "1e308"),
        ("float", "-1e308"),
        ("long", "9223372036854775808"),
        ("long", "18446744073709551616"),  # read as a float by the parser
        ("long", "-9223372036854775809"),  # read as the float -2**63 by the parser
        ("long", "1e300"),
        ("integer", "2147483648"),
        ("integer", "-2147483649"),
    ],
)
def test_numbers_past_the_type_are_refused_naming_the_field(column_type: str, number: str) -> None:
    with pytest.raises(InvalidInput, match="'x'"):
        decoded(column_type, number)
