"""Writing the audit log: one row per admin action, inside the action's own transaction."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy.engine import Connection

from pointsman.store.tables import audit_log


def write_audit(
    conn: Connection,
    who: str,
    action: str,
    target: str,
    before: Any = None,
    after: Any = None,
    detail: str = "",
) -> None:
    """Record `who` did `action` on `target`; same transaction, so no change goes unrecorded."""
    conn.execute(
        audit_log.insert().values(
            at=datetime.now(UTC),
            who=who[:128],
            action=action[:32],
            target=target[:160],
            before=before,
            after=after,
            detail=detail,
        )
    )
