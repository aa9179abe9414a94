"""One chunk of a table through a version's signature checks, a column at a time.

The request path reads JSON values one by one (`validation.signature.build_frame`); a chunk
arrives typed by Arrow, so a column of the right type converts to numpy whole and only the
rows that break the signature are named. A file is not a request: a bad value refuses its
row, not the chunk. Columns of the wrong type (text in a Parquet number column) take the
per-value path with the request path's `coerce`.

Text without nulls can stay in Arrow (`arrow_strings`): pandas reads it without a copy, where
a numpy column of Python strings costs an object per value, made here and undone again when
the model's DataFrame is built. Text read as a dictionary can go to a model that only encodes
it as a pandas Categorical of the dictionary's few strings (`categorical`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from pointsman.types import NUMERIC_TYPES, ColumnSpec, Finding, Frame, Signature
from pointsman.validation.signature import DTYPES, coerce

_ARROW_OF = {
    "double": pa.float64(),
    "float": pa.float32(),
    "long": pa.int64(),
    "integer": pa.int32(),
    "boolean": pa.bool_(),
    "string": pa.string(),
}


@dataclass
class CheckedChunk:
    """A chunk's frame over the rows that passed the signature, and why the others did not."""

    frame: Frame
    rows: np.ndarray  # index in the chunk of each frame row
    refused: dict[int, list[Finding]] = field(default_factory=dict)  # chunk row → findings
    # Text read as Arrow dictionaries, over the frame's rows: what the category checks read.
    dictionaries: dict[str, pa.DictionaryArray] = field(default_factory=dict)


def check_chunk(
    signature: Signature,
    table: pa.Table,
    text_source: bool,
    arrow_strings: bool = False,
    categorical: frozenset[str] = frozenset(),
) -> CheckedChunk:
    """The chunk as a Frame of the version's inputs; rows breaking the signature refused.

    `text_source`: read from CSV, where "41" is how a number is written, so reading text as
    a number is no finding (as `pointsman validate` does). `arrow_strings`: text columns
    without nulls as pandas' Arrow-backed strings, for a model that takes a DataFrame.
    `categorical`: text inputs that, read as dictionaries without nulls, go to the model as
    pandas Categoricals (`batch.categories` says which a model takes so).
    """
    n = table.num_rows
    refused: dict[int, list[Finding]] = {}
    coerced: list[Finding] = []
    columns: dict[str, np.ndarray] = {}
    dictionaries: dict[str, pa.DictionaryArray] = {}
    for spec in signature.inputs:
        column = table.column(spec.name).combine_chunks()
        if pa.types.is_dictionary(column.type):  # decoded once, here, for the model
            text = column.type.value_type
            if spec.type == "string" and (
                pa.types.is_string(text) or pa.types.is_large_string(text)
            ):
                dictionaries[spec.name] = column
                taken = _from_dictionary(column, spec.name in categorical, arrow_strings)
                if taken is not None:  # indexes and compares as a numpy column
                    columns[spec.name] = taken
                    continue
            column = column.dictionary_decode()
        columns[spec.name] = _column(spec, column, refused, coerced, text_source, arrow_strings)
    if not refused:
        frame = Frame(columns, n, {}, coerced)
        return CheckedChunk(frame, np.arange(n), refused, dictionaries)
    kept = np.ones(n, dtype=bool)
    kept[np.fromiter(refused, dtype=np.int64, count=len(refused))] = False
    keep = np.flatnonzero(kept)
    # A coerced value's row in the frame: its chunk row less the refused rows before it.
    findings = [
        _moved(f, int(np.searchsorted(keep, f.row))) for f in coerced if f.row not in refused
    ]
    frame = Frame({k: v[keep] for k, v in columns.items()}, len(keep), {}, findings)
    taken = pa.array(keep, type=pa.int64())
    kept_dictionaries = {k: d.take(taken) for k, d in dictionaries.items()}
    return CheckedChunk(frame, keep, refused, kept_dictionaries)


def subset(frame: Frame, rows: np.ndarray) -> Frame:
    """The frame's rows at `rows` (positions), without findings."""
    return Frame({k: v[rows] for k, v in frame.columns.items()}, len(rows), {}, [])


def _moved(f: Finding, row: int) -> Finding:
    return Finding(row, f.feature, f.value, f.rule, f.allowed, f.hint)


