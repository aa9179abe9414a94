"""Events one process saw that the alert evaluator (maybe in another process) must see."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.engine import Engine

from pointsman.store.tables import alert_events

KEEP = timedelta(days=1)  # longer than any sensible window; pruned by the evaluator


def record_event(engine: Engine, kind: str, model: str, detail: str = "") -> None:
    """Note that `kind` happened to `model` now (e.g. version_load_failed)."""
    with engine.begin() as conn:
        conn.execute(
            alert_events.insert().values(
                at=datetime.now(UTC), kind=kind, model=model, detail=detail[:2000]
            )
        )


def prune_events(engine: Engine, now: datetime) -> None:
    """Drop events older than a day."""
    with engine.begin() as conn:
        conn.execute(alert_events.delete().where(alert_events.c.at < now - KEEP))
