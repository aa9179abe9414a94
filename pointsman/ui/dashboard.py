"""A model's dashboard over a window: traffic, latency, errors, fallbacks, findings by feature,
drift against the reference profile, shadow agreement, canary progress and alert history.

Every figure is read from the store: the prediction log (bounded to the newest rows of the
window), route stats, the canary's window and the alert history.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from pointsman.project import Project
from pointsman.registry.versions import VersionRecord
from pointsman.routing.canary import canary_status
from pointsman.routing.stats import window as stats_window
from pointsman.store.tables import alert_history, prediction_log
from pointsman.ui.figures import ANSWERED_ROLES, MAX_ROWS

WINDOWS = {"15m": 900, "1h": 3600, "6h": 6 * 3600, "24h": 86400, "7d": 7 * 86400}
BUCKETS = 30
DRIFT_ROWS = 2000  # newest answered rows whose inputs are histogrammed


@dataclass(frozen=True)
class Chart:
    """One chart for console.js: Chart.js type, x labels, named series; `unit` on the y axis."""

    id: str
    title: str
    type: str
    labels: list[str]
    series: list[dict[str, Any]]
    unit: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "type": self.type, "labels": self.labels,
                "series": self.series, "unit": self.unit}  # fmt: skip


def _rows(engine: Engine, model: str, version: int | None, since: datetime) -> list[Any]:
    t = prediction_log.c
    query = (
        sa.select(t.time, t.version, t.role, t.latency_ms, t.error_code, t.findings)
        .where(t.model == model, t.time >= since)
        .order_by(t.time.desc())
        .limit(MAX_ROWS)
    )
    if version is not None:
        query = query.where(t.version == version)
    with engine.connect() as conn:
        return list(conn.execute(query))


def _as_utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def traffic_charts(rows: list[Any], since: datetime, span_s: float) -> list[Chart]:
    """Requests, errors and fallbacks, and latency percentiles, per time bucket."""
    width = span_s / BUCKETS
    requests, errors, fallbacks = [0] * BUCKETS, [0] * BUCKETS, [0] * BUCKETS
    latencies: list[list[float]] = [[] for _ in range(BUCKETS)]
    for row in rows:
        if row.role not in ANSWERED_ROLES:
            continue
        i = min(BUCKETS - 1, max(0, int((_as_utc(row.time) - since).total_seconds() // width)))
        requests[i] += 1
        errors[i] += row.error_code is not None
        fallbacks[i] += row.role == "fallback"
        latencies[i].append(float(row.latency_ms))
    fmt = "%H:%M" if span_s <= 86400 else "%m-%d %H:%M"
    labels = [(since + timedelta(seconds=width * i)).strftime(fmt) for i in range(BUCKETS)]
    percentiles: dict[str, list[float | None]] = {"p50": [], "p95": [], "p99": []}
    for bucket in latencies:
        values = np.percentile(bucket, [50, 95, 99]) if bucket else [None] * 3
        for name, value in zip(percentiles, values, strict=True):
            percentiles[name].append(None if value is None else round(float(value), 2))
    return [
        Chart("requests", "Requests, errors and fallbacks", "line", labels, [
            {"label": "requests", "data": requests},
            {"label": "errors", "data": errors},
            {"label": "fallbacks", "data": fallbacks},
        ], "per bucket"),
        Chart("latency", "Latency percentiles", "line", labels,
              [{"label": k, "data": v} for k, v in percentiles.items()], "ms"),
    ]  # fmt: skip


def findings_chart(rows: list[Any]) -> Chart | None:
    """Validation findings by feature and rule over the window."""
    counts: Counter[tuple[str, str]] = Counter()
    for row in rows:
        for finding in row.findings or ():
            counts[(str(finding.get("feature")), str(finding.get("rule")))] += 1
    if not counts:
        return None
    features = sorted({f for f, _ in counts})
    rules = sorted({r for _, r in counts})
    series = [{"label": r, "data": [counts[(f, r)] for f in features]} for r in rules]
    return Chart("findings", "Validation findings by feature", "bar", features, series, "findings")


def _live_inputs(engine: Engine, model: str, version: int, since: datetime) -> list[Any]:
    t = prediction_log.c
    query = (
        sa.select(t.inputs)
        .where(t.model == model, t.version == version, t.time >= since)
        .where(t.role.in_(ANSWERED_ROLES))
        .order_by(t.time.desc())
        .limit(DRIFT_ROWS)
    )
    with engine.connect() as conn:
        return list(conn.execute(query).scalars())


def _columns(logged: list[Any]) -> dict[str, list[Any]]:
    """Logged inputs ({feature: [values]} per record, after redaction) → feature → values."""
    out: dict[str, list[Any]] = {}
    for inputs in logged:
        if not isinstance(inputs, dict):
            continue
        for key, values in inputs.items():
            out.setdefault(key, []).extend(values if isinstance(values, list) else [values])
    return out


def drift_charts(engine: Engine, version: VersionRecord, since: datetime) -> list[Chart]:
    """Per feature: the live inputs' histogram on the training bins (or categories) next to
    the reference profile's."""
    features = (version.profile or {}).get("features", {})
    live = _columns(_live_inputs(engine, version.model, version.number, since))
    charts = []
    for name, stats in features.items():
        values = live.get(name, [])
        if stats.get("bin_edges") and len(stats["bin_edges"]) > 1:
            edges = np.asarray(stats["bin_edges"], dtype=float)
            numbers = np.asarray([v for v in values if isinstance(v, int | float)], dtype=float)
            clipped = np.clip(numbers, edges[0], edges[-1])
            counts, _ = np.histogram(clipped, bins=edges)
            share = (counts / max(len(numbers), 1)).round(4).tolist()
            labels = [f"{edges[i]:.3g}…{edges[i + 1]:.3g}" for i in range(len(edges) - 1)]
            reference = [round(float(f), 4) for f in stats["bin_fractions"]]
        elif stats.get("categories"):
            labels = list(stats["categories"])
            seen = Counter(str(v) for v in values)
            total = max(len(values), 1)
            share = [round(seen[c] / total, 4) for c in labels]
            reference = [round(float(stats["categories"][c]), 4) for c in labels]
        else:
            continue
        series = [{"label": "training", "data": reference},
                  {"label": f"live ({len(values)} values)", "data": share}]  # fmt: skip
        charts.append(Chart(f"drift-{name}", f"Drift: {name}", "bar", labels, series, "share"))
    return charts


