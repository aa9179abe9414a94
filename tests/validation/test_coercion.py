"""Mistyped values that unambiguously read as the column's type: converted and reported."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import pytest

from pointsman.errors import InvalidInput
from pointsman.protocols import native, v2
from pointsman.types import ColumnSpec, Signature
from pointsman.validation.signature import build_frame, coerce, records_to_columns

SIGNATURE = Signature(
    inputs=(
        ColumnSpec("age", "long"),
        ColumnSpec("income", "double"),
        ColumnSpec("plan", "string"),
        ColumnSpec("active", "boolean"),
    )
)
GOOD = {"age": 30, "income": 1000.5, "plan": "basic", "active": True}


@pytest.mark.parametrize(
    ("column_type", "value", "expected"),
    [
        ("long", "3", 3),
        ("long", " -12 ", -12),
        ("long", "3.0", 3),
        ("integer", "+7", 7),
        ("double", "2.5", 2.5),
        ("double", "1e3", 1000.0),
        ("double", ".5", 0.5),
        ("float", "-0.25", -0.25),
        ("boolean", "true", True),
        ("boolean", "FALSE", False),
        ("boolean", 1, True),
        ("boolean", 0, False),
        ("string", 3, "3"),
        ("string", 2.5, "2.5"),
        ("string", True, "true"),
    ],
)
def test_lossless_readings_are_coerced(column_type: str, value: Any, expected: Any) -> None:
    got = coerce(column_type, value)
    assert got == expected and type(got) is type(expected)


@pytest.mark.parametrize(
    ("column_type", "value"),
    [
        ("long", "3.5"),  # would lose the fraction
        ("long", "thirty"),
        ("long", "1" * 40),  # not an int64
        ("double", "nan"),  # not a reading: the NaN rules see real NaNs
        ("double", "inf"),
        ("double", "1e999"),  # overflows to infinity
        ("double", "3,5"),
        ("double", ""),
        ("boolean", "yes"),
        ("boolean", 2),
        ("boolean", 1.0),
        ("string", None),
        ("string", [1]),
        ("long", [3]),
        ("double", {"v": 1}),
    ],
)
def test_ambiguous_or_lossy_values_are_not_coerced(column_type: str, value: Any) -> None:
    assert coerce(column_type, value) is None


def test_a_coerced_value_is_converted_and_reported_with_row_and_rule() -> None:
    rows = [GOOD, {"age": "41", "income": "2000", "plan": 7, "active": "false"}]
    frame = build_frame(SIGNATURE, *records_to_columns(rows, SIGNATURE))
    assert frame.to_records()[1] == {"age": 41, "income": 2000.0, "plan": "7", "active": False}
    found = {(f.row, f.feature, f.value, f.rule) for f in frame.findings}
    assert found == {
        (1, "age", "41", "coerced"),
        (1, "income", "2000", "coerced"),
        (1, "plan", 7, "coerced"),
        (1, "active", "false", "coerced"),
    }
    assert all("coerced to" in f.allowed for f in frame.findings)


def test_well_typed_input_has_no_findings() -> None:
    frame = native.decode(b'{"rows": [{"age": 30, "income": 1.5, "plan": "a", "active": true}]}',
                          SIGNATURE)  # fmt: skip
    assert frame.findings == []


def test_a_schema_error_elsewhere_also_names_the_coerced_fields() -> None:
    rows = [{"age": "41", "income": "lots", "plan": "basic", "active": True}]
    with pytest.raises(InvalidInput) as caught:
        build_frame(SIGNATURE, *records_to_columns(rows, SIGNATURE))
    assert {p.field for p in caught.value.problems} == {"age", "income"}


def test_typed_v2_tensors_are_never_coerced() -> None:
    body = {
        "inputs": [
            {"name": "age", "shape": [1], "datatype": "BYTES", "data": ["30"]},
            {"name": "income", "shape": [1], "datatype": "FP64", "data": [1.5]},
            {"name": "plan", "shape": [1], "datatype": "BYTES", "data": ["basic"]},
            {"name": "active", "shape": [1], "datatype": "BOOL", "data": [True]},
        ]
    }
    with pytest.raises(InvalidInput) as caught:
        v2.decode(orjson.dumps(body), None, SIGNATURE)
    assert {p.field for p in caught.value.problems} == {"age"}


def test_nan_in_a_typed_tensor_is_refused_where_the_column_takes_no_nulls() -> None:
    columns = {
        "age": np.array([30, 41]),
        "income": np.array([1.5, np.nan]),
        "plan": np.array(["a", "b"], dtype=object),
        "active": np.array([True, False]),
    }
    with pytest.raises(InvalidInput) as caught:
        build_frame(SIGNATURE, columns, 2)
    [problem] = caught.value.problems
    assert (problem.field, problem.row) == ("income", 1) and "NaN" in problem.problem
    nullable = Signature(inputs=(*SIGNATURE.inputs[:1], ColumnSpec("income", "double", True),
                                 *SIGNATURE.inputs[2:]))  # fmt: skip
    assert np.isnan(build_frame(nullable, columns, 2).columns["income"][1])
