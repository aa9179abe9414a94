"""Update a row by its key, or insert it: the same on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection


def update_or_insert(
    conn: Connection, table: sa.Table, key: dict[str, Any], values: dict[str, Any]
) -> None:
    """Set `values` on the row whose columns equal `key`; insert it when there is none.

    Callers write their own rows only (one worker's, or the lease holder's), so no other
    writer races the insert.
    """
    where = sa.and_(*(table.c[name] == value for name, value in key.items()))
    if conn.execute(table.update().where(where).values(**values)).rowcount == 0:
        conn.execute(table.insert().values(**key, **values))
