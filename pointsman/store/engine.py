"""Engines for SQLite (WAL) and PostgreSQL, and migrations applied on start.

Every command opens the store, so a store already at the newest schema is recognised
without loading Alembic: its revision is read from `alembic_version` and compared with the
newest migration file's (`revision.head_revision`).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import OperationalError

from pointsman.errors import ConfigError, StoreUnavailable
from pointsman.store.revision import MIGRATIONS, VERSION_TABLE, head_revision


def connect(url: str) -> Engine:
    """An engine for `url`, with SQLite set up for one writer and many readers."""
    try:
        parsed = sa.engine.make_url(url)
    except sa.exc.ArgumentError as exc:
        raise ConfigError(
            f"Database URL {url!r} is not valid: {exc}. Use sqlite:///path/to/file.db or "
            "postgresql+psycopg://user@host:5432/dbname."
        ) from exc
    if parsed.get_backend_name() == "sqlite":
        engine = sa.create_engine(url, connect_args={"timeout": 30})
        sa.event.listen(engine, "connect", _sqlite_pragmas)
    elif parsed.get_backend_name() == "postgresql":
        engine = sa.create_engine(url, pool_pre_ping=True)
    else:
        raise ConfigError(
            f"Database {parsed.get_backend_name()!r} is not supported; use SQLite or PostgreSQL."
        )
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def upgrade_to_head(engine: Engine) -> None:
    """Apply every pending migration (idempotent); Alembic runs only when one is pending."""
    try:
        with engine.begin() as connection:
            if stored_revisions(connection) != {head_revision()}:
                _alembic_upgrade(connection)
    except OperationalError as exc:
        raise StoreUnavailable(_safe_url(engine), str(exc.orig).strip().splitlines()[0]) from exc


def stored_revisions(connection: Connection) -> set[str]:
    """The revisions the store is at (none for a new store)."""
    if not sa.inspect(connection).has_table(VERSION_TABLE):
        return set()
    rows = connection.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}"))
    return {str(row[0]) for row in rows}


def _alembic_upgrade(connection: Connection) -> None:
    # Alembic (with Mako) takes longer to import than a command takes to run: loaded only
    # when a migration is pending.
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


def _safe_url(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=True)
