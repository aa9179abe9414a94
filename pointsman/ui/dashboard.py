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
import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from pointsman.project import Project
from pointsman.registry.versions import VersionRecord
from pointsman.routing.canary import canary_status
from pointsman.routing.stats import window as stats_window
from pointsman.store.tables import alert_history, prediction_log
from pointsman.ui.figures import ANSWERED_ROLES

WINDOWS = {"15m": 900, "1h": 3600, "6h": 6 * 3600, "24h": 86400, "7d": 7 * 86400}
BUCKETS = 30
DRIFT_ROWS = 1000  # newest answered rows whose inputs are histogrammed
SAMPLE_ROWS = 10_000  # most records read for latency percentiles and findings


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


def _epoch(engine: Engine, column: Any) -> Any:
    """Seconds since 1970 of a timestamp column, in the store's SQL dialect."""
    if engine.dialect.name == "sqlite":  # julianday: a number, cheaper than strftime's text
        return (sa.func.julianday(column) - 2440587.5) * 86400.0
    return sa.extract("epoch", column)


def _floor(engine: Engine, value: Any) -> Any:
    """The whole part of a non-negative number: SQLite's CAST truncates, PostgreSQL's rounds."""
    if engine.dialect.name == "sqlite":
        return sa.cast(value, sa.Integer)
    return sa.cast(sa.func.floor(value), sa.Integer)


def _where(model: str, version: int | None, since: datetime) -> list[Any]:
    t = prediction_log.c
    out = [t.model == model, t.time >= since]
    if version is not None:
        out.append(t.version == version)
    return out


@dataclass
class Window:
    """The figures of one model (or version) over a window, read with few, bounded queries:
    counts per bucket are exact (grouped in SQL); latency percentiles and findings come from a
    uniform sample of at most SAMPLE_ROWS records (every k-th id), scaled back up."""

    requests: list[int]
    errors: list[int]
    fallbacks: list[int]
    latencies: list[list[float]]
    findings: Counter[tuple[str, str]]
    sampled_every: int


def read_window(
    engine: Engine, model: str, version: int | None, since: datetime, span_s: float
) -> Window:
    t = prediction_log.c
    width = span_s / BUCKETS
    start = since.timestamp()
    bucket = _floor(engine, (_epoch(engine, t.time) - start) / width).label("bucket")
    where = [*_where(model, version, since), t.role.in_(ANSWERED_ROLES)]
    counts = (
        sa.select(bucket, t.role, t.error_code.is_(None).label("ok"), sa.func.count())
        .where(*where)
        .group_by(bucket, t.role, t.error_code.is_(None))
    )
    out = Window([0] * BUCKETS, [0] * BUCKETS, [0] * BUCKETS,
                 [[] for _ in range(BUCKETS)], Counter(), 1)  # fmt: skip
    with engine.connect() as conn:
        total = 0
        for i, role, ok, n in conn.execute(counts):
            i = min(BUCKETS - 1, max(0, int(i or 0)))
            out.requests[i] += n
            out.errors[i] += 0 if ok else n
            out.fallbacks[i] += n if role == "fallback" else 0
            total += n
        every = max(1, -(-total // SAMPLE_ROWS))
        sampled = [*where, t.id % every == 0] if every > 1 else where
        # The bucket comes from SQL and JSON is read as text, parsed by orjson: no datetime
        # or JSON objects built per row (they were most of a big window's time).
        for i, latency in conn.execute(sa.select(bucket, t.latency_ms).where(*sampled)):
            out.latencies[min(BUCKETS - 1, max(0, int(i or 0)))].append(float(latency))
        text = sa.cast(t.findings, sa.Text)
        flagged = sa.select(text).where(*sampled, t.findings.is_not(None), text != "null")
        for (raw,) in conn.execute(flagged):
            for finding in orjson.loads(raw) or ():
                out.findings[(str(finding.get("feature")), str(finding.get("rule")))] += every
    out.sampled_every = every
    return out


def _as_utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def traffic_charts(window: Window, since: datetime, span_s: float) -> list[Chart]:
    """Requests, errors and fallbacks, and latency percentiles, per time bucket."""
    width = span_s / BUCKETS
    fmt = "%H:%M" if span_s <= 86400 else "%m-%d %H:%M"
    labels = [(since + timedelta(seconds=width * i)).strftime(fmt) for i in range(BUCKETS)]
    percentiles: dict[str, list[float | None]] = {"p50": [], "p95": [], "p99": []}
    for bucket in window.latencies:
        values = np.percentile(bucket, [50, 95, 99]) if bucket else [None] * 3
        for name, value in zip(percentiles, values, strict=True):
            percentiles[name].append(None if value is None else round(float(value), 2))
    return [
        Chart("requests", "Requests, errors and fallbacks", "line", labels, [
            {"label": "requests", "data": window.requests},
            {"label": "errors", "data": window.errors},
            {"label": "fallbacks", "data": window.fallbacks},
        ], "per bucket"),
        Chart("latency", "Latency percentiles", "line", labels,
              [{"label": k, "data": v} for k, v in percentiles.items()], "ms"),
    ]  # fmt: skip


def findings_chart(counts: Counter[tuple[str, str]]) -> Chart | None:
    """Validation findings by feature and rule over the window."""
    if not counts:
        return None
    features = sorted({f for f, _ in counts})
    rules = sorted({r for _, r in counts})
    series = [{"label": r, "data": [counts[(f, r)] for f in features]} for r in rules]
    return Chart("findings", "Validation findings by feature", "bar", features, series, "findings")


def _live_inputs(engine: Engine, model: str, version: int, since: datetime) -> list[Any]:
    t = prediction_log.c
    query = (
        sa.select(sa.cast(t.inputs, sa.Text))
        .where(t.model == model, t.version == version, t.time >= since)
        .where(t.role.in_(ANSWERED_ROLES))
        .order_by(t.time.desc())
        .limit(DRIFT_ROWS)
    )
    with engine.connect() as conn:
        return [orjson.loads(raw) for raw in conn.execute(query).scalars()]


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
    window_figures = read_window(project.engine, model, version, since, span_s)
    charts = traffic_charts(window_figures, since, span_s)
    findings = findings_chart(window_figures.findings)
    if findings is not None:
        charts.append(findings)
    route = project.routes.find(model)
    versions = project.registry.version_numbers(model)
    shown = version if version is not None else (route.primary if route else None)
    drift = []
    if shown is not None:
        drift = drift_charts(project.engine, project.registry.get_version(model, shown), since)
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
        "total": sum(window_figures.requests),
        "errors": sum(window_figures.errors),
        "sampled_every": window_figures.sampled_every,
        "shadows": shadow_agreement(project, model),
        "canary": canary,
        "alerts": alerts_of(project.engine, model, since),
        "updated": now.strftime("%H:%M:%S"),
    }