def _column(
    spec: ColumnSpec,
    column: pa.Array,
    refused: dict[int, list[Finding]],
    coerced: list[Finding],
    text_source: bool,
    arrow_strings: bool = False,
) -> np.ndarray:
    """The column as its numpy dtype; refusals and coercions noted by chunk row."""
    kind = column.type
    wanted = spec.type
    if wanted == "string" and (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
        if arrow_strings and not column.null_count:
            return _arrow_strings(column)
        return _with_nulls(spec, column, column.to_numpy(zero_copy_only=False), refused)
    if wanted in NUMERIC_TYPES and (pa.types.is_integer(kind) or pa.types.is_floating(kind)):
        return _numbers(spec, column, refused)
    if wanted == "boolean" and pa.types.is_boolean(kind):
        return _numbers(spec, column, refused)
    if text_source and wanted != "string" and pa.types.is_string(kind):
        try:  # CSV text: one vectorised reading; a value it cannot read takes the slow path
            cast = pc.cast(
                pc.utf8_lower(column) if wanted == "boolean" else column,
                _ARROW_OF["double" if wanted in NUMERIC_TYPES else wanted],
            )
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass
        else:
            return _numbers(spec, cast, refused)
    return _values(spec, column.to_pylist(), refused, coerced, text_source)


def _numbers(spec: ColumnSpec, column: pa.Array, refused: dict[int, list[Finding]]) -> np.ndarray:
    """A numeric or boolean Arrow column: nulls (and NaN) refused unless nullable."""
    values: np.ndarray = column.to_numpy(zero_copy_only=False)
    if values.dtype.kind == "f":
        missing = np.isnan(values)
    else:
        missing = np.zeros(len(values), dtype=bool)
        if column.null_count:
            missing = column.is_null().to_numpy(zero_copy_only=False)
    if spec.type in ("long", "integer") and values.dtype.kind == "f":
        with np.errstate(invalid="ignore"):
            fraction = ~missing & (values != np.floor(values))
        for i in np.flatnonzero(fraction).tolist():
            _refuse(refused, i, spec, float(values[i]), "wrong type number")
        values = np.where(fraction, 0.0, values)
    if missing.any():
        if not spec.nullable:
            for i in np.flatnonzero(missing).tolist():
                _refuse(refused, i, spec, None, "null is not allowed")
            values = np.where(missing, 0, values)
        elif spec.type != "double":  # nullable integers and booleans travel as float, as pandas
            return values.astype(np.float64)
    return values.astype(DTYPES[spec.type], copy=False)


def _arrow_strings(column: pa.Array) -> np.ndarray:
    """Null-free text as pandas reads it from Arrow: without a copy where pandas keeps text
    in Arrow (pandas 3, or its future.infer_string), else as numpy objects."""
    values = column.to_pandas().array
    if isinstance(values, pd.arrays.ArrowStringArray):
        return values  # type: ignore[return-value]  # indexes and compares as the numpy one
    text: np.ndarray = values.to_numpy(dtype=object)
    return text


def _from_dictionary(
    column: pa.DictionaryArray, categorical: bool, arrow_strings: bool
) -> Any | None:
    """Null-free dictionary text without a string made per row: for a model that only encodes
    it, a Categorical whose categories are Python strings (an object Index, which numpy takes
    by pointer); for numpy text, the dictionary's strings taken by index. None: decode it
    (nulls; a value the dictionary holds twice, which a Categorical's categories cannot; or
    Arrow-backed text, which pandas reads from the decoded column without a copy)."""
    if column.null_count or column.dictionary.null_count or (arrow_strings and not categorical):
        return None
    values = column.dictionary.to_pylist()
    codes = column.indices.to_numpy(zero_copy_only=False)
    if categorical:
        if len(set(values)) != len(values):
            return None
        dtype = pd.CategoricalDtype(pd.Index(values, dtype=object))
        return pd.Categorical.from_codes(codes, dtype=dtype)
    strings = np.empty(len(values), dtype=object)
    strings[:] = values
    return strings[codes]


def _with_nulls(
    spec: ColumnSpec, column: pa.Array, values: np.ndarray, refused: dict[int, list[Finding]]
) -> np.ndarray:
    if column.null_count and not spec.nullable:
        for i in np.flatnonzero(column.is_null().to_numpy(zero_copy_only=False)).tolist():
            _refuse(refused, i, spec, None, "null is not allowed")
    return values.astype(object, copy=False)


def _values(
    spec: ColumnSpec,
    values: list[Any],
    refused: dict[int, list[Finding]],
    coerced: list[Finding],
    text_source: bool,
) -> np.ndarray:
    """Value by value, as the request path reads JSON: what `coerce` reads is kept."""
    wanted = spec.type
    nullable_float = spec.nullable or wanted in ("double", "float")
    for i, v in enumerate(values):
        if v is None:
            if not spec.nullable:
                _refuse(refused, i, spec, None, "null is not allowed")
            values[i] = math.nan if wanted != "string" and nullable_float else None
            continue
        if _fits(wanted, v):
            continue
        fixed = coerce(wanted, v)
        if fixed is None:
            _refuse(refused, i, spec, v, f"wrong type {type(v).__name__}")
            values[i] = "" if wanted == "string" else 0
            continue
        if not (text_source and isinstance(v, str)):
            coerced.append(Finding(i, spec.name, v, "coerced", f"{wanted} (coerced to {fixed!r})"))
        values[i] = fixed
    if wanted == "string":
        out = np.empty(len(values), dtype=object)
        out[:] = values
        return out
    has_nan = any(isinstance(v, float) and math.isnan(v) for v in values)
    dtype = np.float64 if has_nan and wanted not in ("double", "float") else DTYPES[wanted]
    return np.asarray([0 if v is None else v for v in values], dtype=dtype)


def _fits(wanted: str, v: Any) -> bool:
    if wanted in ("double", "float"):
        return type(v) is float or type(v) is int
    if wanted in ("long", "integer"):
        return type(v) is int or (type(v) is float and v.is_integer())
    if wanted == "boolean":
        return type(v) is bool
    return type(v) is str


def _refuse(
    refused: dict[int, list[Finding]], row: int, spec: ColumnSpec, value: Any, problem: str
) -> None:
    rule = "null" if value is None else "wrong_type"
    refused.setdefault(row, []).append(
        Finding(row, spec.name, value, rule, f"{spec.type}: {problem}")
    )
