"""Drift of a window of inputs (or outputs) against a version's reference profile.

Numeric features: PSI over the reference's quantile bins (the outer bins open-ended, so a
shift past the training range lands in them), and a Kolmogorov-Smirnov test against the
training CDF the profile's percentiles describe (for continuous features). Categorical
features: PSI over the categories (values never seen in training pooled as one "new"
bucket) and a chi-square goodness-of-fit test.
A window below `min_rows` is reported as too small, never as drift.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

# A share of 0 would make PSI infinite: empty bins count as this share instead.
EPSILON = 1e-4
NEW = "\x00new"  # the bucket of categories never seen in training
MIN_DISTINCT_FOR_KS = 50  # of the reference's 101 percentiles


@dataclass(frozen=True)
class Thresholds:
    """PSI grades (the common industry reading: < 0.1 stable, 0.1-0.25 moderate, > 0.25 major)."""

    warn: float = 0.1
    alert: float = 0.25
    min_rows: int = 100

    def grade(self, psi: float | None) -> str:
        if psi is None:
            return "too_small"
        return "alert" if psi >= self.alert else "warn" if psi >= self.warn else "ok"


@dataclass(frozen=True)
class FeatureDrift:
    """One feature's drift over one window."""

    feature: str
    kind: str  # numeric | categorical
    rows: int
    psi: float | None
    grade: str  # ok | warn | alert | too_small
    test: str  # ks | chi2 | none
    statistic: float | None = None
    p_value: float | None = None
    top_change: str = ""  # the bin or category whose share moved most, for people

    def to_json(self) -> dict[str, Any]:
        return {
            "feature": self.feature,
            "kind": self.kind,
            "rows": self.rows,
            "psi": self.psi,
            "grade": self.grade,
            "test": self.test,
            "statistic": self.statistic,
            "p_value": self.p_value,
            "top_change": self.top_change,
        }


def psi(expected: Sequence[float] | np.ndarray, actual: Sequence[float] | np.ndarray) -> float:
    """Population stability index of two share vectors over the same buckets."""
    e = np.clip(np.asarray(expected, dtype=np.float64), EPSILON, None)
    a = np.clip(np.asarray(actual, dtype=np.float64), EPSILON, None)
    e, a = e / e.sum(), a / a.sum()
    return float(np.sum((a - e) * np.log(a / e)))


def numeric_drift(
    feature: str, values: np.ndarray, reference: dict[str, Any], thresholds: Thresholds
) -> FeatureDrift:
    """PSI on the reference quantile bins, and KS against the reference quantiles if kept."""
    finite = values[np.isfinite(values)]
    n = len(finite)
    edges = reference.get("bin_edges") or []
    shares = reference.get("bin_fractions") or []
    if n < thresholds.min_rows or len(edges) < 2:
        return FeatureDrift(feature, "numeric", n, None, "too_small", "none")
    inner = np.asarray(edges[1:-1], dtype=np.float64)
    # np.histogram's last bin is closed; digitize with open outer bins matches it for
    # values inside the range and puts values outside into the first or last bin.
    counts = np.bincount(np.searchsorted(inner, finite, side="right"), minlength=len(shares))
    actual = counts / n
    value = psi(shares, actual)
    moved = int(np.argmax(np.abs(actual - np.asarray(shares))))
    top = (
        f"{edges[moved]:.4g} to {edges[moved + 1]:.4g}: "
        f"{shares[moved]:.1%} in training, {actual[moved]:.1%} now"
    )
    statistic = p_value = None
    test = "none"
    quantiles = np.asarray(reference.get("quantiles") or [], dtype=np.float64)
    # KS needs a continuous reference: a feature with few distinct values (counts, codes)
    # would show its steps as drift.
    if len(np.unique(quantiles)) >= MIN_DISTINCT_FOR_KS:
        levels = np.linspace(0.0, 1.0, len(quantiles))
        reference_cdf = lambda x: np.interp(x, quantiles, levels)  # noqa: E731
        result = stats.kstest(finite, reference_cdf)
        statistic, p_value, test = float(result.statistic), float(result.pvalue), "ks"
    return FeatureDrift(
        feature, "numeric", n, value, thresholds.grade(value), test, statistic, p_value, top
    )


def categorical_drift(
    feature: str, values: Sequence[Any], reference: dict[str, Any], thresholds: Thresholds
) -> FeatureDrift:
    """PSI over the training categories plus a bucket for new ones, and a chi-square test."""
    present = [str(v) for v in values if v is not None]
    n = len(present)
    expected_shares: dict[str, float] = dict(reference.get("categories") or {})
    if n < thresholds.min_rows or not expected_shares:
        return FeatureDrift(feature, "categorical", n, None, "too_small", "none")
    known = set(expected_shares)
    counts = Counter(v if v in known else NEW for v in present)
    buckets = [*expected_shares, NEW]
    expected = np.array([expected_shares.get(b, 0.0) for b in buckets])
    actual = np.array([counts.get(b, 0) / n for b in buckets])
    value = psi(expected, actual)
    moved = int(np.argmax(np.abs(actual - expected)))
    name = "new categories" if buckets[moved] == NEW else repr(buckets[moved])
    top = f"{name}: {expected[moved]:.1%} in training, {actual[moved]:.1%} now"
    smoothed = np.clip(expected, EPSILON, None)
    result = stats.chisquare(actual * n, smoothed / smoothed.sum() * n)
    return FeatureDrift(
        feature,
        "categorical",
        n,
        value,
        thresholds.grade(value),
        "chi2",
        float(result.statistic),
        float(result.pvalue),
        top,
    )


def feature_drift(
    feature: str, values: Sequence[Any] | np.ndarray, reference: dict[str, Any], t: Thresholds
) -> FeatureDrift:
    """Drift of one feature's window, by the kind of its reference."""
    if reference.get("kind") == "numeric":
        array = np.array([math.nan if v is None else v for v in values], dtype=np.float64)
        return numeric_drift(feature, array, reference, t)
    return categorical_drift(feature, list(values), reference, t)


def window_drift(
    columns: Mapping[str, Sequence[Any]], profile: dict[str, Any] | None, t: Thresholds
) -> list[FeatureDrift]:
    """Drift of every profiled feature present in a window of inputs."""
    features = (profile or {}).get("features", {})
    return [
        feature_drift(name, columns[name], reference, t)
        for name, reference in features.items()
        if name in columns
    ]
