"""Per-minute rollups of the prediction log, rolled up off the serving processes by id.

Per (model, minute, version, role): requests, errors, records with findings, the latency sum
and a histogram over fixed log buckets (sqrt(2) apart); per feature and rule, the findings;
per client, requests and errors. Every column is a count or a sum, so a window of any length
is a sum over its minutes and its percentiles come from the summed histogram.

The shipper only inserts records. `roll_up_pending`, run by one process per server (the
supervisor of `pointsman serve`), adds the records above the watermark (`rollup_watermark`)
and moves it, in one transaction; a record shipped late lands in its own minute. Readers take
the rollups plus the records above the watermark in one statement (`counts_with_tail` and
its siblings), so a page is exact however far the roll-up lags.

Ids are handed out at insert, not at commit: on PostgreSQL a shipper could commit a lower
id after another committed a higher one, and a watermark moved past the gap would never
count it. Shippers hold a shared advisory lock for their transaction (`hold_roller_off`);
the roller takes it exclusively for an instant, and the highest id it reads then has no
uncommitted id below it. On SQLite there is one writer, so ids commit in order.
"""

from __future__ import annotations

import math
import sqlite3
from bisect import bisect_right
from collections.abc import Callable, Sequence
from datetime import datetime
from functools import cache, lru_cache
from types import SimpleNamespace
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from pointsman.store.tables import (
    LATENCY_BUCKETS,
    client_rollups,
    finding_rollups,
    prediction_log,
    prediction_rollups,
    rollup_watermark,
)

# Bucket k holds latencies in [UPPER_MS[k-1], UPPER_MS[k]): 0 takes everything under 0.177 ms,
# the last everything from ~370 s up.
UPPER_MS = tuple(0.125 * 2 ** (k / 2) for k in range(1, LATENCY_BUCKETS))
HISTOGRAM = tuple(f"h{i:02d}" for i in range(LATENCY_BUCKETS))
KEY = ("model", "minute", "version", "role")
_COUNTS = ("requests", "errors", "flagged", "latency_ms_sum", *HISTOGRAM)
_FINDING_KEY = (*KEY, "feature", "rule")
_CLIENT_KEY = ("client", "minute")
# Shippers share this PostgreSQL advisory lock while they insert; the roller takes it alone.
ROLLER_LOCK = 0x706D726F6C6C7570  # "pmrollup"
LOCK_WAIT_S = 10  # how long the roller waits for the shippers in flight before giving up a run
CHUNK = 20_000  # ids rolled up per transaction: catching up never holds SQLite's writer long
# The records not rolled up yet, as SQL over `prediction_log AS p`.
PENDING = "p.id > (SELECT last_id FROM rollup_watermark WHERE id = 1)"
Filter = Callable[[Any], list[sa.ColumnElement[bool]]]


def bucket_of(latency_ms: float) -> int:
    """The histogram bucket of one latency (the same edges the SQL uses)."""
    return bisect_right(UPPER_MS, latency_ms)


def bucket_bounds(k: int) -> tuple[float, float]:
    """The latencies bucket `k` holds, [low, high) in ms (the last one's high is a guess)."""
    low = UPPER_MS[k - 1] if k else 0.0
    high = UPPER_MS[k] if k < len(UPPER_MS) else low * math.sqrt(2)
    return low, high


def percentile(histogram: Sequence[int], q: float) -> float | None:
    """The q-th percentile (0-100) of a summed histogram: the rank's bucket, and inside it
    the place by rank on a log scale (linear in the first bucket, which starts at 0)."""
    total = sum(histogram)
    if not total:
        return None
    target = q / 100 * total
    seen = 0
    for k, count in enumerate(histogram):
        if count and seen + count >= target:
            low, high = bucket_bounds(k)
            share = max(0.0, (target - seen) / count)
            return high * share if low == 0 else low * (high / low) ** share
        seen += count
    return bucket_bounds(len(histogram) - 1)[0]


def minute_of(when: datetime) -> int:
    """Minutes since 1970 (UTC) of a time: the `minute` of its rollup."""
    return math.floor(when.timestamp() / 60)


def roll_up(conn: Connection, where: str, params: dict[str, Any]) -> None:
    """Add the prediction records matching `where` (SQL over `prediction_log AS p`) to the
    rollups, in the caller's transaction. Rows are upserted in key order, so two writers
    adding to the same minutes on PostgreSQL wait for each other instead of deadlocking."""
    dialect = conn.dialect.name
    conn.execute(sa.text(_counts_sql(dialect, where)), {**params, **_EDGES})
    conn.execute(sa.text(_findings_sql(dialect, where)), params)
    conn.execute(sa.text(_clients_sql(dialect, where)), params)


