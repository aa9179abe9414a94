"""Reading the audit log (writes happen in store.audit, inside each action's transaction)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from pointsman.store.tables import audit_log
from pointsman.types import as_utc


@dataclass(frozen=True)
class AuditEntry:
    """One admin action: who, when, what, and the state before and after."""

    id: int
    at: datetime
    who: str
    action: str
    target: str
    before: Any
    after: Any
    detail: str

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "at": self.at.isoformat(),
            "who": self.who,
            "action": self.action,
            "target": self.target,
            "before": self.before,
            "after": self.after,
            "detail": self.detail,
        }


def read_audit(
    engine: Engine,
    since: datetime | None = None,
    action: str | None = None,
    target: str | None = None,
    limit: int = 1000,
) -> list[AuditEntry]:
    """Entries, oldest first, from `since`; `action` matches a prefix (`key` → key.*)."""
    query = sa.select(audit_log).order_by(audit_log.c.at.desc(), audit_log.c.id.desc())
    if since is not None:
        query = query.where(audit_log.c.at >= since)
    if action:
        query = query.where(
            (audit_log.c.action == action) | audit_log.c.action.startswith(action + ".")
        )
    if target:
        query = query.where(audit_log.c.target == target)
    with engine.connect() as conn:
        rows = conn.execute(query.limit(limit)).all()
    return [
        AuditEntry(r.id, as_utc(r.at), r.who, r.action, r.target, r.before, r.after, r.detail)
        for r in reversed(rows)
    ]
