"""Named leases in the store: exactly one process at a time runs a singleton job."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from pointsman.store.tables import leases


def hold_lease(engine: Engine, name: str, holder: str, lease_s: float) -> bool:
    """Take or renew lease `name` for `holder`; False while another holder's is unexpired."""
    now = datetime.now(UTC)
    until = now + timedelta(seconds=lease_s)
    with engine.begin() as conn:
        taken = conn.execute(
            leases.update()
            .where(
                (leases.c.name == name)
                & ((leases.c.holder == holder) | (leases.c.expires_at < now))
            )
            .values(holder=holder, expires_at=until)
        ).rowcount
    if taken:
        return True
    try:
        with engine.begin() as conn:
            conn.execute(leases.insert().values(name=name, holder=holder, expires_at=until))
        return True
    except IntegrityError:
        return False


def lease_holder(engine: Engine, name: str) -> str | None:
    """Who holds lease `name` (possibly expired), or None if nobody ever took it."""
    with engine.connect() as conn:
        return conn.execute(sa.select(leases.c.holder).where(leases.c.name == name)).scalar()


def release_lease(engine: Engine, name: str, holder: str) -> None:
    """Give lease `name` up at once (on shutdown), so that another process takes over."""
    with engine.begin() as conn:
        conn.execute(leases.delete().where((leases.c.name == name) & (leases.c.holder == holder)))