def roll_up_range(conn: Connection, low: int, high: int) -> None:
    """Add the records with ids from `low` to `high` to the rollups."""
    if low <= high:
        roll_up(conn, "p.id >= :low AND p.id <= :high", {"low": low, "high": high})


def hold_roller_off(conn: Connection) -> None:
    """In a shipper's transaction, before it inserts: the roller does not read the highest id
    until this transaction ends (PostgreSQL; SQLite's single writer orders ids itself)."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock_shared({ROLLER_LOCK})")


def settled_id(engine: Engine) -> tuple[int, int]:
    """The highest record id with no insert still in flight below it, and the watermark."""
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql(
                f"SELECT set_config('lock_timeout', '{LOCK_WAIT_S}s', true), "
                f"pg_advisory_xact_lock({ROLLER_LOCK})"
            )
        # A statement after the lock's: its snapshot holds every shipper that ended before.
        high, last = conn.execute(sa.select(_LAST_RECORD, _WATERMARK)).one()
        return int(high), int(last or 0)


def roll_up_pending(engine: Engine, chunk: int = CHUNK) -> int:
    """Roll up the records above the watermark, up to the settled id, and move the mark;
    how many ids it moved over. Several processes may call it: they take turns. A run with
    nothing to do is one statement on SQLite (three on PostgreSQL) and writes nothing."""
    high, last = settled_id(engine)
    moved = 0
    while last < high:
        with engine.begin() as conn:
            last = _take_watermark(conn)  # another roller may have moved it meanwhile
            if last >= high:
                break
            upto = min(high, last + chunk)
            roll_up_range(conn, last + 1, upto)
            _set_watermark(conn, upto)
        moved += upto - last
        last = upto
    return moved


def roll_up_all(conn: Connection) -> None:
    """Rebuild every rollup from the prediction log, the watermark at its last record."""
    if conn.dialect.name == "postgresql":  # no shipper mid-insert while it reads the last id
        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({ROLLER_LOCK})")
    _take_watermark(conn)
    conn.execute(client_rollups.delete())
    conn.execute(finding_rollups.delete())
    conn.execute(prediction_rollups.delete())
    high = _last_record(conn)
    roll_up_range(conn, 1, high)
    _set_watermark(conn, high)


def after_prune(conn: Connection) -> None:
    """In the pruning transaction: SQLite hands the ids of deleted last records out again,
    so a watermark above the last record left comes down to it (nothing lies in between)."""
    if conn.dialect.name == "sqlite":
        w = rollup_watermark.c
        conn.execute(
            rollup_watermark.update()
            .where(w.id == 1, w.last_id > _LAST_RECORD)
            .values(last_id=_LAST_RECORD)
        )


def pending_records(engine: Engine) -> int:
    """How many records the rollups do not hold yet (tests, status)."""
    with engine.connect() as conn:
        where = sa.text(PENDING)
        p = prediction_log.alias("p")
        return int(
            conn.execute(sa.select(sa.func.count()).select_from(p).where(where)).scalar_one()
        )


_LAST_RECORD = sa.select(sa.func.coalesce(sa.func.max(prediction_log.c.id), 0)).scalar_subquery()
_WATERMARK = (
    sa.select(rollup_watermark.c.last_id).where(rollup_watermark.c.id == 1).scalar_subquery()
)


def _last_record(conn: Connection) -> int:
    return int(conn.execute(sa.select(_LAST_RECORD)).scalar_one())


def _read_watermark(conn: Connection) -> int:
    w = rollup_watermark.c
    return int(conn.execute(sa.select(w.last_id).where(w.id == 1)).scalar() or 0)


def _take_watermark(conn: Connection) -> int:
    """The watermark, locked for this transaction (its first write: SQLite's writer lock)."""
    w = rollup_watermark.c
    touched = conn.execute(
        rollup_watermark.update().where(w.id == 1).values(last_id=w.last_id)
    ).rowcount
    if not touched:
        conn.execute(rollup_watermark.insert().values(id=1, last_id=0))
    return _read_watermark(conn)


def _set_watermark(conn: Connection, last_id: int) -> None:
    conn.execute(
        rollup_watermark.update().where(rollup_watermark.c.id == 1).values(last_id=last_id)
    )


# -- reading: the rollups plus the records above the watermark, in one statement ----------
def counts_with_tail(conn: Connection, where: Filter) -> sa.Subquery:
    """prediction_rollups' columns over the rollups and the records not rolled up yet, each
    part filtered by `where(columns)` (model, minute, version, role); sum over it."""
    names = (*KEY, *_COUNTS)
    pending, floor = _pending(conn, where)
    tail = _grouped_sql(conn.dialect.name, pending)
    return _with_tail(prediction_rollups, names, tail, where, [*floor, *_EDGE_PARAMS])


def findings_with_tail(conn: Connection, where: Filter) -> sa.Subquery:
    """finding_rollups' columns over the rollups and the records not rolled up yet."""
    names = (*_FINDING_KEY, "findings")
    pending, floor = _pending(conn, where)
    tail = _findings_select(conn.dialect.name, pending)
    return _with_tail(finding_rollups, names, tail, where, floor)


def clients_with_tail(conn: Connection, where: Filter) -> sa.Subquery:
    """client_rollups' columns over the rollups and the records not rolled up yet."""
    names = (*_CLIENT_KEY, "requests", "errors")
    pending, floor = _pending(conn, where)
    tail = _clients_select(conn.dialect.name, pending)
    return _with_tail(client_rollups, names, tail, where, floor)


def _pending(conn: Connection, where: Filter) -> tuple[str, list[sa.BindParameter[Any]]]:
    """The SQL of the records not rolled up yet that `where` keeps, and its parameters. The
    reader's filter is applied to the records themselves, so a page of one model does not
    aggregate the others' tail."""
    kept = where(_raw_columns(conn.dialect.name))
    pending = PENDING
    if kept:
        # Inline literals: the statement is built for one read (a model, a window).
        sql = sa.and_(*kept).compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True})
        pending = f"{PENDING} AND {sql}"
    if conn.dialect.name != "postgresql":
        return pending, []
    # PostgreSQL's planner cannot see how few records lie above a watermark read inside the
    # statement (it guesses a third of them) and would walk all of a model's records by
    # its (model, time) index: the watermark read just before bounds the id range it plans
    # for (as a literal, so no generic plan). It only moves up; the statement's own read
    # keeps the figures exact if it moved meanwhile.
    floor: sa.BindParameter[int] = sa.bindparam(
        "floor", _read_watermark(conn), literal_execute=True
    )
    return f"{pending} AND p.id > :floor", [floor]


