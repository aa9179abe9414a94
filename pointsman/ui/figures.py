"""Live figures for the catalogue, from the prediction log: requests, rate, errors, p50/p99.

Read from the store (every worker's records, shipped about once a second), not from this
process's counters, so every replica shows the same figures.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from pointsman.store.tables import prediction_log

ANSWERED_ROLES = ("primary", "fallback", "pinned")
NONE = "\N{EN DASH}"  # a figure with nothing to show
MAX_ROWS = 200_000  # newest rows read per page; the figures say when a window holds more


@dataclass(frozen=True)
class Live:
    """One version's (or model's) figures over the last `window_s`."""

    requests: int
    errors: int
    window_s: float
    p50_ms: float | None
    p99_ms: float | None

    @property
    def rate_per_s(self) -> float:
        return self.requests / self.window_s if self.window_s else 0.0

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.requests if self.requests else None


def _live(latencies: list[float], errors: int, window_s: float) -> Live:
    if not latencies:
        return Live(0, 0, window_s, None, None)
    values = np.asarray(latencies)
    p50, p99 = np.percentile(values, [50, 99])
    return Live(len(latencies), errors, window_s, float(p50), float(p99))


def live_figures(
    engine: Engine, models: list[str] | None = None, window_s: float = 300.0
) -> dict[tuple[str, int | None], Live]:
    """(model, version) → Live, and (model, None) → the model's total, answered requests only."""
    since = datetime.now(UTC) - timedelta(seconds=window_s)
    t = prediction_log.c
    query = (
        sa.select(t.model, t.version, t.latency_ms, t.error_code)
        .where(t.time >= since, t.role.in_(ANSWERED_ROLES))
        .order_by(t.time.desc())
        .limit(MAX_ROWS)
    )
    if models is not None:
        query = query.where(t.model.in_(models))
    latencies: dict[tuple[str, int | None], list[float]] = defaultdict(list)
    errors: dict[tuple[str, int | None], int] = defaultdict(int)
    with engine.connect() as conn:
        for model, version, latency, error in conn.execute(query):
            for key in ((model, int(version)), (model, None)):
                latencies[key].append(float(latency))
                errors[key] += error is not None
    return {k: _live(v, errors[k], window_s) for k, v in latencies.items()}


def format_ms(value: float | None) -> str:
    return NONE if value is None else (f"{value:.1f} ms" if value < 100 else f"{value:.0f} ms")


def format_rate(live: Live | None) -> str:
    if live is None or not live.requests:
        return "no requests"
    return f"{live.rate_per_s:.2f}/s"


def format_share(value: float | None) -> str:
    return NONE if value is None else f"{100 * value:.1f} %"
