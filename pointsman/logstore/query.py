"""Reading the prediction log back: filters, cursor pages, streaming, and pruning."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from pointsman.errors import BadCursor, BadLogQuery
from pointsman.store.rollups import after_prune, minute_of
from pointsman.store.tables import client_rollups, finding_rollups, outcomes, prediction_rollups
from pointsman.store.tables import prediction_log as t
from pointsman.types import Role

ROLES: tuple[Role, ...] = ("primary", "fallback", "pinned", "shadow")
MAX_LIMIT = 1000
# A span back from now, up to a few centuries (so that now minus it is still a date); the
# OpenAPI document shows it too.
SPAN = (
    r"^\s*0*(\d{1,10}(\.\d+)?\s*s|\d{1,8}(\.\d+)?\s*m|\d{1,6}(\.\d+)?\s*h"
    r"|\d{1,5}(\.\d+)?\s*d|\d{1,4}(\.\d+)?\s*w)\s*$"
)
_SPAN = re.compile(SPAN)
_PARTS = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
# The key name of an outcome sent for a request id (else it names a business key).
REQUEST_ID = "request_id"
TIME_FORMS = "use a span back from now (30s, 15m, 1h, 7d, 2w) or an ISO time (2026-11-22T08:00Z)"


def parse_span(name: str, text: str) -> timedelta:
    """`1h`, `30d` → a timedelta; anything else a BadLogQuery naming `name`."""
    match = _PARTS.search(text) if _SPAN.match(text) else None
    if not match:
        raise BadLogQuery(name, text, "use a number and a unit: 30s, 15m, 1h, 7d, 2w (up to 9999w)")
    return timedelta(seconds=float(match[1]) * _UNITS[match[2]])


def parse_time(name: str, text: str, now: datetime | None = None) -> datetime:
    """A point in time: a span back from `now` (`1h`) or an ISO time (UTC when no zone)."""
    if _SPAN.match(text):
        return (now or datetime.now(UTC)) - parse_span(name, text)
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise BadLogQuery(name, text, TIME_FORMS) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


@dataclass(frozen=True)
class LogQuery:
    """Which prediction records to read; every field optional."""

    model: str | None = None
    version: int | None = None
    role: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    request_id: str | None = None
    has_error: bool | None = None
    with_outcome: bool = False  # only records with an outcome sent for their request id

    def __post_init__(self) -> None:
        if self.role is not None and self.role not in ROLES:
            raise BadLogQuery("role", self.role, f"use one of {', '.join(ROLES)}")

    def where(self) -> list[sa.ColumnElement[bool]]:
        clauses: list[sa.ColumnElement[bool]] = []
        if self.model is not None:
            clauses.append(t.c.model == self.model)
        if self.version is not None:
            clauses.append(t.c.version == self.version)
        if self.role is not None:
            clauses.append(t.c.role == self.role)
        if self.since is not None:
            clauses.append(t.c.time >= _stored(self.since))
        if self.until is not None:
            clauses.append(t.c.time < _stored(self.until))
        if self.request_id is not None:
            clauses.append(t.c.request_id == self.request_id)
        if self.has_error is not None:
            clauses.append(
                t.c.error_code.isnot(None) if self.has_error else t.c.error_code.is_(None)
            )
        if self.with_outcome:  # through the request id's unique index, not a scan
            labelled = sa.select(outcomes.c.key_value).where(outcomes.c.key_name == REQUEST_ID)
            if self.model is not None:
                labelled = labelled.where(outcomes.c.model == self.model)
            clauses.append(t.c.request_id.in_(labelled))
        return clauses


@dataclass
class Page:
    """One page of records, newest first, and the cursor of the next (None at the end)."""

    records: list[dict[str, Any]]
    cursor: str | None


def find_predictions(
    engine: Engine, query: LogQuery, limit: int = 100, cursor: str | None = None
) -> Page:
    """Records matching `query`, newest first, `limit` at a time from `cursor`."""
    if not 1 <= limit <= MAX_LIMIT:
        raise BadLogQuery("limit", str(limit), f"use 1 to {MAX_LIMIT}")
    clauses = query.where()
    if cursor:
        when, row_id = decode_cursor(cursor)
        clauses.append(sa.or_(t.c.time < when, sa.and_(t.c.time == when, t.c.id < row_id)))
    statement = (
        sa.select(t).where(*clauses).order_by(t.c.time.desc(), t.c.id.desc()).limit(limit + 1)
    )
    with engine.connect() as conn:
        rows = conn.execute(statement).mappings().all()
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = encode_cursor(rows[-1]["time"], rows[-1]["id"]) if more else None
    return Page([to_json(row) for row in rows], next_cursor)


def iter_predictions(
    engine: Engine, query: LogQuery, batch: int = 5000, oldest_first: bool = True
) -> Iterator[dict[str, Any]]:
    """Every record matching `query`, read in keyset batches so memory stays bounded."""
    order = (t.c.time.asc(), t.c.id.asc()) if oldest_first else (t.c.time.desc(), t.c.id.desc())
    after: tuple[datetime, int] | None = None
    while True:
        clauses = query.where()
        if after is not None:
            when, row_id = after
            if oldest_first:
                clauses.append(sa.or_(t.c.time > when, sa.and_(t.c.time == when, t.c.id > row_id)))
            else:
                clauses.append(sa.or_(t.c.time < when, sa.and_(t.c.time == when, t.c.id < row_id)))
        statement = sa.select(t).where(*clauses).order_by(*order).limit(batch)
        with engine.connect() as conn:
            rows = conn.execute(statement).mappings().all()
        for row in rows:
            yield to_json(row)
        if len(rows) < batch:
            return
        after = (rows[-1]["time"], rows[-1]["id"])


def iter_sample(
    engine: Engine, query: LogQuery, positions: set[int], batch: int = 500
) -> Iterator[dict[str, Any]]:
    """The records at `positions` (0 = oldest) among `query`'s matches: only the keys of
    the others are read, so a small sample of a large log is quick."""
    ids: list[int] = []
    statement = sa.select(t.c.id).where(*query.where()).order_by(t.c.time.asc(), t.c.id.asc())
    with engine.connect() as conn:
        result = conn.execution_options(yield_per=10_000).execute(statement)
        ids = [row_id for i, (row_id,) in enumerate(result) if i in positions]
    for start in range(0, len(ids), batch):
        chunk = ids[start : start + batch]
        with engine.connect() as conn:
            rows = conn.execute(
                sa.select(t).where(t.c.id.in_(chunk)).order_by(t.c.time.asc(), t.c.id.asc())
            ).mappings()
            for row in rows.all():
                yield to_json(row)


def count_predictions(engine: Engine, query: LogQuery) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                sa.select(sa.func.count()).select_from(t).where(*query.where())
            ).scalar_one()
        )


def prune_predictions(engine: Engine, older_than: timedelta, now: datetime | None = None) -> int:
    """Delete records older than `older_than`, and the rollups of the whole minutes before
    the cutoff (the minute it falls in keeps its counts); returns how many records went."""
    cutoff = (now or datetime.now(UTC)) - older_than
    with engine.begin() as conn:
        result = conn.execute(sa.delete(t).where(t.c.time < _stored(cutoff)))
        for rollups in (prediction_rollups, finding_rollups, client_rollups):
            conn.execute(sa.delete(rollups).where(rollups.c.minute < minute_of(cutoff)))
        after_prune(conn)
    return int(result.rowcount or 0)


def to_json(row: Any) -> dict[str, Any]:
    """A stored row as the API and CLI show it."""
    # str(): SQLAlchemy may hand back keys as str subclasses, which orjson refuses.
    record = {str(key): value for key, value in row.items()}
    record.pop("id", None)
    record["time"] = _aware(record["time"]).isoformat()
    return record


def encode_cursor(when: datetime, row_id: int) -> str:
    raw = orjson.dumps([_aware(when).isoformat(), row_id])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        text, row_id = orjson.loads(raw)
        when, number = _stored(datetime.fromisoformat(text)), int(row_id)
    except (ValueError, TypeError, OverflowError, orjson.JSONDecodeError):
        number = -1
    if not 0 <= number < 2**63:  # a cursor this server did not write
        raise BadCursor(cursor)
    return when, number


def _aware(when: datetime) -> datetime:
    """SQLite hands times back without a zone; they were written in UTC."""
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _stored(when: datetime) -> datetime:
    return _aware(when).astimezone(UTC)
