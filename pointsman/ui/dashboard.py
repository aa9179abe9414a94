"""A model's dashboard over a window: traffic, latency, errors, fallbacks, findings by feature,
drift against the reference profile, shadow agreement, canary progress and alert history.

Every figure is read from the store: traffic, latency and findings from the per-minute rollups
of the prediction log plus its records not rolled up yet (the cost of a window does not grow
with its records), drift from the
newest records' inputs, route stats, the canary's window and the alert history.
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
from pointsman.store.rollups import (
    HISTOGRAM,
    counts_with_tail,
    findings_with_tail,
    minute_of,
    percentile,
)
from pointsman.store.tables import alert_history, prediction_log
from pointsman.ui.figures import ANSWERED_ROLES

WINDOWS = {"15m": 900, "1h": 3600, "6h": 6 * 3600, "24h": 86400, "7d": 7 * 86400}
BUCKETS = 30  # at most; a bucket is whole minutes (the 15 min window has 15)
DRIFT_ROWS = 1000  # newest answered rows whose inputs are histogrammed


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


@dataclass(frozen=True)
class Span:
    """A window in whole minutes: `buckets` of `width` minutes each, the last one holding the
    current minute; minutes count from 1970 (UTC), as the rollups do."""

    first: int
    width: int
    buckets: int

    @classmethod
    def ending_at(cls, now: datetime, span_s: float) -> Span:
        width = max(1, int(span_s // 60) // BUCKETS)
        buckets = int(span_s // 60) // width
        return cls(minute_of(now) + 1 - width * buckets, width, buckets)

    @property
    def end(self) -> int:
        return self.first + self.width * self.buckets

    def start_of(self, bucket: int) -> datetime:
        return datetime.fromtimestamp((self.first + bucket * self.width) * 60, UTC)


@dataclass
class Window:
    """The figures of one model (or version) over a span, per bucket, summed from the
    per-minute rollups (store/rollups.py): counts are exact, latency is a histogram."""

    requests: list[int]
    errors: list[int]
    fallbacks: list[int]
    histograms: list[list[int]]
    findings: Counter[tuple[str, str]]


def read_window(engine: Engine, model: str, version: int | None, span: Span) -> Window:
    """A model's (or version's) answered traffic over `span`: two grouped reads of rollups
    (each with the records not rolled up yet)."""

    def where(c: Any) -> list[sa.ColumnElement[bool]]:
        chosen = [c.model == model, c.minute >= span.first, c.minute < span.end,
                  c.role.in_(ANSWERED_ROLES)]  # fmt: skip
        return chosen if version is None else [*chosen, c.version == version]

    n = span.buckets
    out = Window([0] * n, [0] * n, [0] * n, [[0] * len(HISTOGRAM) for _ in range(n)], Counter())
    with engine.connect() as conn:
        r = counts_with_tail(conn, where).c
        bucket = ((r.minute - span.first) // span.width).label("bucket")
        sums = [sa.func.sum(r[name]) for name in ("requests", "errors", *HISTOGRAM)]
        counts = sa.select(bucket, r.role, *sums).group_by(bucket, r.role)
        f = findings_with_tail(conn, where).c
        findings = sa.select(f.feature, f.rule, sa.func.sum(f.findings))
        for i, role, requests, errors, *histogram in conn.execute(counts):
            i = int(i)
            out.requests[i] += int(requests)
            out.errors[i] += int(errors)
            out.fallbacks[i] += int(requests) if role == "fallback" else 0
            out.histograms[i] = [
                a + int(b) for a, b in zip(out.histograms[i], histogram, strict=True)
            ]
        for feature, rule, count in conn.execute(findings.group_by(f.feature, f.rule)):
            out.findings[(feature, rule)] += int(count)
    return out


def _as_utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def traffic_charts(window: Window, span: Span) -> list[Chart]:
    """Requests, errors and fallbacks, and latency percentiles, per time bucket."""
    fmt = "%H:%M" if span.width * span.buckets <= 1440 else "%m-%d %H:%M"
    labels = [span.start_of(i).strftime(fmt) for i in range(span.buckets)]
    percentiles: dict[str, list[float | None]] = {"p50": [], "p95": [], "p99": []}
    for histogram in window.histograms:
        for name in percentiles:
            value = percentile(histogram, float(name[1:]))
            percentiles[name].append(None if value is None else round(value, 2))
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
    span = Span.ending_at(now, span_s)
    window_figures = read_window(project.engine, model, version, span)
    charts = traffic_charts(window_figures, span)
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
        "shadows": shadow_agreement(project, model),
        "canary": canary,
        "alerts": alerts_of(project.engine, model, since),
        "updated": now.strftime("%H:%M:%S"),
    }
