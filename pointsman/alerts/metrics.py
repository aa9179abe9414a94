"""The metrics alert rules can name: a registry of small functions, one per metric.

A metric function gets the evaluation context, a model and a window in seconds, and returns
a number, or None when there is nothing to measure (no requests in the window: the
condition does not hold). Add one with the `metric` decorator; `pointsman alerts add`
refuses names not registered here and lists the known ones.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from pointsman.alerts.snapshots import Snapshots
from pointsman.errors import InvalidAlertRule, ModelNotFound
from pointsman.logstore.usage import fullest_spool
from pointsman.monitoring.quality import outcome_key_of, window_quality
from pointsman.routing.revisions import RouteBook
from pointsman.store.heartbeats import Beat, load_beats, silent_s
from pointsman.store.tables import alert_events, drift_results


@dataclass
class MetricContext:
    """What a metric function may read: the store, the routes, the snapshot ring, now."""

    engine: Engine
    routes: RouteBook
    snapshots: Snapshots
    now: datetime
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. the spool's usage, per process
    live_within_s: float = 30.0  # a worker whose last heartbeat is older is not live
    _beats: list[Beat] | None = None

    def beats(self) -> list[Beat]:
        """The replicas' heartbeats, read once per tick."""
        if self._beats is None:
            self._beats = load_beats(self.engine, self.now)
        return self._beats

    def live_beats(self) -> list[Beat]:
        return [b for b in self.beats() if b.is_live(self.now, self.live_within_s)]


MetricFn = Callable[[MetricContext, str, float], float | None]


@dataclass(frozen=True)
class Metric:
    """A named metric: its function, unit (`ratio`, `ms`, `per_s`, `count`, `psi`) and help.

    A `per_model` metric is measured for each model a rule names; a `per_replica` one for
    each replica heard from (its function gets the replica's name as the model); the others
    once for the whole server (their function gets the model "*").
    """

    name: str
    fn: MetricFn
    unit: str
    help: str
    per_model: bool = True
    per_replica: bool = False

    @property
    def scope(self) -> str:
        """What it is measured for: each model, each replica, or the whole server."""
        return "replica" if self.per_replica else "model" if self.per_model else "server"


METRICS: dict[str, Metric] = {}


def metric(
    name: str, unit: str, help: str, per_model: bool = True, per_replica: bool = False
) -> Callable[[MetricFn], MetricFn]:
    """Register a metric function under `name`."""

    def register(fn: MetricFn) -> MetricFn:
        METRICS[name] = Metric(name, fn, unit, help, per_model and not per_replica, per_replica)
        return fn

    return register


def get_metric(name: str, rule: str = "?") -> Metric:
    """The metric `name`, or InvalidAlertRule listing every known one."""
    found = METRICS.get(name)
    if found is None:
        known = ", ".join(sorted(METRICS))
        raise InvalidAlertRule(rule, f"unknown metric {name!r} (known metrics: {known})")
    return found


def format_value(name: str, value: float | None) -> str:
    """A value as people read it: ratios in percent, latencies in ms."""
    if value is None:
        return "no data"
    unit = METRICS[name].unit if name in METRICS else ""
    if unit == "ratio":
        return f"{value:.2%}"
    if unit == "ms":
        return f"{value:g} ms"
    if unit == "per_s":
        return f"{value:.3g}/s"
    if unit == "bytes":
        return f"{value / 2**20:.1f} MiB"
    if unit == "s":
        return f"{value:.0f} s"
    return f"{value:g}"


# -- from the route statistics (primary requests of every version of the model) ---------
def _rate(counter: str) -> MetricFn:
    def fn(ctx: MetricContext, model: str, window_s: float) -> float | None:
        counts = ctx.snapshots.delta(model, "primary", window_s)
        return getattr(counts, counter) / counts.requests if counts.requests else None

    return fn


metric("error_rate", "ratio", "Failed primary requests (errors and timeouts) / requests.")(
    _rate("errors")
)
metric("timeout_rate", "ratio", "Primary requests past the route's timeout / requests.")(
    _rate("timeouts")
)
metric("fallback_rate", "ratio", "Requests a fallback version answered / requests.")(
    _rate("fallbacks")
)
metric("queue_full_rate", "ratio", "Requests refused (503) because runners' queues were full.")(
    _rate("queue_full")
)
metric("validation_flag_rate", "ratio", "Requests validation flagged or refused / requests.")(
    _rate("invalid")
)


@metric("p99_ms", "ms", "99th percentile latency of primary requests (bucket upper bound).")
def p99_ms(ctx: MetricContext, model: str, window_s: float) -> float | None:
    return ctx.snapshots.delta(model, "primary", window_s).percentile_ms(0.99)


@metric("request_rate", "per_s", "Primary requests per second over the window.")
def request_rate(ctx: MetricContext, model: str, window_s: float) -> float | None:
    return ctx.snapshots.delta(model, "primary", window_s).requests / window_s


@metric("shadow_agreement", "ratio", "Rows where shadows gave the primary's label / rows compared.")
def shadow_agreement(ctx: MetricContext, model: str, window_s: float) -> float | None:
    return ctx.snapshots.delta(model, "shadow", window_s).agreement


# -- from the route history and events ----------------------------------------------------
@metric("canary_rolled_back", "count", "1 if a canary of the model was rolled back in the window.")
def canary_rolled_back(ctx: MetricContext, model: str, window_s: float) -> float | None:
    since = ctx.now - timedelta(seconds=window_s)
    try:
        history = ctx.routes.history(model)
    except ModelNotFound:  # a rule may name a model before it is registered
        return 0.0
    for route in reversed(history):
        if route.created_at < since:
            break
        canary = route.policy.canary
        if canary is not None and canary.state == "rolled_back":
            return 1.0
    return 0.0