def alerts_of(engine: Engine, model: str, since: datetime) -> list[Any]:
    t = alert_history.c
    query = (
        sa.select(t.at, t.rule, t.event, t.severity, t.value, t.summary)
        .where(t.model == model, t.at >= since)
        .order_by(t.at.desc())
        .limit(50)
    )
    with engine.connect() as conn:
        return list(conn.execute(query))


def shadow_agreement(project: Project, model: str) -> list[dict[str, Any]]:
    """Each shadow's agreement with the primary, over the revision in force."""
    route = project.routes.find(model)
    if route is None:
        return []
    cells = stats_window(project.engine, model, [route.revision])
    return [
        {"version": version, **counts.summary()}
        for (version, role), counts in sorted(cells.items())
        if role == "shadow"
    ]


def dashboard_data(
    project: Project, model: str, window: str, version: int | None
) -> dict[str, Any]:
    span_s = WINDOWS.get(window, WINDOWS["1h"])
    now = datetime.now(UTC)
    since = now - timedelta(seconds=span_s)
    rows = _rows(project.engine, model, version, since)
    charts = traffic_charts(rows, since, span_s)
    findings = findings_chart(rows)
    if findings is not None:
        charts.append(findings)
    route = project.routes.find(model)
    versions = project.registry.version_numbers(model)
    shown = version if version is not None else (route.primary if route else None)
    drift = []
    if shown is not None:
        drift = drift_charts(project.engine, project.registry.get_version(model, shown), since)
    answered = [r for r in rows if r.role in ANSWERED_ROLES]
    canary = canary_status(project.engine, route) if route and route.policy.canary else None
    return {
        "model": model,
        "window": window if window in WINDOWS else "1h",
        "windows": list(WINDOWS),
        "version": version,
        "versions": versions,
        "drift_version": shown,
        "charts": charts + drift,
        "charts_json": [c.to_json() for c in charts + drift],
        "total": len(answered),
        "errors": sum(r.error_code is not None for r in answered),
        "capped": len(rows) >= MAX_ROWS,
        "shadows": shadow_agreement(project, model),
        "canary": canary,
        "alerts": alerts_of(project.engine, model, since),
        "updated": now.strftime("%H:%M:%S"),
    }
