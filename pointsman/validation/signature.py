"""Signature checks: raw decoded columns → a typed Frame, or InvalidInput naming each field."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from pointsman.errors import BadRequest, FieldProblem, InvalidInput
from pointsman.types import ColumnSpec, Finding, Frame, Signature, json_type

# numpy dtype each column type is held in inside a Frame.
DTYPES: dict[str, Any] = {
    "double": np.float64,
    "float": np.float32,
    "long": np.int64,
    "integer": np.int32,
    "boolean": np.bool_,
    "string": object,
}


def records_to_columns(
    records: Sequence[Any], signature: Signature
) -> tuple[dict[str, list[Any]], int, list[FieldProblem]]:
    """Rows of {column: value} → one list per column; missing/extra keys become problems."""
    names = signature.names + [p for p in signature.passthrough if p not in signature.names]
    columns: dict[str, list[Any]] = {n: [] for n in names}
    problems: list[FieldProblem] = []
    expected = set(signature.names)
    for i, record in enumerate(records):
        if not isinstance(record, Mapping):
            raise BadRequest(
                f"Row {i} must be an object of column: value, got {json_type(record)}."
            )
        if record.keys() != expected:
            problems.extend(_key_problems(record, signature, i))
        for n in names:
            columns[n].append(record.get(n))
    return columns, len(records), problems


def _key_problems(record: Mapping[str, Any], signature: Signature, row: int) -> list[FieldProblem]:
    spec = {c.name: c for c in signature.inputs}
    problems = [
        FieldProblem(n, "missing", expected=spec[n].type, row=row)
        for n in signature.names
        if n not in record
    ]
    problems.extend(
        FieldProblem(str(k), "unexpected column; the model does not take it", row=row)
        for k in record
        if k not in spec and k not in signature.passthrough
    )
    return problems


def build_frame(
    signature: Signature,
    columns: Mapping[str, Sequence[Any] | np.ndarray],
    n_rows: int,
    problems: list[FieldProblem] | None = None,
    coerce_types: bool = True,
) -> Frame:
    """Check every column against its spec and convert it to its numpy dtype.

    With `coerce_types`, a mistyped value that unambiguously reads as the column's type is
    converted and reported in `Frame.findings` (the route's policy decides whether it is
    served); without (typed tensors, whose declared datatype is the caller's word), it is
    an error like any other.
    """
    problems = list(problems or [])
    known = {c.name for c in signature.inputs}
    extras = {
        name: list(values)
        for name, values in columns.items()
        if name in signature.passthrough and name not in known
    }
    for name in columns:
        if name not in known and name not in extras:
            problems.append(
                FieldProblem(
                    name,
                    "unexpected column; the model does not take it",
                    expected="one of " + ", ".join(signature.names),
                )
            )
    out: dict[str, np.ndarray] = {}
    findings: list[Finding] = []
    for spec in signature.inputs:
        values = columns.get(spec.name)
        if values is None:
            problems.append(FieldProblem(spec.name, "missing", expected=spec.type))
            continue
        if len(values) != n_rows:
            raise BadRequest(
                f"Column {spec.name!r} has {len(values)} values but the batch has {n_rows} rows; "
                "every column needs one value per row."
            )
        array = _to_array(spec, values, problems, findings if coerce_types else None)
        if array is not None:
            out[spec.name] = array
    if problems:
        # Name the coerced values too: whether they would be served is moot now.
        problems += [
            FieldProblem(
                f.feature,
                f"wrong type {json_type(f.value)}",
                expected=f.allowed,
                received=f.value,
                row=f.row,
            )
            for f in findings
        ]
        raise InvalidInput(_dedupe(problems))
    return Frame(out, n_rows, extras, findings)


def _to_array(
    spec: ColumnSpec,
    values: Sequence[Any] | np.ndarray,
    problems: list[FieldProblem],
    findings: list[Finding] | None,
) -> np.ndarray | None:
    dtype = DTYPES[spec.type]
    if isinstance(values, np.ndarray):
        return _from_numpy(spec, values, problems)
    before = len(problems)
    check = _CHECKS[spec.type]
    nulls = False
    coerced: list[tuple[int, Any, Any]] = []
    for i, v in enumerate(values):
        if v is None:
            nulls = True
            if not spec.nullable:
                problems.append(
                    FieldProblem(spec.name, "null is not allowed", expected=spec.type, row=i)
                )
        elif not check(v):
            fixed = None if findings is None else coerce(spec.type, v)
            if fixed is None:
                problems.append(
                    FieldProblem(
                        spec.name,
                        f"wrong type {json_type(v)}",
                        expected=spec.type,
                        received=v,
                        row=i,
                    )
                )
            else:
                coerced.append((i, v, fixed))
    if len(problems) > before:
        return None
    if coerced and findings is not None:
        values = list(values)
        for i, original, fixed in coerced:
            values[i] = fixed
            findings.append(
                Finding(i, spec.name, original, "coerced", f"{spec.type} (coerced to {fixed!r})")
            )
    if spec.type == "string":
        array = np.empty(len(values), dtype=object)
        array[:] = list(values)
        return array
    if nulls:
        # Nullable integer/boolean columns travel as float with NaN, as pandas does.
        values = [math.nan if v is None else v for v in values]
        dtype = dtype if spec.type in ("double", "float") else np.float64
    try:
        if spec.type == "float":
            with np.errstate(over="ignore"):  # past float32's range: checked just below
                array = np.asarray(values, dtype=dtype)
        else:  # no other conversion overflows quietly (each raises OverflowError)
            array = np.asarray(values, dtype=dtype)
    except OverflowError:
        problems.append(FieldProblem(spec.name, "integer out of range", expected=spec.type))
        return None
    beyond = _beyond_range(spec.type, values, array)
    if beyond is not None:
        problems.append(
            FieldProblem(
                spec.name,
                f"number out of range for {spec.type}",
                expected=RANGES[spec.type],
                received=values[beyond],
                row=beyond,
            )
        )
        return None
    return array


SHORT_COLUMN = 16  # rows up to which a Python pass beats a numpy call's overhead

# What the columns whose range a JSON number can exceed unnoticed hold.
RANGES = {
    "float": "a number within ±3.4028235e38 (32-bit float)",
    "long": "an integer from -2**63 to 2**63-1",
}


def _beyond_range(column_type: str, values: Sequence[Any], array: np.ndarray) -> int | None:
    """The row of a finite value its column cannot hold but that converted without an
    error: past float32's range (now infinite), or, in a long column, an integer below
    -2**63 that the JSON parser read as the float -2**63."""
    if column_type == "float" and array.size and np.isinf(array).any():
        for i in np.flatnonzero(np.isinf(array)).tolist():
            if math.isfinite(values[i]):
                return int(i)
    # A single-row request's column: one Python pass costs less than a numpy call.
    if column_type == "long" and (len(values) <= SHORT_COLUMN or (array <= -(2**63)).any()):
        for i, v in enumerate(values):
            if type(v) is float and v <= -(2**63):
                return i
    return None


def _from_numpy(
    spec: ColumnSpec, values: np.ndarray, problems: list[FieldProblem]
) -> np.ndarray | None:
    """A column that arrived as a typed tensor (V2 binary or typed JSON)."""
    kind = values.dtype.kind
    allowed = {
        "double": "fiu",
        "float": "fiu",
        "long": "iu",
        "integer": "iu",
        "boolean": "b",
        "string": "OUS",
    }[spec.type]
    if kind not in allowed:
        problems.append(
            FieldProblem(
                spec.name,
                f"wrong tensor datatype {values.dtype}",
                expected=spec.type,
            )
        )
        return None
    if spec.type == "string":
        array = np.empty(len(values), dtype=object)
        array[:] = [
            v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in values
        ]
        return array
    if kind == "f" and not spec.nullable:
        missing = np.flatnonzero(np.isnan(values))
        for i in missing[:20].tolist():
            problems.append(
                FieldProblem(
                    spec.name,
                    "NaN is not allowed (no missing values here)",
                    expected=spec.type,
                    row=i,
                )
            )
        if len(missing):
            return None
    return values.astype(DTYPES[spec.type], copy=False)


def coerce(column_type: str, value: Any) -> Any:
    """The value a mistyped one unambiguously stands for ("3" for a long), or None.

    Only lossless readings: a number written as text, "true"/"false", a number or boolean
    where text is expected. Whether a coerced value is served is the route's validation policy.
    """
    if column_type in ("long", "integer"):
        if isinstance(value, str):
            text = value.strip()
            if _INT_TEXT.fullmatch(text):
                return int(text)
            number = _float_of(text)  # "3.0", "1e3": exact only below 2**53
            if number is None or not number.is_integer() or abs(number) >= 2**53:
                return None
            return int(number)
        return None
    if column_type in ("double", "float"):
        return _float_of(value.strip()) if isinstance(value, str) else None
    if column_type == "boolean":
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        if type(value) is int and value in (0, 1):
            return bool(value)
        return None
    if column_type == "string" and type(value) in (int, float, bool):
        return str(value).lower() if type(value) is bool else str(value)
    return None


_INT_TEXT = re.compile(r"[+-]?\d{1,18}")


def _float_of(text: str) -> float | None:
    """A decimal number written as text (not 'nan' or 'inf': those are not readings)."""
    if not _FLOAT_TEXT.fullmatch(text):
        return None
    number = float(text)
    return number if math.isfinite(number) else None


_FLOAT_TEXT = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def _is_number(v: Any) -> bool:
    return type(v) is float or type(v) is int


def _is_integer(v: Any) -> bool:
    return type(v) is int or (type(v) is float and v.is_integer())


_CHECKS: dict[str, Callable[[Any], bool]] = {
    "double": _is_number,
    "float": _is_number,
    "long": _is_integer,
    "integer": _is_integer,
    "boolean": lambda v: type(v) is bool,
    "string": lambda v: type(v) is str,
}


def _dedupe(problems: list[FieldProblem]) -> list[FieldProblem]:
    """Drop repeats, and the null a missing field also shows up as."""
    missing = {(p.field, p.row) for p in problems if p.problem == "missing"}
    seen: set[tuple[str, str, int | None]] = set()
    out = []
    for p in problems:
        key = (p.field, p.problem, p.row)
        if p.problem == "null is not allowed" and (p.field, p.row) in missing:
            continue
        if key not in seen:
            seen.add(key)
            out.append(p)
    return out
