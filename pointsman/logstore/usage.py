"""Each host's spool usage in the store, so an alert rule sees every replica's spool."""

from __future__ import annotations

import socket
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from pointsman.store.tables import spool_usage
from pointsman.store.upsert import update_or_insert

REPORT_EVERY_S = 30.0  # at least this often; sooner when usage moves by 1 % of the budget


class Measured(Protocol):
    """A spool root as measured: a worker's `Spool`, or the server's `Shipping`."""

    @property
    def root(self) -> Path: ...
    @property
    def used_bytes(self) -> int: ...
    @property
    def budget_bytes(self) -> int: ...


class UsageReporter:
    """Writes one spool's usage to `spool_usage` when it changed or has not for a while."""

    def __init__(self, spool: Measured, engine: Engine) -> None:
        self.spool = spool
        self.engine = engine
        self.key = f"{socket.gethostname()}:{spool.root.resolve()}"[:512]
        self._last: tuple[float, int] | None = None  # when, used bytes

    def report(self, now: float | None = None) -> bool:
        """Write if due; True when it wrote. Raises when the store does."""
        now = time.monotonic() if now is None else now
        used, budget = self.spool.used_bytes, self.spool.budget_bytes
        if self._last is not None:
            since, before = self._last
            if now - since < REPORT_EVERY_S and abs(used - before) < 0.01 * budget:
                return False
        values = {"used_bytes": used, "budget_bytes": budget, "updated_at": datetime.now(UTC)}
        with self.engine.begin() as conn:
            update_or_insert(conn, spool_usage, {"spool": self.key}, values)
        self._last = (now, used)
        return True


def fullest_spool(engine: Engine, fresh_within: timedelta, now: datetime) -> float | None:
    """The largest used/budget of the spools reported within `fresh_within`; None if none."""
    query = sa.select(spool_usage.c.used_bytes, spool_usage.c.budget_bytes).where(
        spool_usage.c.updated_at >= now - fresh_within
    )
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    ratios = [used / budget for used, budget in rows if budget > 0]
    return max(ratios) if ratios else None
