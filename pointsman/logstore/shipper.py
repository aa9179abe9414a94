"""The shipper: every worker's sealed segments into the store in batches, idempotently.

One per server, off the serving processes (logstore/shipping.py runs it): the workers only
append and seal. A segment is deleted only after its records are committed; a crash in
between ships it again, and the unique (request_id, role, version) makes the second insert a
no-op. Folders of workers that are gone (their lock is free) are shipped whole, then
removed. A pass holds the spool root's lock file, so that two shippers on one spool (a
server and a batch job, two servers of one project) never take the same segment at once.
It only inserts: the per-minute rollups are added by one process per server
(store/rollups.py).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import Connection, Engine

from pointsman.logstore.spool import Orphan, claim, read_segment, segments_in, worker_folders
from pointsman.store.rollups import hold_roller_off
from pointsman.store.tables import prediction_log

log = logging.getLogger("pointsman.logstore")

BATCH = 1000
COLUMNS = [c.name for c in prediction_log.columns if c.name != "id"]
PASS_LOCK = ".shipping"  # in the spool root; a dot name is no worker's folder
OnShipped = Callable[[list[dict[str, Any]]], None]


class Shipper:
    """Moves the sealed segments under one spool root, and dead workers' folders, into the
    store; with `only`, of live folders that one alone (a batch job or CLI call shipping its
    own records while a server ships the rest)."""

    def __init__(
        self,
        root: Path,
        engine: Engine,
        on_shipped: OnShipped | None = None,
        only: Path | None = None,
        alone: bool = False,
    ) -> None:
        self.root = root
        self.engine = engine
        self.on_shipped = on_shipped  # e.g. the CloudEvents sink: told once records are stored
        self.only = only
        self.alone = alone  # no serving event loop shares this process (the log process)
        self.shipped = 0  # records inserted or found already there

    def ship(self) -> int:
        """Ship what is sealed, and every dead worker's folder; how many went. Raises if the
        store fails (what is not shipped stays for the next pass)."""
        count = 0
        with _pass_lock(self.root):
            for folder in worker_folders(self.root):
                orphan = claim(folder)
                if orphan is not None:
                    count += self._ship_orphan(orphan)
                elif self.only is None or folder == self.only:
                    # Live: the highest-numbered segment is the one being written.
                    sealed = segments_in(folder)[:-1]
                    count += ship_segments(self.engine, sealed, self.on_shipped, self.alone)
        self.shipped += count
        return count

    def _ship_orphan(self, orphan: Orphan) -> int:
        done = False
        try:
            segments = segments_in(orphan.folder)
            count = ship_segments(self.engine, segments, self.on_shipped, self.alone)
            done = True
            if count:
                log.info("shipped %d records left by a stopped worker (%s)", count, orphan.folder)
            return count
        finally:
            orphan.release(remove=done)


@contextlib.contextmanager
def _pass_lock(root: Path) -> Iterator[None]:
    """One pass at a time over `root`, whichever process runs it."""
    root.mkdir(parents=True, exist_ok=True)
    fd = os.open(root / PASS_LOCK, os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def ship_segments(
    engine: Engine,
    segments: Iterable[Path],
    on_shipped: OnShipped | None = None,
    alone: bool = False,
) -> int:
    """Insert every record of `segments` (oldest first), deleting each once committed;
    `alone`: no serving event loop shares this process (see `insert_batch`)."""
    count = 0
    for segment in segments:
        try:
            records = read_segment(segment)
        except FileNotFoundError:  # removed meanwhile (by a shipper of an older version)
            continue
        for batch in _batches(records, BATCH):
            insert_records(engine, batch, alone)
        segment.unlink(missing_ok=True)
        if on_shipped is not None:
            on_shipped(records)
        count += len(records)
    return count


def insert_records(engine: Engine, records: list[dict[str, Any]], alone: bool = False) -> None:
    """Insert records, skipping those already stored (same request id, role and version)."""
    if records:
        with engine.begin() as conn:
            insert_batch(conn, records, alone)


def insert_batch(conn: Connection, records: list[dict[str, Any]], alone: bool = False) -> None:
    """`insert_records` in the caller's transaction. `alone`: no serving event loop shares
    this process's GIL, so SQLite may take rows one by one (`_insert_sqlite_rows`)."""
    if conn.dialect.name == "postgresql":
        _insert_postgresql(conn, records)
    elif alone:
        _insert_sqlite_rows(conn, records)
    elif sqlite3.sqlite_version_info >= (3, 38):
        _insert_sqlite(conn, records)
    else:
        _insert_rows(conn, records)


