"""Online quality: predictions scored against their outcomes, per version, role and window.

Classifiers: accuracy, log loss, ROC AUC (one-vs-rest past two classes), Brier score and
calibration error (ECE over the top class's probability). Regressors: MAE, RMSE and bias
(mean of prediction - outcome). Each with the number of labelled predictions and how late
their outcomes came. scikit-learn computes the metrics; a metric that cannot be computed
on the rows at hand (AUC with one class present) is None, never a made-up number.
"""

from __future__ import annotations

import math
import warnings
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy.engine import Engine

from pointsman.logstore.outcomes import Labelled, OutcomeBook, labelled_rows, load_outcomes
from pointsman.logstore.query import LogQuery
from pointsman.routing.revisions import RouteBook

CLASSIFIER_METRICS = ("accuracy", "log_loss", "auc", "brier", "calibration_error")
REGRESSOR_METRICS = ("mae", "rmse", "bias")
ECE_BINS = 10


def is_regression(rows: list[Labelled]) -> bool:
    """Numbers on a scale: float predictions without classes, numeric outcomes."""
    first = rows[0]
    if first.classes is not None or not isinstance(first.prediction, float):
        return False
    return all(_number(r.outcome) is not None for r in rows)


def score(rows: list[Labelled]) -> dict[str, Any]:
    """The quality figures of `rows` (one version, role and window)."""
    out: dict[str, Any] = {"labelled": len(rows)}
    if not rows:
        return out
    late = np.array([r.lateness_s for r in rows])
    out["lateness_s"] = {
        "p50": float(np.median(late)),
        "p95": float(np.quantile(late, 0.95)),
        "max": float(late.max()),
    }
    if is_regression(rows):
        out["kind"] = "regression"
        out.update(_regression(rows))
    else:
        out["kind"] = "classification"
        out.update(_classification(rows))
    return out


def _regression(rows: list[Labelled]) -> dict[str, float]:
    from sklearn.metrics import mean_absolute_error, mean_squared_error

    y = np.array([_number(r.outcome) for r in rows], dtype=float)
    p = np.array([float(r.prediction) for r in rows])
    return {
        "mae": float(mean_absolute_error(y, p)),
        "rmse": math.sqrt(float(mean_squared_error(y, p))),
        "bias": float(np.mean(p - y)),
    }


def _classification(rows: list[Labelled]) -> dict[str, float | None]:
    from sklearn.metrics import accuracy_score

    y = np.array([label_text(r.outcome) for r in rows])
    predicted = np.array([label_text(r.prediction) for r in rows])
    out: dict[str, float | None] = {"accuracy": float(accuracy_score(y, predicted))}
    out.update(dict.fromkeys(CLASSIFIER_METRICS[1:]))
    with_probs = [r for r in rows if r.probabilities is not None and r.classes is not None]
    if len(with_probs) == len(rows):
        out.update(_probabilistic(with_probs))
    return out


def _probabilistic(rows: list[Labelled]) -> dict[str, float | None]:
    from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score

    labels = [label_text(c) for c in rows[0].classes or []]
    known = [r for r in rows if label_text(r.outcome) in labels and r.classes == rows[0].classes]
    if not known:
        return {}
    y = np.array([label_text(r.outcome) for r in known])
    probs = np.array([r.probabilities for r in known], dtype=float)
    probs = probs / probs.sum(axis=1, keepdims=True).clip(min=1e-12)
    out: dict[str, float | None] = {
        "log_loss": float(log_loss(y, probs, labels=labels)),
        "calibration_error": expected_calibration_error(y, probs, labels),
    }
    present = set(y.tolist())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if len(labels) == 2:
            positive = y == labels[1]
            out["brier"] = float(brier_score_loss(positive, probs[:, 1]))
            out["auc"] = float(roc_auc_score(positive, probs[:, 1])) if len(present) == 2 else None
        elif present == set(labels):
            out["auc"] = float(roc_auc_score(y, probs, multi_class="ovr", labels=labels))
    return out