def _events(kind: str) -> MetricFn:
    def fn(ctx: MetricContext, model: str, window_s: float) -> float | None:
        since = ctx.now - timedelta(seconds=window_s)
        query = sa.select(sa.func.count()).where(
            (alert_events.c.kind == kind)
            & (alert_events.c.model == model)
            & (alert_events.c.at >= since)
        )
        with ctx.engine.connect() as conn:
            return float(conn.execute(query).scalar() or 0)

    return fn


metric(
    "version_load_failed", "count", "Times a version of the model failed to load in the window."
)(_events("version_load_failed"))
metric(
    "runner_restarts",
    "count",
    "Runners of the model's versions restarted in the window (crash, out of memory or disk, "
    "past the time limit, killed).",
)(_events("runner_restart"))


@metric(
    "drift_psi_max",
    "psi",
    "Largest PSI of any feature (or the predictions) in drift runs that ended in the window.",
)
def drift_psi_max(ctx: MetricContext, model: str, window_s: float) -> float | None:
    since = ctx.now - timedelta(seconds=window_s)
    query = sa.select(sa.func.max(drift_results.c.psi)).where(
        (drift_results.c.model == model) & (drift_results.c.window_end >= since)
    )
    with ctx.engine.connect() as conn:
        found = conn.execute(query).scalar()
    return None if found is None else float(found)


# -- from outcomes: predictions of the window scored against their true values ---------
def _quality(name: str) -> MetricFn:
    def fn(ctx: MetricContext, model: str, window_s: float) -> float | None:
        # One scoring per model and window per evaluation, whichever rules read it.
        cache = ctx.extra.setdefault("quality", {})
        if (model, window_s) not in cache:
            key = outcome_key_of(ctx.routes, model)
            cache[(model, window_s)] = window_quality(ctx.engine, key, model, window_s, ctx.now)
        value = cache[(model, window_s)].get(name)
        return None if value is None else float(value)

    return fn


for _name, _unit, _help in (
    ("accuracy", "ratio", "Primary answers of the window whose label was the outcome / labelled."),
    ("auc", "ratio", "ROC AUC of the window's labelled primary answers (classifiers)."),
    ("log_loss", "count", "Log loss of the window's labelled primary answers (classifiers)."),
    ("calibration_error", "ratio", "Expected calibration error of the window's answers."),
    ("mae", "count", "Mean absolute error of the window's labelled primary answers."),
    ("rmse", "count", "Root mean squared error of the window's labelled primary answers."),
    ("bias", "count", "Mean of prediction - outcome over the window's labelled answers."),
):
    metric(_name, _unit, _help + " A drop with inputs unchanged is concept drift.")(_quality(_name))
metric("labelled", "count", "Primary answers of the window that have an outcome.")(
    _quality("labelled")
)


# -- server-wide ---------------------------------------------------------------------------
@metric(
    "spool_usage",
    "ratio",
    "Fullest prediction-log spool (bytes waiting / budget) of the hosts that reported within "
    "the window; past 100 % records are dropped or refused.",
    per_model=False,
)
def spool_usage(ctx: MetricContext, model: str, window_s: float) -> float | None:
    return fullest_spool(ctx.engine, timedelta(seconds=max(window_s, 60.0)), ctx.now)


# -- the servers themselves (replica heartbeats) -------------------------------------------
@metric(
    "watchdog",
    "count",
    "Always 1 while the alert evaluator runs: the Watchdog rule fires on it for ever, so its "
    "notices stopping is the page (Alertmanager's Watchdog convention).",
    per_model=False,
)
def watchdog(ctx: MetricContext, model: str, window_s: float) -> float | None:
    return 1.0


@metric(
    "replica_silent_s",
    "s",
    "Seconds since the replica's last heartbeat (none once it stopped on purpose); measured "
    "for every replica heard from in the last day.",
    per_replica=True,
)
def replica_silent_s(ctx: MetricContext, model: str, window_s: float) -> float | None:
    return silent_s(ctx.beats(), model, ctx.now)


@metric(
    "live_workers",
    "count",
    "Server worker processes of every replica whose heartbeat is fresh.",
    per_model=False,
)
def live_workers(ctx: MetricContext, model: str, window_s: float) -> float | None:
    return float(len(ctx.live_beats()))


def _worst(attribute: str) -> MetricFn:
    def fn(ctx: MetricContext, model: str, window_s: float) -> float | None:
        values = [getattr(b, attribute) for b in ctx.live_beats()]
        known = [float(v) for v in values if v is not None]
        return max(known) if known else None

    return fn


metric(
    "process_cpu",
    "ratio",
    "Highest CPU use of any live server worker (CPU seconds per second over its last "
    "heartbeat interval; 1.0 is one core busy).",
    per_model=False,
)(_worst("cpu_ratio"))
metric(
    "process_memory_bytes",
    "bytes",
    "Largest resident memory of any live server worker.",
    per_model=False,
)(_worst("rss_bytes"))
metric(
    "event_loop_lag_ms",
    "ms",
    "Worst event-loop lag of any live server worker since its last heartbeat: how late a "
    "timer fired (a blocked loop answers nothing meanwhile).",
    per_model=False,
)(_worst("loop_lag_ms"))
