"""Migrations build exactly the schema the code declares, on both stores, idempotently."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.command import downgrade
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from pointsman.errors import ConfigError, StoreUnavailable
from pointsman.store.engine import connect, stored_revisions, upgrade_to_head
from pointsman.store.revision import MIGRATIONS, head_revision
from pointsman.store.tables import changes, metadata


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def test_migrations_match_tables_and_are_idempotent(empty_database_url: str) -> None:
    engine = connect(empty_database_url)
    try:
        upgrade_to_head(engine)
        upgrade_to_head(engine)
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), metadata)
            assert diff == [], diff
            assert conn.execute(changes.select()).all() == [(1, 0)]
    finally:
        engine.dispose()


def test_sqlite_runs_in_wal_mode(tmp_path: Path) -> None:
    engine = connect(f"sqlite:///{tmp_path / 'w.db'}")
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    finally:
        engine.dispose()


def test_unreachable_store_names_the_url_and_the_fix() -> None:
    engine = connect("postgresql+psycopg://postgres@127.0.0.1:9/none")
    with pytest.raises(StoreUnavailable, match=r"127\.0\.0\.1:9.*POINTSMAN_DATABASE_URL"):
        upgrade_to_head(engine)
    with pytest.raises(ConfigError, match="not supported"):
        connect("mysql://root@127.0.0.1/test")


def test_each_migration_file_is_named_after_its_revision_and_the_newest_is_head() -> None:
    scripts = ScriptDirectory.from_config(alembic_config())
    for script in scripts.walk_revisions():
        assert Path(script.path).name.startswith(f"{script.revision}_"), script.path
    assert scripts.get_heads() == [head_revision()]


def test_a_store_behind_head_is_upgraded_one_at_head_is_left_alone(
    empty_database_url: str,
) -> None:
    engine = connect(empty_database_url)
    try:
        with engine.connect() as conn:
            assert stored_revisions(conn) == set()
        upgrade_to_head(engine)
        config = alembic_config()
        with engine.begin() as conn:
            assert stored_revisions(conn) == {head_revision()}
            config.attributes["connection"] = conn
            downgrade(config, "-1")
            assert stored_revisions(conn) != {head_revision()}
        upgrade_to_head(engine)
        with engine.connect() as conn:
            assert stored_revisions(conn) == {head_revision()}
            assert compare_metadata(MigrationContext.configure(conn), metadata) == []
    finally:
        engine.dispose()
