"""Per-minute rollups of the prediction log, kept by the transaction that inserts the records.

Per (model, minute, version, role): requests, errors, records with findings, the latency sum
and a histogram over fixed log buckets (sqrt(2) apart); per feature and rule, the findings.
Every column is a count or a sum, so a window of any length is a sum over its minutes and
its percentiles come from the summed histogram, whatever the window. The shipper adds each
batch it inserts in the same transaction (only the records actually inserted: a batch shipped
twice is counted once), so a record shipped late lands in its own minute, and no reader
has to catch up; `roll_up_all` fills the rollups of a store that had records before them.
"""

from __future__ import annotations

import math
import sqlite3
from bisect import bisect_right
from collections.abc import Sequence
from datetime import datetime
from functools import cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from pointsman.store.tables import (
    LATENCY_BUCKETS,
    client_rollups,
    finding_rollups,
    prediction_rollups,
)

# Bucket k holds latencies in [UPPER_MS[k-1], UPPER_MS[k]): 0 takes everything under 0.177 ms,
# the last everything from ~370 s up.
UPPER_MS = tuple(0.125 * 2 ** (k / 2) for k in range(1, LATENCY_BUCKETS))
HISTOGRAM = tuple(f"h{i:02d}" for i in range(LATENCY_BUCKETS))
KEY = ("model", "minute", "version", "role")
_COUNTS = ("requests", "errors", "flagged", "latency_ms_sum", *HISTOGRAM)


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
    rollups, in the caller's transaction. Rows are upserted in key order, so two shippers
    adding to the same minutes on PostgreSQL wait for each other instead of deadlocking."""
    dialect = conn.dialect.name
    bind = {**params, **{f"e{k}": edge for k, edge in enumerate(UPPER_MS)}}
    expanding: list[sa.BindParameter[Any]] = [
        sa.bindparam(name, expanding=True) for name in params if name == "ids"
    ]
    conn.execute(sa.text(_counts_sql(dialect, where)).bindparams(*expanding), bind)
    conn.execute(sa.text(_findings_sql(dialect, where)).bindparams(*expanding), params)
    conn.execute(sa.text(_clients_sql(dialect, where)).bindparams(*expanding), params)


def roll_up_ids(conn: Connection, ids: Sequence[int]) -> None:
    """Add the records with these ids (just inserted, in this transaction) to the rollups."""
    if not ids:
        return
    if conn.dialect.name == "postgresql":  # one array parameter, not one per id
        # psycopg prepares a statement run 5 times; PostgreSQL's generic plan for it, made
        # without the array's length, took half a second a batch: planned each time instead.
        conn.exec_driver_sql("SET LOCAL plan_cache_mode = force_custom_plan")
        roll_up(conn, "p.id = ANY(CAST(:id_array AS BIGINT[]))", {"id_array": list(ids)})
    else:
        roll_up(conn, "p.id IN :ids", {"ids": list(ids)})


def roll_up_range(conn: Connection, low: int, high: int) -> None:
    """Add the records with ids from `low` to `high` (just inserted) to the rollups."""
    if low <= high:
        roll_up(conn, "p.id >= :low AND p.id <= :high", {"low": low, "high": high})


def roll_up_all(conn: Connection) -> None:
    """Rebuild every rollup from the prediction log (a store that had records before them)."""
    conn.execute(client_rollups.delete())
    conn.execute(finding_rollups.delete())
    conn.execute(prediction_rollups.delete())
    roll_up(conn, "true", {})


def _minute_sql(dialect: str) -> str:
    if dialect == "postgresql":
        return "CAST(floor(extract(epoch FROM p.time) / 60) AS BIGINT)"
    return "CAST(strftime('%s', p.time) AS INTEGER) / 60"  # whole seconds: exact at :00


def _upsert(table: str, key: Sequence[str], columns: Sequence[str]) -> str:
    sets = ", ".join(f"{c} = {table}.{c} + excluded.{c}" for c in columns)
    return f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {sets}"


@cache
def _counts_sql(dialect: str, where: str) -> str:
    is_array = "json_typeof" if dialect == "postgresql" else "json_type"
    bucket = " ".join(f"WHEN p.latency_ms < :e{k} THEN {k}" for k in range(len(UPPER_MS)))
    histogram = ", ".join(
        f"sum(CASE WHEN b = {k} THEN 1 ELSE 0 END)" for k in range(LATENCY_BUCKETS)
    )
    key = ", ".join(KEY)
    # MATERIALIZED: inlined, the bucket's CASE would run once per histogram column. The
    # outer WHERE true: SQLite would otherwise read ON CONFLICT as a join's ON.
    return (
        f"WITH src AS {_MATERIALIZED[dialect]}(SELECT p.model, {_minute_sql(dialect)} AS minute, "
        "p.version, p.role, CASE WHEN p.error_code IS NULL THEN 0 ELSE 1 END AS err, "
        # Nested: PostgreSQL may not stop at the first false of an AND, and json_array_length
        # fails on anything but an array there.
        f"CASE WHEN {is_array}(p.findings) = 'array' THEN "
        "CASE WHEN json_array_length(p.findings) > 0 THEN 1 ELSE 0 END ELSE 0 END AS flag, "
        f"p.latency_ms, CASE {bucket} ELSE {len(UPPER_MS)} END AS b "
        f"FROM {_records(dialect)} WHERE {where}) "
        f"INSERT INTO {prediction_rollups.name} ({key}, {', '.join(_COUNTS)}) "
        f"SELECT {key}, count(*), sum(err), sum(flag), sum(latency_ms), {histogram} "
        f"FROM src WHERE true GROUP BY {key} ORDER BY {key} "
        + _upsert(prediction_rollups.name, KEY, _COUNTS)
    )


# SQLite before 3.35 knows no MATERIALIZED (and then inlines the CTE: slower, same counts).
_MATERIALIZED = {
    "postgresql": "MATERIALIZED ",
    "sqlite": "MATERIALIZED " if sqlite3.sqlite_version_info >= (3, 35) else "",
}


def _records(dialect: str) -> str:
    # NOT INDEXED: SQLite would otherwise walk the (model, time) index for the GROUP BY's
    # order, reading every record instead of the batch's id range.
    return "prediction_log AS p" + (" NOT INDEXED" if dialect == "sqlite" else "")


@cache
def _findings_sql(dialect: str, where: str) -> str:
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
    key = (*KEY, "feature", "rule")
    return (
        f"INSERT INTO {finding_rollups.name} ({', '.join(key)}, findings) "
        f"SELECT p.model, {_minute_sql(dialect)}, p.version, p.role, "
        f"coalesce({feature}, ''), coalesce({rule}, ''), count(*) "
        f"FROM {_records(dialect)}, {elements} AS f WHERE {where} "
        "GROUP BY 1, 2, 3, 4, 5, 6 ORDER BY 1, 2, 3, 4, 5, 6 "
        + _upsert(finding_rollups.name, key, ("findings",))
    )


@cache
def _clients_sql(dialect: str, where: str) -> str:
    key = ("client", "minute")
    return (
        f"INSERT INTO {client_rollups.name} (client, minute, requests, errors) "
        f"SELECT p.client, {_minute_sql(dialect)}, count(*), "
        "sum(CASE WHEN p.error_code IS NULL THEN 0 ELSE 1 END) "
        f"FROM {_records(dialect)} WHERE ({where}) AND p.client IS NOT NULL "
        "AND p.role <> 'shadow' GROUP BY 1, 2 ORDER BY 1, 2 "
        + _upsert(client_rollups.name, key, ("requests", "errors"))
    )
