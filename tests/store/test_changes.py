"""Pushed changes: NOTIFY in the writing transaction, one listener that survives a dropped link."""

from __future__ import annotations

import logging
import queue
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from pointsman.auth import KeyBook
from pointsman.store.changes import RESYNC, ChangeListener, listener_for, notify_change
from pointsman.store.engine import connect, upgrade_to_head
from tests.conftest import PG_ADMIN_URL, free_port, fresh_postgres_database

WAIT_S = 10.0  # generous: only a failure waits this long


@pytest.fixture
def pg_engine(request: pytest.FixtureRequest) -> Iterator[Engine]:
    engine = connect(fresh_postgres_database(request))
    upgrade_to_head(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def heard(pg_engine: Engine) -> Iterator[tuple[ChangeListener, queue.Queue[str]]]:
    """A started listener on the database, and the kinds it told (its first resync taken)."""
    listener = listener_for(pg_engine)
    assert listener is not None
    kinds: queue.Queue[str] = queue.Queue()
    listener.subscribe(kinds.put)
    listener.start()
    try:
        assert kinds.get(timeout=WAIT_S) == RESYNC
        yield listener, kinds
    finally:
        listener.stop()


def drain(kinds: queue.Queue[str]) -> list[str]:
    out = []
    while not kinds.empty():
        out.append(kinds.get_nowait())
    return out


@pytest.mark.postgres
def test_a_notice_arrives_when_the_change_commits_and_never_for_a_rollback(
    pg_engine: Engine, heard: tuple[ChangeListener, queue.Queue[str]]
) -> None:
    _, kinds = heard
    with pg_engine.connect() as conn:
        with conn.begin():
            notify_change(conn, "routes")
            time.sleep(0.3)
            assert drain(kinds) == [], "delivered before the commit"
        assert kinds.get(timeout=WAIT_S) == "routes"
        transaction = conn.begin()
        notify_change(conn, "keys")
        transaction.rollback()
    KeyBook(pg_engine).create("after-rollback", ["admin"], "t")  # a later, committed change
    assert kinds.get(timeout=WAIT_S) == "keys"
    time.sleep(0.2)
    assert drain(kinds) == [], "the rolled-back notice arrived too"


@pytest.mark.postgres
def test_the_listener_reconnects_after_its_backend_is_terminated(
    pg_engine: Engine,
    heard: tuple[ChangeListener, queue.Queue[str]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    listener, kinds = heard
    killed = listener.backend_pid
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with caplog.at_level(logging.WARNING, "pointsman.store"), admin.connect() as conn:
        assert conn.execute(sa.text("SELECT pg_terminate_backend(:p)"), {"p": killed}).scalar()
        # Lost (pollers told), then back (told again: notices may have been missed).
        assert [kinds.get(timeout=WAIT_S), kinds.get(timeout=WAIT_S)] == [RESYNC, RESYNC]
    admin.dispose()
    assert listener.is_listening and listener.connects == 2
    assert listener.backend_pid != killed
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("listening for pushed changes failed" in w for w in warnings), warnings
    assert any("listening for pushed changes again" in w for w in warnings), warnings
    with pg_engine.begin() as conn:
        notify_change(conn, "runners")
    assert kinds.get(timeout=WAIT_S) == "runners"


@pytest.mark.postgres
def test_a_listener_that_cannot_connect_warns_once_and_keeps_trying(
    caplog: pytest.LogCaptureFixture,
) -> None:
    url = sa.engine.make_url(PG_ADMIN_URL).set(drivername="postgresql", port=free_port())
    listener = ChangeListener(url.render_as_string(hide_password=False))
    kinds: queue.Queue[str] = queue.Queue()
    listener.subscribe(kinds.put)
    with caplog.at_level(logging.WARNING, "pointsman.store"):
        listener.start()
        try:
            assert kinds.get(timeout=WAIT_S) == RESYNC  # pollers told to poll
            time.sleep(1.5)  # several attempts (0.2, 0.5, 1 s apart)
            assert not listener.is_listening
        finally:
            listener.stop()
    warnings = [r for r in caplog.records if "pushed changes" in r.getMessage()]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert drain(kinds) == []


def test_sqlite_has_no_listener_and_sends_nothing(tmp_path: Path) -> None:
    engine = connect(f"sqlite:///{tmp_path / 'pointsman.db'}")
    upgrade_to_head(engine)
    assert listener_for(engine) is None
    with engine.begin() as conn:
        notify_change(conn, "routes")  # nothing to send: the pollers see the counter
        with pytest.raises(ValueError, match="unknown change kind 'route'"):
            notify_change(conn, "route")
    engine.dispose()


@pytest.mark.postgres
def test_listening_can_be_switched_off(pg_engine: Engine) -> None:
    assert listener_for(pg_engine, enabled=False) is None
