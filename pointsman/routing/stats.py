"""What each version did under a route revision: counts and a latency histogram per role.

Each worker keeps its counters in memory (the request path only adds to a dict) and a
background task writes them to `route_stats` once a second; readers sum the workers' rows.
"""

from __future__ import annotations

import bisect
import os
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from pointsman.store.tables import route_stats
from pointsman.store.upsert import update_or_insert

# Upper bounds of the latency buckets, in milliseconds (the last bucket is unbounded).
BUCKETS_MS = (
    1,
    2,
    3,
    5,
    7.5,
    10,
    15,
    20,
    30,
    50,
    75,
    100,
    150,
    200,
    300,
    500,
    750,
    1000,
    2000,
    5000,
)
COUNTERS = (
    "requests",
    "errors",
    "timeouts",
    "fallbacks",
    "invalid",
    "compared",
    "agreed",
    "queue_full",
)


@dataclass
class Counts:
    """One (model, revision, version, role) cell."""

    requests: int = 0
    errors: int = 0
    timeouts: int = 0
    fallbacks: int = 0  # requests this version failed and a fallback answered
    invalid: int = 0  # requests refused or flagged by validation
    compared: int = 0  # shadow answers compared with the primary's (rows)
    agreed: int = 0  # ... that gave the same label
    queue_full: int = 0  # requests refused because the runners' queue was full
    prob_diff_max: float = 0.0
    latency: list[int] = field(default_factory=lambda: [0] * (len(BUCKETS_MS) + 1))

    def observe(self, latency_s: float) -> None:
        self.latency[bisect.bisect_left(BUCKETS_MS, latency_s * 1000)] += 1

    def add(self, other: Counts) -> None:
        for name in COUNTERS:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.prob_diff_max = max(self.prob_diff_max, other.prob_diff_max)
        self.latency = [a + b for a, b in zip(self.latency, other.latency, strict=True)]

    def percentile_ms(self, q: float) -> float | None:
        """The upper bound of the bucket holding quantile q (None without observations)."""
        total = sum(self.latency)
        if total == 0:
            return None
        running = 0
        for i, n in enumerate(self.latency):
            running += n
            if running >= q * total:
                return float(BUCKETS_MS[i]) if i < len(BUCKETS_MS) else float("inf")
        return float("inf")

    def rate(self, name: str) -> float:
        return getattr(self, name) / self.requests if self.requests else 0.0

    @property
    def agreement(self) -> float | None:
        return self.agreed / self.compared if self.compared else None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {name: getattr(self, name) for name in COUNTERS}
        out["prob_diff_max"] = self.prob_diff_max
        out["latency"] = self.latency
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Counts:
        counts = cls()
        for name in COUNTERS:
            setattr(counts, name, int(data.get(name, 0)))
        counts.prob_diff_max = float(data.get("prob_diff_max", 0.0))
        latency = data.get("latency") or []
        if len(latency) == len(BUCKETS_MS) + 1:
            counts.latency = [int(n) for n in latency]
        return counts

    def summary(self) -> dict[str, Any]:
        """The figures people read: rates, p50/p99, agreement."""
        return {
            "requests": self.requests,
            "errors": self.errors,
            "error_rate": self.rate("errors"),
            "timeouts": self.timeouts,
            "fallback_rate": self.rate("fallbacks"),
            "validation_rate": self.rate("invalid"),
            "p50_ms": self.percentile_ms(0.5),
            "p99_ms": self.percentile_ms(0.99),
            "compared": self.compared,
            "agreement": self.agreement,
            "prob_diff_max": self.prob_diff_max,
        }


Key = tuple[str, int, int, str]  # model, revision, version, role


class StatsRecorder:
    """This process's counters; `flush` writes the changed cells to the store."""

    def __init__(self) -> None:
        self.worker = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.cells: dict[Key, Counts] = {}
        self._dirty: set[Key] = set()
        self._retired: dict[Key, float] = {}  # cell → when its revision was replaced

    def cell(self, model: str, revision: int, version: int, role: str) -> Counts:
        key = (model, revision, version, role)
        self._dirty.add(key)
        found = self.cells.get(key)
        if found is None:
            found = self.cells[key] = Counts()
        return found

    def flush(self, engine: Engine) -> None:
        """Write every cell touched since the last flush (idempotent: absolute values)."""
        if not self._dirty:
            return
        dirty, self._dirty = self._dirty, set()
        now = datetime.now(UTC)
        try:
            with engine.begin() as conn:
                for key in dirty:
                    model, revision, version, role = key
                    row = {
                        "model": model, "revision": revision, "worker": self.worker,
                        "version": version, "role": role,
                    }  # fmt: skip
                    values = {"counts": self.cells[key].to_json(), "updated_at": now}
                    update_or_insert(conn, route_stats, row, values)
        except Exception:
            self._dirty |= dirty  # try again next time
            raise

    def book(
        self,
        model: str,
        revision: int,
        version: int,
        role: str,
        *,
        latency_s: float | None = None,
        failed: bool = False,
        timed_out: bool = False,
        invalid: bool = False,
        fell_back: bool = False,
        queue_full: bool = False,
    ) -> Counts:
        """Count one run of a version: a request, and what became of it."""
        cell = self.cell(model, revision, version, role)
        cell.requests += 1
        cell.errors += failed
        cell.timeouts += timed_out
        cell.invalid += invalid  # refused or flagged by validation
        cell.fallbacks += fell_back  # it failed and a fallback version answered
        cell.queue_full += queue_full  # refused: the runners' queue was full
        if latency_s is not None:
            cell.observe(latency_s)
        return cell

    def keep_only(self, revisions: dict[str, int], now: float, grace_s: float = 120.0) -> None:
        """Forget cells of revisions older than each model's revision in force.

        A cell is dropped only once flushed and `grace_s` after its revision was replaced: a
        request still in flight under it would otherwise start the cell again from zero, and
        its flush (absolute values) would overwrite the stored totals.
        """
        for key in list(self.cells):
            if key[1] >= revisions.get(key[0], key[1] + 1):
                continue
            since = self._retired.setdefault(key, now)
            if now - since > grace_s and key not in self._dirty:
                del self.cells[key]
                del self._retired[key]


def window(engine: Engine, model: str, revisions: Iterable[int]) -> dict[tuple[int, str], Counts]:
    """Counts per (version, role) under the given revisions, summed over every worker."""
    query = sa.select(route_stats.c.version, route_stats.c.role, route_stats.c.counts).where(
        (route_stats.c.model == model) & (route_stats.c.revision.in_(list(revisions)))
    )
    out: dict[tuple[int, str], Counts] = {}
    with engine.connect() as conn:
        for version, role, counts in conn.execute(query).all():
            out.setdefault((version, role), Counts()).add(Counts.from_json(counts))
    return out