def expected_calibration_error(y: np.ndarray, probs: np.ndarray, labels: list[str]) -> float:
    """Mean |accuracy - confidence| over equal-width bins of the top class's probability,
    weighted by how many predictions fall in each bin."""
    confidence = probs.max(axis=1)
    correct = np.array(labels)[probs.argmax(axis=1)] == y
    bins = np.minimum((confidence * ECE_BINS).astype(int), ECE_BINS - 1)
    total = 0.0
    for b in np.unique(bins):
        inside = bins == b
        total += inside.sum() * abs(correct[inside].mean() - confidence[inside].mean())
    return float(total / len(y))


@dataclass(frozen=True)
class QualityQuery:
    """Which predictions to score: a model, a span of prediction times, windows within it."""

    model: str
    since: datetime
    until: datetime
    window_s: float | None = None  # None: one window over the whole span
    version: int | None = None
    role: str | None = None


def quality_report(engine: Engine, routes: RouteBook, query: QualityQuery) -> dict[str, Any]:
    """Quality per version, role and window, with the outcomes seen and still waiting."""
    book = load_outcomes(engine, query.model)
    rows = labelled(engine, outcome_key_of(routes, query.model), query, book)
    groups: dict[tuple[int, str, int], list[Labelled]] = defaultdict(list)
    span_s = max((query.until - query.since).total_seconds(), 1.0)
    width = query.window_s or span_s
    for r in rows:
        index = int((r.time - query.since).total_seconds() // width)
        groups[(r.version, r.role, index)].append(r)
    out = []
    for (version, role, index), members in sorted(groups.items()):
        start = query.since + timedelta(seconds=index * width)
        end = min(start + timedelta(seconds=width), query.until)
        window = {"start": start.isoformat(), "end": end.isoformat()}
        out.append({"version": version, "role": role, "window": window, **score(members)})
    return {
        "model": query.model,
        "since": query.since.isoformat(),
        "until": query.until.isoformat(),
        "window_s": width,
        "outcomes_stored": len(book),
        "groups": out,
    }


def outcome_key_of(routes: RouteBook, model: str) -> str | None:
    """The business key the route in force lets outcomes name, if any."""
    route = routes.find(model)
    return route.policy.outcome_key if route is not None else None


def labelled(
    engine: Engine, key: str | None, query: QualityQuery, book: OutcomeBook | None = None
) -> list[Labelled]:
    """The labelled rows of predictions `query` selects (answered ones only).

    Only the records that can have an outcome are read: /metrics and the alerts ask every
    minute, and a day of a busy model's predictions is millions of records. Outcomes sent
    by request id select theirs; a business key's are found only in the inputs.
    """
    book = book if book is not None else load_outcomes(engine, query.model)
    if not len(book):
        return []
    log_query = LogQuery(
        model=query.model, version=query.version, role=query.role,
        since=query.since, until=query.until, with_outcome=not key or book.by_request_id_only,
    )  # fmt: skip
    return list(labelled_rows(engine, log_query, book, key))


def window_quality(
    engine: Engine, key: str | None, model: str, window_s: float, now: datetime | None = None
) -> dict[str, Any]:
    """Quality of the primary answers of the last `window_s` seconds, every version together
    (for alert rules: a drop with unchanged inputs is concept drift)."""
    now = now or datetime.now(UTC)
    query = QualityQuery(model, now - timedelta(seconds=window_s), now, role="primary")
    return score(labelled(engine, key, query))


def quality_by_version(
    engine: Engine, key: str | None, model: str, window_s: float, now: datetime | None = None
) -> dict[tuple[int, str], dict[str, Any]]:
    """Quality of each (version, role) over the last `window_s` seconds (for /metrics)."""
    now = now or datetime.now(UTC)
    query = QualityQuery(model, now - timedelta(seconds=window_s), now)
    groups: dict[tuple[int, str], list[Labelled]] = defaultdict(list)
    for r in labelled(engine, key, query):
        groups[(r.version, r.role)].append(r)
    return {k: score(v) for k, v in sorted(groups.items())}


def label_text(value: Any) -> str:
    """Labels compared as text: the outcome 1 (or "1", or 1.0) is the class 1."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None
