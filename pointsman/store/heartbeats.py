"""Replica heartbeats in the store: written by every server worker, read by the alert metrics."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from pointsman.store.tables import replica_heartbeats
from pointsman.store.upsert import update_or_insert

FORGET_AFTER = timedelta(days=1)  # a replica silent this long is no longer watched


@dataclass(frozen=True)
class Beat:
    """One worker's last heartbeat and what it measured of itself."""

    replica: str
    worker: str
    started_at: datetime
    beat_at: datetime
    stopped_at: datetime | None = None
    cpu_ratio: float | None = None
    rss_bytes: int | None = None
    loop_lag_ms: float | None = None

    def is_live(self, now: datetime, fresh_s: float) -> bool:
        return self.stopped_at is None and (now - self.beat_at).total_seconds() <= fresh_s


def beat(
    engine: Engine,
    replica: str,
    worker: str,
    started_at: datetime,
    *,
    cpu_ratio: float | None = None,
    rss_bytes: int | None = None,
    loop_lag_ms: float | None = None,
    now: datetime | None = None,
) -> None:
    """Write this worker's heartbeat (its own row: no other writer races it)."""
    values = {
        "started_at": started_at,
        "beat_at": now or datetime.now(UTC),
        "stopped_at": None,
        "cpu_ratio": cpu_ratio,
        "rss_bytes": rss_bytes,
        "loop_lag_ms": loop_lag_ms,
    }
    with engine.begin() as conn:
        update_or_insert(conn, replica_heartbeats, {"replica": replica, "worker": worker}, values)


def stopped(engine: Engine, replica: str, worker: str, now: datetime | None = None) -> None:
    """Mark this worker as stopped on purpose: its silence is no outage."""
    where = (replica_heartbeats.c.replica == replica) & (replica_heartbeats.c.worker == worker)
    with engine.begin() as conn:
        conn.execute(
            replica_heartbeats.update().where(where).values(stopped_at=now or datetime.now(UTC))
        )


def load_beats(engine: Engine, now: datetime | None = None) -> list[Beat]:
    """Every worker heard from within FORGET_AFTER, by replica then worker; older rows go."""
    now = now or datetime.now(UTC)
    table = replica_heartbeats
    with engine.begin() as conn:
        conn.execute(table.delete().where(table.c.beat_at < now - FORGET_AFTER))
        rows = conn.execute(sa.select(table).order_by(table.c.replica, table.c.worker)).all()
    return [
        Beat(
            r.replica,
            r.worker,
            _utc(r.started_at),
            _utc(r.beat_at),
            None if r.stopped_at is None else _utc(r.stopped_at),
            r.cpu_ratio,
            r.rss_bytes,
            r.loop_lag_ms,
        )
        for r in rows
    ]


def silent_s(beats: list[Beat], replica: str, now: datetime) -> float | None:
    """Seconds since `replica` last beat; None when it stopped on purpose (or is unknown)."""
    own = [b for b in beats if b.replica == replica]
    if not own:
        return None
    newest = max(own, key=lambda b: b.beat_at)
    if newest.stopped_at is not None:
        return None
    return max(0.0, (now - newest.beat_at).total_seconds())


def _utc(at: datetime) -> datetime:
    """SQLite gives naive datetimes back: they were written in UTC."""
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)
