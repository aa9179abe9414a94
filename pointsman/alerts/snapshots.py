"""Rates over "the last N minutes" from cumulative counters: a ring of timed snapshots.

`route_stats` holds cumulative counts per worker, so the evaluator sums them every tick and
keeps the sums; what happened over a window is the newest sum minus the one taken a window
ago. The ring lives in memory: after a restart (or in a process that just took the lease
without having ticked before) a rule's window is "not covered" until a full window of
snapshots has been taken, and the rule holds its state meanwhile (see docs/alerts.md).
"""

from __future__ import annotations

from collections import deque

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from pointsman.routing.stats import COUNTERS, Counts
from pointsman.store.tables import route_stats

Totals = dict[tuple[str, str], Counts]  # (model, role) → cumulative counts over every worker


class NotCovered(Exception):
    """The snapshots do not reach back a whole window yet: hold the rule's state."""


def read_totals(engine: Engine) -> Totals:
    """Cumulative counts per (model, role), summed over every revision and worker."""
    query = sa.select(route_stats.c.model, route_stats.c.role, route_stats.c.counts)
    out: Totals = {}
    with engine.connect() as conn:
        for model, role, counts in conn.execute(query):
            out.setdefault((model, role), Counts()).add(Counts.from_json(counts))
    return out


def minus(new: Counts, old: Counts) -> Counts:
    """What happened between two cumulative readings (never negative: rows may be pruned)."""
    out = Counts()
    for name in COUNTERS:
        setattr(out, name, max(0, getattr(new, name) - getattr(old, name)))
    out.latency = [max(0, a - b) for a, b in zip(new.latency, old.latency, strict=True)]
    out.prob_diff_max = new.prob_diff_max
    return out


class Snapshots:
    """Timed readings of the totals, kept as long as the longest window needs."""

    def __init__(self) -> None:
        self.ring: deque[tuple[float, Totals]] = deque()

    def take(self, engine: Engine, now: float, keep_s: float) -> None:
        """Read the totals now; forget readings no window of `keep_s` can need."""
        self.add(now, read_totals(engine), keep_s)

    def add(self, now: float, totals: Totals, keep_s: float) -> None:
        self.ring.append((now, totals))
        # Keep the newest reading at least keep_s old: it is the base of the longest window.
        while len(self.ring) > 1 and self.ring[1][0] <= now - keep_s:
            self.ring.popleft()

    def delta(self, model: str, role: str, window_s: float) -> Counts:
        """Counts of (model, role) over the last `window_s`; NotCovered if not known yet."""
        if not self.ring:
            raise NotCovered
        now, newest = self.ring[-1]
        base = None
        for at, totals in reversed(self.ring):
            if at <= now - window_s:
                base = totals
                break
        if base is None:
            raise NotCovered
        zero = Counts()
        return minus(newest.get((model, role), zero), base.get((model, role), zero))