def _insert_rows(conn: Connection, records: list[dict[str, Any]]) -> None:
    """SQLite before 3.38 (no JSON operators): executemany."""
    statement = sqlite.insert(prediction_log).on_conflict_do_nothing(
        index_elements=["request_id", "role", "version"]
    )
    conn.execute(statement, [_row(r) for r in records])


# PostgreSQL: the batch is one JSON array too, taken apart by json_populate_recordset (a
# quarter of executemany's time). The transaction holds the roller off (store/rollups.py):
# ids are handed out here but counted only once it commits.
_POSTGRESQL_INSERT = (
    f"INSERT INTO {prediction_log.name} ({', '.join(COLUMNS)}) SELECT {', '.join(COLUMNS)} "
    f"FROM json_populate_recordset(NULL::{prediction_log.name}, CAST(:batch AS json)) "
    "ON CONFLICT (request_id, role, version) DO NOTHING"
)


def _insert_postgresql(conn: Connection, records: list[dict[str, Any]]) -> None:
    batch = [{**r, "time": datetime.fromtimestamp(r["time"], UTC).isoformat()} for r in records]
    hold_roller_off(conn)
    conn.execute(sa.text(_POSTGRESQL_INSERT), {"batch": orjson.dumps(batch).decode()})


# SQLite: the whole batch is one JSON array bound to one statement, taken apart by SQLite.
# executemany would step once per row with the GIL released and take it back after each
# row; next to a busy event loop every take waits out its switch interval, so a batch of a
# few hundred records kept the request thread switching for ~200 ms of each second. The
# stored values are SQLAlchemy's: JSON columns as JSON text ('null' for None), and `time`
# in its DateTime format (UTC).
_JSON_COLUMNS = frozenset({"inputs", "outputs", "findings", "extra"})
_SQLITE_INSERT = (
    f"INSERT INTO {prediction_log.name} ({', '.join(COLUMNS)}) SELECT "
    + ", ".join(f"value {'->' if c in _JSON_COLUMNS else '->>'} '$.{c}'" for c in COLUMNS)
    + " FROM json_each(?) WHERE true ON CONFLICT (request_id, role, version) DO NOTHING"
)
_SQLITE_TIME = "%Y-%m-%d %H:%M:%S.%f"


def _insert_sqlite(conn: Connection, records: list[dict[str, Any]]) -> None:
    batch = [
        {**r, "time": datetime.fromtimestamp(r["time"], UTC).strftime(_SQLITE_TIME)}
        for r in records
    ]
    conn.exec_driver_sql(_SQLITE_INSERT, (orjson.dumps(batch).decode(),))


# SQLite, in a process that serves no requests: executemany over plain tuples, about half
# the CPU of the JSON statement above, which parses a record's text again for every column
# it takes out of it (~35 µs a record against ~20, read and parse included). It gives up
# the GIL for each row, which is harmless where no event loop waits to take it back.
_SQLITE_INSERT_ROWS = (
    f"INSERT INTO {prediction_log.name} ({', '.join(COLUMNS)}) "
    f"VALUES ({', '.join('?' * len(COLUMNS))}) "
    "ON CONFLICT (request_id, role, version) DO NOTHING"
)


def _insert_sqlite_rows(conn: Connection, records: list[dict[str, Any]]) -> None:
    rows = []
    for record in records:
        row = [record.get(name) for name in COLUMNS]
        for i in _JSON_INDEXES:  # SQLAlchemy's JSON text ('null' for None)
            row[i] = orjson.dumps(row[i]).decode()
        row[_TIME_INDEX] = sqlite_time(record["time"])
        rows.append(tuple(row))
    conn.exec_driver_sql(_SQLITE_INSERT_ROWS, rows)


_JSON_INDEXES = tuple(i for i, name in enumerate(COLUMNS) if name in _JSON_COLUMNS)
_TIME_INDEX = COLUMNS.index("time")
_last_second: tuple[int, str] = (-1, "")  # the last second formatted, and its text


def sqlite_time(seconds: float) -> str:
    """Seconds since 1970 as SQLAlchemy stores a UTC DateTime in SQLite, rounded to the
    microsecond as `datetime.fromtimestamp` rounds (half to even) at a fifth of its cost:
    records of one second share its text."""
    global _last_second
    whole = int(seconds)
    micro = round((seconds - whole) * 1e6)
    if micro >= 1_000_000:
        whole, micro = whole + 1, micro - 1_000_000
    second = _last_second
    if second[0] != whole:
        second = _last_second = (whole, time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(whole)))
    return f"{second[1]}.{micro:06d}"


def _row(record: dict[str, Any]) -> dict[str, Any]:
    row = {name: record.get(name) for name in COLUMNS}
    row["time"] = datetime.fromtimestamp(record["time"], UTC)
    return row


def _batches(items: list[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
