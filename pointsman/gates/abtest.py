"""A/B verdicts that stay valid however often they are looked at.

Each labelled prediction gives one value per row (correct or not, its log loss, its absolute
error, ...); an arm's metric is their mean. Intervals are always-valid: the normal-mixture
confidence sequence (Robbins; the mixture SPRT of Johari et al., "Peeking at A/B tests",
2017; asymptotic form of Waudby-Smith et al., 2021), so a dashboard refreshed every minute
does not inflate the false-positive rate the way a t-test re-run at each look does. For an
estimate with variance v and mixing variance tau^2 (set from the smallest effect worth
detecting), the half-width is

    sqrt( 2 v (v + tau^2) / tau^2 * log( sqrt((v + tau^2) / v) / alpha ) ).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from pointsman.errors import BadRequest
from pointsman.logstore.outcomes import Labelled
from pointsman.monitoring.quality import label_text

# metric: (higher is better, default smallest effect worth detecting)
PER_ROW = {
    "accuracy": (True, 0.02),
    "log_loss": (False, 0.02),
    "brier": (False, 0.01),
    "mae": (False, None),
    "mse": (False, None),
}


def check_metric(metric: str) -> None:
    if metric not in PER_ROW:
        raise BadRequest(
            f"The A/B test cannot use {metric!r}: use a metric that is a mean over rows, "
            f"{', '.join(PER_ROW)}."
        )


def half_width(variance: float, tau2: float, alpha: float) -> float:
    """Half-width of the always-valid (1 - alpha) interval of an estimate of `variance`."""
    if variance <= 0:
        return 0.0
    total = variance + tau2
    return math.sqrt(2 * variance * total / tau2 * math.log(math.sqrt(total / variance) / alpha))


def row_values(rows: list[Labelled], metric: str) -> np.ndarray:
    """One value per labelled row whose mean is `metric`."""
    check_metric(metric)
    if metric in ("mae", "mse"):
        err = np.array([float(r.prediction) - float(r.outcome) for r in rows])
        return np.abs(err) if metric == "mae" else err**2
    if metric == "accuracy":
        return np.array(
            [label_text(r.prediction) == label_text(r.outcome) for r in rows], dtype=float
        )
    values = []
    for r in rows:
        if r.probabilities is None or r.classes is None:
            raise BadRequest(f"{metric} needs probabilities; this model gives labels only.")
        labels = [label_text(c) for c in r.classes]
        truth = label_text(r.outcome)
        p = [float(x) for x in r.probabilities]
        if metric == "log_loss":
            chosen = p[labels.index(truth)] if truth in labels else 0.0
            values.append(-math.log(min(max(chosen, 1e-15), 1.0)))
        else:  # brier: squared error of the probability vector
            values.append(sum((q - (lab == truth)) ** 2 for q, lab in zip(p, labels, strict=True)))
    return np.array(values)


@dataclass(frozen=True)
class Estimate:
    """A mean with its always-valid interval."""

    n: int
    value: float | None
    low: float | None
    high: float | None

    def to_json(self) -> dict[str, Any]:
        return {"n": self.n, "value": self.value, "low": self.low, "high": self.high}


def estimate(values: np.ndarray, tau2: float, alpha: float) -> Estimate:
    n = len(values)
    if n < 2:
        return Estimate(n, float(values.mean()) if n else None, None, None)
    mean, var = float(values.mean()), float(values.var(ddof=1))
    h = half_width(var / n, tau2, alpha)
    return Estimate(n, mean, mean - h, mean + h)


def compare(
    baseline: np.ndarray,
    candidate: np.ndarray,
    metric: str,
    alpha: float = 0.05,
    mde: float | None = None,
) -> dict[str, Any]:
    """Candidate against baseline: each arm's interval, the difference's, the verdict, and
    the rows per arm still needed until the difference's half-width is below `mde`."""
    check_metric(metric)
    higher_better, default_mde = PER_ROW[metric]
    mde = mde or default_mde or _spread(baseline, candidate) * 0.1 or 1.0
    tau2 = mde**2
    arms = (estimate(baseline, tau2, alpha), estimate(candidate, tau2, alpha))
    out: dict[str, Any] = {
        "metric": metric, "alpha": alpha, "mde": mde,
        "baseline": arms[0].to_json(), "candidate": arms[1].to_json(),
    }  # fmt: skip
    n_a, n_b = len(baseline), len(candidate)
    if n_a < 2 or n_b < 2:
        out.update(difference=None, significant=False, verdict="not enough outcomes yet")
        out["needed_per_arm"] = None
        return out
    var_a, var_b = float(baseline.var(ddof=1)), float(candidate.var(ddof=1))
    diff = float(candidate.mean() - baseline.mean())
    h = half_width(var_a / n_a + var_b / n_b, tau2, alpha)
    out["difference"] = {"value": diff, "low": diff - h, "high": diff + h}
    significant = diff - h > 0 or diff + h < 0
    out["significant"] = significant
    if significant:
        better = (diff > 0) == higher_better
        out["verdict"] = "candidate better" if better else "candidate worse"
    elif h < mde:
        out["verdict"] = "no difference as large as the MDE"
    else:
        out["verdict"] = "no significant difference yet"
    out["needed_per_arm"] = _needed(var_a, var_b, n_a, n_b, tau2, alpha, mde)
    return out


def _needed(
    var_a: float, var_b: float, n_a: int, n_b: int, tau2: float, alpha: float, mde: float
) -> int:
    """More rows per arm (at the current split) until the half-width is below `mde`."""

    def width(k: float) -> float:
        return half_width(var_a / (n_a * k) + var_b / (n_b * k), tau2, alpha)

    if width(1.0) <= mde:
        return 0
    low, high = 1.0, 2.0
    while width(high) > mde and high < 1e9:
        low, high = high, high * 2
    for _ in range(60):
        middle = (low + high) / 2
        low, high = (middle, high) if width(middle) > mde else (low, middle)
    return math.ceil(max(n_a, n_b) * (high - 1))


def _spread(a: np.ndarray, b: np.ndarray) -> float:
    both = np.concatenate([a, b])
    return float(both.std()) if len(both) > 1 else 0.0