def _with_tail(
    table: sa.Table,
    names: Sequence[str],
    tail_sql: str,
    where: Filter,
    params: Sequence[sa.BindParameter[Any]],
) -> sa.Subquery:
    rolled = sa.select(*(table.c[n] for n in names)).where(*where(table.c))
    columns = [sa.column(n, table.c[n].type) for n in names]
    tail = sa.text(tail_sql).bindparams(*params).columns(*columns)
    return sa.union_all(rolled, tail).subquery("r")


def _raw_columns(dialect: str) -> SimpleNamespace:
    """The rollups' key columns as SQL over a record (`prediction_log AS p`), for filters."""
    return SimpleNamespace(
        model=sa.literal_column("p.model", sa.String()),
        version=sa.literal_column("p.version", sa.Integer()),
        role=sa.literal_column("p.role", sa.String()),
        client=sa.literal_column("p.client", sa.String()),
        minute=sa.literal_column(_minute_sql(dialect), sa.BigInteger()),
    )


# -- the SQL ------------------------------------------------------------------------------
_EDGES = {f"e{k}": edge for k, edge in enumerate(UPPER_MS)}
_EDGE_PARAMS: list[sa.BindParameter[Any]] = [sa.bindparam(n, edge) for n, edge in _EDGES.items()]


def _minute_sql(dialect: str) -> str:
    if dialect == "postgresql":
        return "CAST(floor(extract(epoch FROM p.time) / 60) AS BIGINT)"
    if sqlite3.sqlite_version_info >= (3, 38):  # whole seconds, as strftime: a third the cost
        return "(unixepoch(p.time) / 60)"
    return "(CAST(strftime('%s', p.time) AS INTEGER) / 60)"  # whole seconds: exact at :00


def _upsert(table: str, key: Sequence[str], columns: Sequence[str]) -> str:
    sets = ", ".join(f"{c} = {table}.{c} + excluded.{c}" for c in columns)
    return f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {sets}"


