"""The differential test: two versions' answers on one test set, row by row and on average.

Regressors: differences of the predictions (and agreement within the route's tolerance).
Classifiers: label flips with examples, and differences of the class probabilities. Both:
the feature segments where the answers moved most, and each side's quality on the target
when the test set has one. Thresholds turn the report into a pass or a fail.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from pointsman.logstore.outcomes import Labelled
from pointsman.monitoring.quality import score
from pointsman.routing.agreement import Agreement, rows_agree
from pointsman.types import Outputs

EXAMPLES = 5
SEGMENTS = 5
QUANTILE_BINS = 4


@dataclass(frozen=True)
class DiffLimits:
    """Past these the differential test fails (None: not checked)."""

    max_flip_rate: float | None = None
    max_mean_abs_diff: float | None = None


def diff_report(
    data: pd.DataFrame,
    a: Outputs,
    b: Outputs,
    names: tuple[str, str],
    agreement: Agreement,
    target: str | None = None,
    limits: DiffLimits = DiffLimits(),
) -> dict[str, Any]:
    """The report of B against A on `data` (one answer per row each)."""
    regression = a.classes is None and np.asarray(a.predictions).dtype.kind == "f"
    old, new = np.asarray(a.predictions), np.asarray(b.predictions)
    agree = rows_agree(old, new, agreement, a.probabilities, b.probabilities, regression)
    report: dict[str, Any] = {
        "a": names[0], "b": names[1], "rows": len(data),
        "kind": "regression" if regression else "classification",
        "agreement": float(agree.mean()) if len(agree) else None,
        "tolerance": agreement.to_json(),
    }  # fmt: skip
    if regression:
        change = new.astype(float) - old.astype(float)
        report.update(_spread(change))
        moved = np.abs(change)
    else:
        flipped = np.array([str(x) != str(y) for x, y in zip(old, new, strict=True)])
        report["flip_rate"] = float(flipped.mean()) if len(flipped) else 0.0
        report["flips"] = _flips(old, new, flipped)
        report["examples"] = _examples(data, old, new, flipped)
        moved = flipped.astype(float)
        probs = _probability_change(a, b)
        if probs is not None:
            report.update(_spread(probs, prefix="probability_"))
            report["mean_abs_diff"] = report["probability_mean_abs_diff"]
            moved = probs
    report["segments"] = segments(data.drop(columns=[target] if target else []), moved)
    if target is not None and target in data.columns:
        report["quality"] = {
            names[0]: score(_labelled(a, data[target])),
            names[1]: score(_labelled(b, data[target])),
        }
    report["failures"] = failures(report, limits)
    report["passed"] = not report["failures"]
    return report


def failures(report: dict[str, Any], limits: DiffLimits) -> list[str]:
    """Each threshold the report is beyond (`at` the threshold passes)."""
    out = []
    flip = report.get("flip_rate")
    if limits.max_flip_rate is not None and flip is not None and flip > limits.max_flip_rate:
        out.append(f"flip rate {flip:.2%} > {limits.max_flip_rate:.2%}")
    mad = report.get("mean_abs_diff")
    if limits.max_mean_abs_diff is not None and mad is not None and mad > limits.max_mean_abs_diff:
        out.append(f"mean absolute difference {mad:.4g} > {limits.max_mean_abs_diff:.4g}")
    return out


def _spread(change: np.ndarray, prefix: str = "") -> dict[str, float]:
    moved = np.abs(change)
    if not len(moved):
        return {}
    return {
        f"{prefix}mean_diff": float(change.mean()),
        f"{prefix}mean_abs_diff": float(moved.mean()),
        f"{prefix}p95_abs_diff": float(np.quantile(moved, 0.95)),
        f"{prefix}max_abs_diff": float(moved.max()),
    }


def _probability_change(a: Outputs, b: Outputs) -> np.ndarray | None:
    """Per row, the largest change of any class's probability (classes both have)."""
    if a.probabilities is None or b.probabilities is None or a.classes is None or not b.classes:
        return None
    index = {str(c): j for j, c in enumerate(b.classes)}
    pairs = [(i, index[str(c)]) for i, c in enumerate(a.classes) if str(c) in index]
    if not pairs:
        return None
    old = np.asarray(a.probabilities)[:, [i for i, _ in pairs]]
    new = np.asarray(b.probabilities)[:, [j for _, j in pairs]]
    return np.asarray(np.abs(new - old).max(axis=1))


def _flips(old: np.ndarray, new: np.ndarray, flipped: np.ndarray) -> list[dict[str, Any]]:
    pairs = pd.Series([f"{x}\0{y}" for x, y in zip(old[flipped], new[flipped], strict=True)])
    out = []
    for pair, n in pairs.value_counts().items():
        before, after = str(pair).split("\0")
        out.append({"from": before, "to": after, "rows": int(n)})
    return out


def _examples(
    data: pd.DataFrame, old: np.ndarray, new: np.ndarray, flipped: np.ndarray
) -> list[dict[str, Any]]:
    rows = np.flatnonzero(flipped)[:EXAMPLES]
    return [
        {"row": int(i), "a": _plain(old[i]), "b": _plain(new[i]),
         "inputs": {str(k): _plain(v) for k, v in data.iloc[int(i)].items()}}
        for i in rows
    ]  # fmt: skip


def segments(features: pd.DataFrame, moved: np.ndarray) -> list[dict[str, Any]]:
    """The feature segments (numeric quartiles, categories) where answers moved most."""
    if not len(moved):
        return []
    found: list[dict[str, Any]] = []
    for name in features.columns:
        column = features[name]
        if pd.api.types.is_numeric_dtype(column) and column.nunique() > QUANTILE_BINS:
            groups = pd.qcut(column, QUANTILE_BINS, duplicates="drop").astype(str)
        else:
            groups = column.astype(str)
        frame = pd.DataFrame({"segment": groups.to_numpy(), "moved": moved})
        for segment, part in frame.groupby("segment", observed=True)["moved"]:
            found.append(
                {"feature": str(name), "segment": str(segment), "rows": len(part),
                 "mean_change": float(part.mean())}
            )  # fmt: skip
    found.sort(key=lambda s: (-float(s["mean_change"]), -int(s["rows"])))
    return found[:SEGMENTS]


def _labelled(outputs: Outputs, target: pd.Series) -> list[Labelled]:
    now = datetime.now(UTC)
    probs = outputs.probabilities
    return [
        Labelled(
            version=0, role="test", time=now, prediction=_plain(p),
            probabilities=None if probs is None else [float(x) for x in probs[i]],
            classes=outputs.classes, outcome=_plain(y), lateness_s=0.0,
        )
        for i, (p, y) in enumerate(zip(outputs.predictions, target.tolist(), strict=True))
    ]  # fmt: skip


def _plain(value: Any) -> Any:
    item = getattr(value, "item", None)
    return item() if callable(item) else value
