"""The drift monitor: windows of logged inputs and outputs against each routed version's profile.

Run on demand (`pointsman drift`) or on a schedule by exactly one server process (a lease).
Each run stores one row per feature in `drift_results`, the time series that the CLI's
sparklines, the metrics and the alerts read.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from pointsman.logstore.query import LogQuery
from pointsman.monitoring.drift import FeatureDrift, Thresholds, feature_drift, window_drift
from pointsman.project import Project
from pointsman.store.leases import hold_lease
from pointsman.store.tables import drift_results, prediction_log

log = logging.getLogger("pointsman.drift")

LEASE = "drift-monitor"
DAY_S = 86400.0
PREDICTIONS = "(predictions)"  # the feature name of prediction drift
GRADES = ("too_small", "ok", "warn", "alert")
READ_BATCH = 5000  # records fetched at a time


@dataclass
class DriftReport:
    """One window of one version: every feature's drift, and the predictions'."""

    model: str
    version: int
    window_end: datetime
    window_s: float
    rows: int
    features: list[FeatureDrift]
    skipped: list[str] = field(default_factory=list)  # redacted in the log: not comparable

    @property
    def grade(self) -> str:
        """The worst grade of any feature (too_small only when every feature is)."""
        return max((f.grade for f in self.features), key=GRADES.index, default="too_small")

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "version": self.version,
            "window_end": self.window_end.isoformat(),
            "window_s": self.window_s,
            "rows": self.rows,
            "grade": self.grade,
            "features": [f.to_json() for f in self.features],
            "skipped": self.skipped,
        }


def read_window(
    engine: Engine, model: str, version: int, since: datetime, until: datetime, max_rows: int
) -> tuple[dict[str, list[Any]], list[Any], int]:
    """Input columns, predictions and row count of the newest records in the window.

    Only the three columns drift needs, their JSON as text parsed here by orjson: whole
    records through SQLAlchemy's JSON and date types cost ~50 µs each, 5 s of a core per
    100,000-record run every drift interval, a burst the serving processes felt."""
    columns: dict[str, list[Any]] = defaultdict(list)
    predictions: list[Any] = []
    rows = 0
    query = LogQuery(model=model, version=version, since=since, until=until)
    statement = (
        sa.select(
            sa.cast(prediction_log.c.inputs, sa.Text),
            sa.cast(prediction_log.c.outputs, sa.Text),
            prediction_log.c.n_rows,
        )
        .where(*query.where())
        .order_by(prediction_log.c.time.desc(), prediction_log.c.id.desc())
    )
    with (
        engine.connect() as conn,
        contextlib.closing(
            conn.execution_options(yield_per=READ_BATCH).execute(statement)
        ) as result,
    ):  # closed when the cap stops the read early (PostgreSQL: a server cursor)
        for inputs_text, outputs_text, n_rows in result:
            for name, values in (_json(inputs_text) or {}).items():
                columns[name].extend(values)
            outputs = _json(outputs_text)
            if outputs:
                predictions.extend(outputs.get("predictions") or [])
            rows += int(n_rows or 0)
            if rows >= max_rows:
                break
    return dict(columns), predictions, rows


def _json(text: str | None) -> Any:
    """A stored JSON value; stdlib json for what orjson refuses (NaN written by an older
    SQLite path through SQLAlchemy's json.dumps)."""
    if text is None:
        return None
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


def drift_report(
    project: Project,
    model: str,
    version: int,
    window: timedelta,
    thresholds: Thresholds,
    now: datetime | None = None,
) -> DriftReport:
    """The drift of `version`'s traffic over the window ending `now`."""
    now = now or datetime.now(UTC)
    record = project.registry.get_version(model, version)
    settings = project.settings
    columns, predictions, rows = read_window(
        project.engine, model, record.number, now - window, now, settings.drift_max_rows
    )
    redaction = settings.log_redact.get(model)
    skipped = sorted({*redaction.drop, *redaction.hash, *redaction.truncate}) if redaction else []
    kept = {name: values for name, values in columns.items() if name not in skipped}
    features = window_drift(kept, record.profile, thresholds)
    reference = ((record.profile or {}).get("outputs") or {}).get("predictions")
    if reference:
        features.append(feature_drift(PREDICTIONS, predictions, reference, thresholds))
    return DriftReport(model, record.number, now, window.total_seconds(), rows, features, skipped)


def routed_versions(project: Project, model: str) -> list[int]:
    """The versions answering `model` (arms with weight > 0, and the fallback)."""
    route = project.routes.find(model)
    if route is None:
        return []
    arms = [a.version for a in route.policy.arms if a.weight > 0]
    fallback = route.policy.fallback
    return arms + ([fallback] if fallback is not None and fallback not in arms else [])


def store_report(engine: Engine, report: DriftReport) -> None:
    rows = [
        {
            "model": report.model,
            "version": report.version,
            "feature": f.feature,
            "window_end": report.window_end,
            "window_s": report.window_s,
            "rows": f.rows,
            "psi": f.psi,
            "grade": f.grade,
            "test": f.test,
            "statistic": f.statistic,
            "p_value": f.p_value,
            "top_change": f.top_change,
        }
        for f in report.features
    ]
    if rows:
        with engine.begin() as conn:
            conn.execute(drift_results.insert(), rows)


def prune_results(engine: Engine, before: datetime) -> int:
    """Delete drift results of windows that ended before `before`; how many went."""
    with engine.begin() as conn:
        query = drift_results.delete().where(drift_results.c.window_end < before)
        return int(conn.execute(query).rowcount)


def history(
    engine: Engine, model: str, version: int, since: datetime
) -> dict[str, list[tuple[datetime, float | None, str]]]:
    """Per feature, the stored (window end, PSI, grade) since `since`, oldest first."""
    query = (
        sa.select(
            drift_results.c.feature,
            drift_results.c.window_end,
            drift_results.c.psi,
            drift_results.c.grade,
        )
        .where(
            (drift_results.c.model == model)
            & (drift_results.c.version == version)
            & (drift_results.c.window_end >= since)
        )
        .order_by(drift_results.c.window_end, drift_results.c.id)
    )
    out: dict[str, list[tuple[datetime, float | None, str]]] = defaultdict(list)
    with engine.connect() as conn:
        for feature, end, value, grade in conn.execute(query).all():
            out[feature].append((end, value, grade))
    return dict(out)


def latest_psi(engine: Engine, model: str | None = None) -> dict[tuple[str, int, str], float]:
    """The newest stored PSI of every (model, version, feature): for metrics and alerts."""
    newest = (
        sa.select(
            drift_results.c.model,
            drift_results.c.version,
            drift_results.c.feature,
            sa.func.max(drift_results.c.id).label("id"),
        )
        .group_by(drift_results.c.model, drift_results.c.version, drift_results.c.feature)
        .subquery()
    )
    query = sa.select(
        drift_results.c.model, drift_results.c.version, drift_results.c.feature, drift_results.c.psi
    ).join(newest, drift_results.c.id == newest.c.id)
    if model is not None:
        query = query.where(drift_results.c.model == model)
    with engine.connect() as conn:
        return {(m, v, f): float(p) for m, v, f, p in conn.execute(query).all() if p is not None}


class DriftMonitor:
    """Runs every routed version's drift report on a schedule, in one process at a time.

    `run` computes and stores the reports: in this thread by default; a serving process
    passes a `DriftProcess`'s, so that the work never holds its event loop's GIL."""

    def __init__(
        self, project: Project, holder: str, run: Callable[[], list[DriftReport]] | None = None
    ) -> None:
        self.project = project
        self.holder = holder
        self.run = run or (lambda: run_reports(project))
        self.last_run = -math.inf  # the first tick runs (monotonic time starts at boot)
        self.last_prune = -math.inf

    def tick(self, monotonic_now: float) -> list[DriftReport]:
        """Run when the interval has passed and this process holds the lease."""
        settings = self.project.settings
        if monotonic_now - self.last_run < settings.drift_interval_s:
            return []
        lease_s = max(settings.drift_interval_s * 2, 60.0)
        if not hold_lease(self.project.engine, LEASE, self.holder, lease_s):
            return []
        self.last_run = monotonic_now
        reports = self.run()
        for report in reports:
            if report.grade in ("warn", "alert"):
                worst = [f for f in report.features if f.grade == report.grade]
                log.warning(
                    "drift %s on %s version %s: %s",
                    report.grade,
                    report.model,
                    report.version,
                    "; ".join(f"{f.feature} PSI {f.psi:.3f} ({f.top_change})" for f in worst),
                )
        days = settings.drift_history_days
        if days > 0 and monotonic_now - self.last_prune >= DAY_S:
            self.last_prune = monotonic_now
            prune_results(self.project.engine, datetime.now(UTC) - timedelta(days=days))
        return reports


def run_reports(project: Project) -> list[DriftReport]:
    """Compute and store the report of every routed version of every model."""
    settings = project.settings
    thresholds = Thresholds(
        settings.drift_warn_psi, settings.drift_alert_psi, settings.drift_min_rows
    )
    window = timedelta(seconds=settings.drift_window_s)
    reports = []
    for model in project.registry.model_names():
        for version in routed_versions(project, model):
            report = drift_report(project, model, version, window, thresholds)
            store_report(project.engine, report)
            reports.append(report)
    return reports
