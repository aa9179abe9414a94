"""Checks of decoded inputs against a version's reference profile, prepared once per version.

`ProfileChecks.build` turns the stored profile into bounds and sets; `check` walks a Frame.
A batch of a few rows takes a scalar path (a numpy call on a one-element array costs more
than the Python comparison); larger batches are checked column by column with numpy.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from pointsman.types import NUMERIC_TYPES, Finding, Frame, Signature
from pointsman.validation.policy import ROW_FEATURE

SCALAR_ROWS = 8  # up to this many rows, plain Python beats numpy per column
HASHED_ROWS = 2048  # up to this many, a Python set lookup beats pandas.isin (measured)
MAX_SHOWN_CATEGORIES = 8
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True)
class NumericCheck:
    name: str
    low: float
    high: float
    nulls_seen: bool
    allowed: str


@dataclass(frozen=True)
class CategoryCheck:
    name: str
    categories: frozenset[str]
    near: dict[str, str]  # normalized spelling → the training category
    check_set: bool  # False for identifier-like features: any value is new there
    nulls_seen: bool
    allowed: str


@dataclass
class ProfileChecks:
    """Every per-feature and per-row check of one version."""

    numeric: list[NumericCheck] = field(default_factory=list)
    categorical: list[CategoryCheck] = field(default_factory=list)
    row_features: list[str] = field(default_factory=list)

    @classmethod
    def build(
        cls, signature: Signature, profile: dict[str, Any] | None, tolerance: float
    ) -> ProfileChecks:
        checks = cls(row_features=signature.names if len(signature.names) >= 3 else [])
        features = (profile or {}).get("features", {})
        for spec in signature.inputs:
            stats = features.get(spec.name)
            if not stats:
                continue
            nulls_seen = float(stats.get("null_rate") or 0.0) > 0
            if spec.type in NUMERIC_TYPES and stats.get("kind") == "numeric":
                checks.numeric.append(_numeric_check(spec.name, stats, tolerance, nulls_seen))
            elif spec.type == "string" and stats.get("kind") == "categorical":
                checks.categorical.append(_category_check(spec.name, stats, nulls_seen))
        return checks

    def check(self, frame: Frame, dictionaries: Mapping[str, Any] | None = None) -> list[Finding]:
        """Every finding in `frame`, in row order within each feature. `dictionaries`: text
        columns as Arrow dictionaries over the frame's rows (a batch job's Parquet input),
        whose categories are looked up once per distinct value; the same findings."""
        findings: list[Finding] = []
        n = frame.n_rows
        columns = frame.columns
        scalar = n <= SCALAR_ROWS
        for c in self.numeric:
            col = columns.get(c.name)
            if col is None:
                continue
            if scalar:
                _numeric_scalar(c, col, n, findings)
            else:
                _numeric_vector(c, col, findings)
        for k in self.categorical:
            col = columns.get(k.name)
            if col is not None:
                _categories(k, col, findings, (dictionaries or {}).get(k.name))
        if self.row_features:
            _rows(self.row_features, columns, n, findings)
        return findings


def _numeric_check(
    name: str, stats: dict[str, Any], tolerance: float, nulls_seen: bool
) -> NumericCheck:
    if not stats.get("count"):
        return NumericCheck(name, -math.inf, math.inf, nulls_seen, "any number")
    low, high = float(stats["min"]), float(stats["max"])
    pad = tolerance * ((high - low) or max(abs(low), 1.0))
    allowed = f"{_num(low - pad)} to {_num(high + pad)} (training {_num(low)} to {_num(high)})"
    return NumericCheck(name, low - pad, high + pad, nulls_seen, allowed)


def _category_check(name: str, stats: dict[str, Any], nulls_seen: bool) -> CategoryCheck:
    shares: dict[str, float] = stats.get("categories") or {}
    categories = frozenset(shares)
    total = int(stats.get("n_categories") or len(categories))
    count = int(stats.get("count") or 0)
    # A truncated set, or one value per row or so, is an identifier or free text, not a category.
    check_set = total == len(categories) and not (count >= 20 and total > count / 2)
    by_share = sorted(categories, key=lambda c: (-shares[c], c))  # the commonest first
    near: dict[str, str] = {}
    for category in by_share:
        near.setdefault(normalize(category), category)
    shown = by_share[:MAX_SHOWN_CATEGORIES]
    more = f" and {len(categories) - len(shown)} more" if len(categories) > len(shown) else ""
    allowed = f"one of {', '.join(map(repr, shown))}{more}" if check_set else "any text"
    return CategoryCheck(name, categories, near, check_set, nulls_seen, allowed)


def normalize(text: str) -> str:
    """How a near miss is recognised: case, surrounding and repeated spaces, - and _ ignored."""
    return _SPACES.sub(" ", text.replace("_", " ").replace("-", " ")).strip().casefold()


def _numeric_scalar(c: NumericCheck, col: np.ndarray, n: int, out: list[Finding]) -> None:
    low, high = c.low, c.high
    for i in range(n):
        v = float(col[i])
        if low <= v <= high:
            continue
        _numeric_finding(c, i, v, col[i], out)


def _numeric_vector(c: NumericCheck, col: np.ndarray, out: list[Finding]) -> None:
    values = col.astype(np.float64, copy=False)
    with np.errstate(invalid="ignore"):
        outside = ~((values >= c.low) & (values <= c.high))
    for i in np.flatnonzero(outside).tolist():
        _numeric_finding(c, i, float(values[i]), col[i], out)


def _numeric_finding(c: NumericCheck, i: int, v: float, raw: Any, out: list[Finding]) -> None:
    """`v` compared as a float; `raw` reported as sent (an integer stays one)."""
    if math.isnan(v):  # JSON null arrives as NaN in a numeric column
        if not c.nulls_seen:
            out.append(
                Finding(i, c.name, None, "unexpected_null", "a number (no nulls in training)")
            )
    elif math.isinf(v):
        out.append(Finding(i, c.name, v, "not_finite", f"a finite number, {c.allowed}"))
    else:
        out.append(
            Finding(
                i, c.name, raw.item() if hasattr(raw, "item") else raw, "out_of_range", c.allowed
            )
        )


def _categories(
    k: CategoryCheck, col: np.ndarray, out: list[Finding], dictionary: Any = None
) -> None:
    categories = k.categories
    if len(col) <= SCALAR_ROWS:
        values = col.tolist()
        rows: Iterable[int] = range(len(values))
    elif dictionary is not None and k.check_set and len(col) > HASHED_ROWS:
        values, rows = col, np.flatnonzero(~_dictionary_known(k, dictionary)).tolist()
    else:  # only the suspects are read as Python values
        values, rows = col, _category_suspects(k, col)
    for i in rows:
        v = values[i]
        if v is None:
            if not k.nulls_seen:
                out.append(Finding(i, k.name, None, "unexpected_null", f"{k.allowed} (no nulls)"))
            continue
        if not k.check_set or v in categories:
            continue
        meant = k.near.get(normalize(v))
        if meant is not None:
            out.append(
                Finding(i, k.name, v, "near_miss_category", k.allowed, f"did you mean {meant!r}?")
            )
        else:
            out.append(Finding(i, k.name, v, "unknown_category", k.allowed))


def _category_suspects(k: CategoryCheck, col: np.ndarray) -> list[int]:
    """Rows that can have a finding (a superset). Up to HASHED_ROWS a set lookup per value in
    Python; above, pandas' hash lookup in C (it costs ~60 µs to set up, which a request of a
    few dozen rows and several categorical features paid per feature)."""
    if len(col) <= HASHED_ROWS:
        values = col.tolist()
        if not k.check_set:
            return [i for i, v in enumerate(values) if v is None]
        categories = k.categories
        return [i for i, v in enumerate(values) if v not in categories]
    # A numpy column stays of objects: pandas would otherwise copy it into its own strings.
    series = pd.Series(col, dtype=object if isinstance(col, np.ndarray) else None, copy=False)
    if not k.check_set:
        return list(np.flatnonzero(series.isna().to_numpy()).tolist())
    if isinstance(col, pd.arrays.ArrowStringArray):
        known = _arrow_known(k, col)
    else:
        known = series.isin(list(k.categories)).to_numpy()
    return list(np.flatnonzero(~known).tolist())


def _arrow_known(k: CategoryCheck, col: pd.arrays.ArrowStringArray) -> np.ndarray:
    """Whether each value is a training category, looked up by Arrow on the text as it is
    stored (pandas' isin costs half as much again around the same lookup); nulls are not."""
    import pyarrow as pa  # loaded already: the column is Arrow-backed
    import pyarrow.compute as pc

    values = pa.array(col)  # the column's own Arrow data, not a copy
    categories = pa.array(sorted(k.categories), type=values.type)
    known: np.ndarray = pc.is_in(values, value_set=categories).to_numpy(zero_copy_only=False)
    return known


def _dictionary_known(k: CategoryCheck, dictionary: Any) -> np.ndarray:
    """As `_arrow_known`, each distinct value looked up once: the rows take their value's
    answer by its index (a null's is null, so not known)."""
    import pyarrow as pa  # loaded already: the column is an Arrow dictionary
    import pyarrow.compute as pc

    values = dictionary.dictionary
    categories = pa.array(sorted(k.categories), type=values.type)
    answers = pc.is_in(values, value_set=categories)
    known = pc.fill_null(answers.take(dictionary.indices), False)
    out: np.ndarray = known.to_numpy(zero_copy_only=False)
    return out


def _rows(names: list[str], columns: dict[str, np.ndarray], n: int, out: list[Finding]) -> None:
    """Rows whose every feature is 0/empty/null, or the same value throughout."""
    cols = [columns[name] for name in names if name in columns]
    if len(cols) < 3:
        return
    for i in range(n) if n <= SCALAR_ROWS else _row_candidates(cols):
        first = _canonical(cols[0][i])
        if first in (None, "0", "") and all(
            _canonical(col[i]) in (None, "0", "") for col in cols[1:]
        ):
            out.append(Finding(i, ROW_FEATURE, first, "default_row", "features that are not all 0"))
            continue
        if first is not None and all(_canonical(col[i]) == first for col in cols[1:]):
            out.append(
                Finding(
                    i, ROW_FEATURE, first, "constant_row", "features that differ from each other"
                )
            )


def _row_candidates(cols: list[np.ndarray]) -> list[int]:
    """Rows whose numeric features are all 0/null or all one value: the only rows that can
    be default or constant rows (a superset; the exact test follows)."""
    numeric = [c for c in cols if c.dtype.kind in "fiub"]
    if not numeric:
        return list(range(len(cols[0])))
    # Column by column, so that no copy of every row and feature is made; out= reuses one
    # mask rather than allocating one per column.
    first = numeric[0].astype(np.float64, copy=False)
    first_nan = np.isnan(first)
    same = np.ones(len(first), dtype=bool)
    default = (first == 0) | first_nan
    hit = np.empty(len(first), dtype=bool)
    for c in numeric[1:]:
        values = c.astype(np.float64, copy=False)
        nan = np.isnan(values)
        np.equal(values, first, out=hit)
        hit |= nan & first_nan
        same &= hit
        np.equal(values, 0, out=hit)
        hit |= nan
        default &= hit
        if not (same.any() or default.any()):  # no later column can make a candidate
            return []
    return list(np.flatnonzero(same | default).tolist())


def _canonical(value: Any) -> str | None:
    """A value as comparable text: 1, 1.0 and True-less numbers alike; NaN and None as None."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool | np.bool_):
        return str(bool(value)).lower()
    number = float(value)
    if math.isnan(number):
        return None
    return repr(int(number)) if number.is_integer() else repr(number)


def _num(value: float) -> str:
    return f"{value:.6g}"
