"""Live figures for the catalogue, from the prediction log: requests, rate, errors, p50/p99.

Read from the store's per-minute rollups of the log plus the records not rolled up yet (every
worker's records, shipped within about two seconds), not from this process's counters, so every
replica shows the same figures.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from pointsman.store.rollups import HISTOGRAM, counts_with_tail, minute_of, percentile

ANSWERED_ROLES = ("primary", "fallback", "pinned")
NONE = "\N{EN DASH}"  # a figure with nothing to show


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


def live_figures(
    engine: Engine, models: list[str] | None = None, window_s: float = 300.0
) -> dict[tuple[str, int | None], Live]:
    """(model, version) → Live, and (model, None) → the model's total, answered requests only,
    over the whole minutes of the last `window_s` (the current one so far included)."""
    now = datetime.now(UTC)
    first = minute_of(now) - int(window_s // 60) + 1

    def where(c: Any) -> list[sa.ColumnElement[bool]]:
        chosen = [c.minute >= first, c.role.in_(ANSWERED_ROLES)]
        return chosen if models is None else [*chosen, c.model.in_(models)]

    totals: dict[tuple[str, int | None], list[int]] = {}
    with engine.connect() as conn:
        r = counts_with_tail(conn, where).c
        sums = [sa.func.sum(r[name]) for name in ("requests", "errors", *HISTOGRAM)]
        query = sa.select(r.model, r.version, *sums).group_by(r.model, r.version)
        for model, version, *counts in conn.execute(query):
            for key in ((model, int(version)), (model, None)):
                kept = totals.get(key, [0] * len(counts))
                totals[key] = [a + int(b) for a, b in zip(kept, counts, strict=True)]
    covered_s = now.timestamp() - first * 60
    return {
        key: Live(n[0], n[1], covered_s, percentile(n[2:], 50), percentile(n[2:], 99))
        for key, n in totals.items()
    }


def format_ms(value: float | None) -> str:
    return NONE if value is None else (f"{value:.1f} ms" if value < 100 else f"{value:.0f} ms")


def format_rate(live: Live | None) -> str:
    if live is None or not live.requests:
        return "no requests"
    return f"{live.rate_per_s:.2f}/s"


def format_share(value: float | None) -> str:
    return NONE if value is None else f"{100 * value:.1f} %"
