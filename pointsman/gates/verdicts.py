"""A/B verdicts and the canary's quality gate, read from the prediction log and outcomes."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.engine import Engine

from pointsman.errors import BadRequest
from pointsman.gates.abtest import PER_ROW, compare, row_values
from pointsman.logstore.outcomes import Labelled, load_outcomes
from pointsman.monitoring.quality import QualityQuery, is_regression, labelled, score
from pointsman.routing import Route
from pointsman.routing.revisions import RouteBook

GATE_METRICS = ("accuracy", "auc", "brier", "calibration_error", "log_loss", "mae", "rmse")
# What a quality gate reads (the admin API's schema shows it too).
GATE = rf"^\s*({'|'.join(GATE_METRICS)})\s*(>=|<=)\s*primary\s*(?:([+-])\s*(\d+(?:\.\d*)?))?\s*$"
_GATE = re.compile(r"^\s*([a-z_]+)\s*(>=|<=)\s*primary\s*(?:([+-])\s*(\d+(?:\.\d*)?))?\s*$")
GATE_FORM = 'METRIC >= primary - MARGIN (or <=, +), e.g. "auc >= primary - 0.01"'


@dataclass(frozen=True)
class QualityGate:
    """`auc >= primary - 0.01`: the candidate may be at most `margin` worse than the primary."""

    metric: str
    higher_is_better: bool
    margin: float

    @classmethod
    def parse(cls, text: str) -> QualityGate:
        match = _GATE.match(text)
        if not match:
            raise BadRequest(f"Quality gate {text!r} is not understood; write {GATE_FORM}.")
        metric, op, sign, number = match.groups()
        if metric not in GATE_METRICS:
            raise BadRequest(
                f"Quality gate metric {metric!r} is unknown; use one of {', '.join(GATE_METRICS)}."
            )
        margin = float(number or 0)
        if (op == ">=" and sign == "+") or (op == "<=" and sign == "-"):
            margin = -margin  # a demand to be better by that much
        return cls(metric, op == ">=", margin)


def arm_rows(
    engine: Engine, key: str | None, model: str, versions: list[int], since: datetime,
    until: datetime,
) -> dict[int, list[Labelled]]:  # fmt: skip
    """The labelled primary answers of each version over the span."""
    book = load_outcomes(engine, model)
    return {
        v: labelled(engine, key, QualityQuery(model, since, until, version=v, role="primary"), book)
        for v in versions
    }


def ab_report(
    rows: dict[int, list[Labelled]], baseline: int, metric: str | None, alpha: float,
    mde: float | None,
) -> dict[str, Any]:  # fmt: skip
    """Each arm against the baseline arm on a per-row metric."""
    every = [r for arm in rows.values() for r in arm]
    if metric is None:
        metric = "mae" if every and is_regression(every) else "accuracy"
    base = row_values(rows.get(baseline, []), metric)
    arms = []
    for version, arm in sorted(rows.items()):
        if version == baseline:
            continue
        result = compare(base, row_values(arm, metric), metric, alpha, mde)
        arms.append({"version": version, **result})
    return {"baseline": baseline, "metric": metric, "alpha": alpha, "comparisons": arms}


def gate_failure(
    gate: QualityGate, baseline: list[Labelled], candidate: list[Labelled], min_outcomes: int,
    alpha: float = 0.05,
) -> str | None:  # fmt: skip
    """Why the candidate fails the quality gate, or None (also while outcomes are too few)."""
    if min(len(baseline), len(candidate)) < min_outcomes:
        return None
    m = gate.margin
    if gate.metric in PER_ROW:
        result = compare(
            row_values(baseline, gate.metric), row_values(candidate, gate.metric), gate.metric,
            alpha, mde=max(abs(m), 0.01),
        )  # fmt: skip
        d = result["difference"]
        # Only a difference the always-valid interval is sure of rolls back.
        beyond = d["high"] < -m if gate.higher_is_better else d["low"] > m
        value, base = result["candidate"]["value"], result["baseline"]["value"]
    else:
        value, base = score(candidate).get(gate.metric), score(baseline).get(gate.metric)
        if value is None or base is None:
            return None
        beyond = value < base - m if gate.higher_is_better else value > base + m
    if not beyond:
        return None
    op = ">=" if gate.higher_is_better else "<="
    return (
        f"{gate.metric} {value:.4g} vs primary {base:.4g} on {len(candidate)}/{len(baseline)} "
        f"outcomes (gate: {gate.metric} {op} primary {'-' if gate.higher_is_better else '+'} {m:g})"
    )


def canary_started(routes: RouteBook, route: Route) -> datetime:
    """When the running canary of `route` began: its first revision's time."""
    canary = route.policy.canary
    started = route.created_at
    for past in reversed(routes.history(route.model)):
        if past.revision > route.revision:
            continue
        c = past.policy.canary
        if c is None or c.candidate != (canary.candidate if canary else None) or not c.is_running:
            break
        started = past.created_at
    return started


def canary_quality_check(engine: Engine, routes: RouteBook) -> Callable[[Route], str | None]:
    """The canary controller's quality gate: the candidate's labelled answers since the
    canary began against the baseline's."""

    def check(route: Route) -> str | None:
        canary = route.policy.canary
        if canary is None or not canary.gates.quality:
            return None
        gate = QualityGate.parse(canary.gates.quality)
        now = datetime.now(UTC)
        rows = arm_rows(
            engine, route.policy.outcome_key, route.model,
            [canary.baseline, canary.candidate], canary_started(routes, route), now,
        )  # fmt: skip
        return gate_failure(
            gate, rows[canary.baseline], rows[canary.candidate], canary.gates.min_outcomes
        )

    return check