@lru_cache(maxsize=256)
def _grouped_sql(dialect: str, where: str) -> str:
    """The records matching `where` as rollup rows, one per key and latency bucket: the
    bucket is computed once a record (a grouping key), the histogram spread per group."""
    is_array = "json_typeof" if dialect == "postgresql" else "json_type"
    bucket = " ".join(f"WHEN p.latency_ms < :e{k} THEN {k}" for k in range(len(UPPER_MS)))
    histogram = ", ".join(
        f"CASE WHEN b = {k} THEN count(*) ELSE 0 END AS {name}" for k, name in enumerate(HISTOGRAM)
    )
    key = ", ".join(KEY)
    return (
        f"SELECT {key}, count(*) AS requests, sum(err) AS errors, sum(flag) AS flagged, "
        f"sum(latency_ms) AS latency_ms_sum, {histogram} FROM ("
        f"SELECT p.model AS model, {_minute_sql(dialect)} AS minute, p.version AS version, "
        "p.role AS role, CASE WHEN p.error_code IS NULL THEN 0 ELSE 1 END AS err, "
        # Nested: PostgreSQL may not stop at the first false of an AND, and json_array_length
        # fails on anything but an array there.
        f"CASE WHEN {is_array}(p.findings) = 'array' THEN "
        "CASE WHEN json_array_length(p.findings) > 0 THEN 1 ELSE 0 END ELSE 0 END AS flag, "
        f"p.latency_ms AS latency_ms, CASE {bucket} ELSE {len(UPPER_MS)} END AS b "
        f"FROM {_records(dialect)} WHERE {where}) AS src GROUP BY {key}, b"
    )


@cache
def _counts_sql(dialect: str, where: str) -> str:
    key = ", ".join(KEY)
    sums = ", ".join(f"sum({c})" for c in _COUNTS)
    # The outer WHERE true: SQLite would otherwise read ON CONFLICT as a join's ON.
    return (
        f"INSERT INTO {prediction_rollups.name} ({key}, {', '.join(_COUNTS)}) "
        f"SELECT {key}, {sums} FROM ({_grouped_sql(dialect, where)}) AS g WHERE true "
        f"GROUP BY {key} ORDER BY {key} " + _upsert(prediction_rollups.name, KEY, _COUNTS)
    )


def _records(dialect: str) -> str:
    # NOT INDEXED: SQLite would otherwise walk the (model, time) index for the GROUP BY's
    # order, reading every record instead of the id range.
    return "prediction_log AS p" + (" NOT INDEXED" if dialect == "sqlite" else "")


@lru_cache(maxsize=256)
def _findings_select(dialect: str, where: str) -> str:
    if dialect == "postgresql":
        elements = (
            "json_array_elements(CASE WHEN json_typeof(p.findings) = 'array' "
            "THEN p.findings ELSE CAST('[]' AS json) END)"
        )
        feature, rule = "f.value ->> 'feature'", "f.value ->> 'rule'"
        where = f"({where}) AND json_typeof(f.value) = 'object'"
    else:
        elements = "json_each(CASE WHEN json_type(p.findings) = 'array' THEN p.findings END)"
        feature = "CAST(json_extract(f.value, '$.feature') AS TEXT)"
        rule = "CAST(json_extract(f.value, '$.rule') AS TEXT)"
        where = f"({where}) AND f.type = 'object'"
    return (
        f"SELECT p.model AS model, {_minute_sql(dialect)} AS minute, p.version AS version, "
        f"p.role AS role, coalesce({feature}, '') AS feature, coalesce({rule}, '') AS rule, "
        f"count(*) AS findings FROM {_records(dialect)}, {elements} AS f WHERE {where} "
        "GROUP BY 1, 2, 3, 4, 5, 6"
    )


@cache
def _findings_sql(dialect: str, where: str) -> str:
    return (
        f"INSERT INTO {finding_rollups.name} ({', '.join(_FINDING_KEY)}, findings) "
        f"{_findings_select(dialect, where)} ORDER BY 1, 2, 3, 4, 5, 6 "
        + _upsert(finding_rollups.name, _FINDING_KEY, ("findings",))
    )


@lru_cache(maxsize=256)
def _clients_select(dialect: str, where: str) -> str:
    return (
        f"SELECT p.client AS client, {_minute_sql(dialect)} AS minute, count(*) AS requests, "
        "sum(CASE WHEN p.error_code IS NULL THEN 0 ELSE 1 END) AS errors "
        f"FROM {_records(dialect)} WHERE ({where}) AND p.client IS NOT NULL "
        "AND p.role <> 'shadow' GROUP BY 1, 2"
    )


@cache
def _clients_sql(dialect: str, where: str) -> str:
    return (
        f"INSERT INTO {client_rollups.name} (client, minute, requests, errors) "
        f"{_clients_select(dialect, where)} ORDER BY 1, 2 "
        + _upsert(client_rollups.name, _CLIENT_KEY, ("requests", "errors"))
    )
