"""Every alert sent (firing, repeat, resolved, test) and each delivery attempt's outcome."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from pointsman.store.tables import alert_deliveries, alert_history


@dataclass(frozen=True)
class Notice:
    """One notification of one alert: what every channel is sent."""

    rule: str
    model: str
    event: str  # firing | repeat | resolved | test
    severity: str
    value: float | None
    summary: str  # one line: what, how much, against what
    description: str  # the rule in words, for the body
    started_at: datetime
    at: datetime
    metric: str = ""
    alert_id: int | None = None

    @property
    def status(self) -> str:
        """Alertmanager's word: resolved, or firing (repeats and tests too)."""
        return "resolved" if self.event == "resolved" else "firing"


def record_notice(engine: Engine, notice: Notice) -> int:
    """Store the notice; its id ties the delivery attempts to it."""
    with engine.begin() as conn:
        return insert_notice(conn, notice)


def insert_notice(conn: Connection, notice: Notice) -> int:
    """`record_notice` inside the caller's transaction."""
    result = conn.execute(
        alert_history.insert().values(
            at=notice.at, rule=notice.rule, model=notice.model, event=notice.event,
            severity=notice.severity, value=notice.value, summary=notice.summary,
            started_at=notice.started_at,
        )
    )  # fmt: skip
    key = result.inserted_primary_key
    assert key is not None  # an insert always has one
    return int(key[0])


def record_attempt(
    engine: Engine, alert_id: int, channel: str, attempt: int, outcome: str, detail: str = ""
) -> None:
    """One delivery attempt: sent | retrying | failed | dropped, with what the channel said."""
    with engine.begin() as conn:
        conn.execute(
            alert_deliveries.insert().values(
                alert_id=alert_id, channel=channel[:256], attempt=attempt,
                at=datetime.now(UTC), outcome=outcome, detail=detail[:2000],
            )
        )  # fmt: skip


def read_history(
    engine: Engine,
    rule: str | None = None,
    model: str | None = None,
    since: datetime | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Alerts newest first, each with its delivery attempts (oldest first)."""
    query = sa.select(alert_history).order_by(alert_history.c.id.desc()).limit(limit)
    if rule:
        query = query.where(alert_history.c.rule == rule)
    if model:
        query = query.where(alert_history.c.model == model)
    if since:
        query = query.where(alert_history.c.at >= since)
    with engine.connect() as conn:
        rows = conn.execute(query).all()
        ids = [r.id for r in rows]
        attempts: dict[int, list[dict[str, Any]]] = {i: [] for i in ids}
        if ids:
            found = conn.execute(
                sa.select(alert_deliveries)
                .where(alert_deliveries.c.alert_id.in_(ids))
                .order_by(alert_deliveries.c.id)
            )
            for d in found:
                attempts[d.alert_id].append(
                    {
                        "channel": d.channel,
                        "attempt": d.attempt,
                        "at": utc(d.at).isoformat(),
                        "outcome": d.outcome,
                        "detail": d.detail,
                    }
                )
    return [
        {
            "id": r.id,
            "at": utc(r.at).isoformat(),
            "rule": r.rule,
            "model": r.model,
            "event": r.event,
            "severity": r.severity,
            "value": r.value,
            "summary": r.summary,
            "started_at": utc(r.started_at).isoformat(),
            "deliveries": attempts[r.id],
        }
        for r in rows
    ]


def prune_history(engine: Engine, before: datetime) -> int:
    """Delete notices older than `before` with their delivery attempts; how many went."""
    old = sa.select(alert_history.c.id).where(alert_history.c.at < before)
    with engine.begin() as conn:
        conn.execute(alert_deliveries.delete().where(alert_deliveries.c.alert_id.in_(old)))
        return int(conn.execute(alert_history.delete().where(alert_history.c.at < before)).rowcount)


def utc(at: datetime) -> datetime:
    """SQLite hands back naive datetimes: they were written in UTC."""
    return at if at.tzinfo else at.replace(tzinfo=UTC)
