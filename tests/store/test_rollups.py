"""Per-minute rollups equal the raw aggregation of the prediction log: the tables once rolled
up, and what readers see (the rollups plus the records above the watermark) at any time."""

from __future__ import annotations

import random
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
from alembic.command import downgrade
from alembic.config import Config

from pointsman.logstore.query import prune_predictions
from pointsman.logstore.shipper import insert_batch, insert_records
from pointsman.store.engine import connect, upgrade_to_head
from pointsman.store.revision import MIGRATIONS
from pointsman.store.rollups import (
    HISTOGRAM,
    bucket_of,
    clients_with_tail,
    counts_with_tail,
    findings_with_tail,
    minute_of,
    pending_records,
    percentile,
    roll_up_all,
    roll_up_pending,
)
from pointsman.store.tables import (
    client_rollups,
    finding_rollups,
    prediction_log,
    prediction_rollups,
    rollup_watermark,
)
from tests.conftest import fresh_postgres_database, skip_or_fail

NOW = datetime.now(UTC).replace(second=30, microsecond=0)
FINDINGS = [
    [{"row": 0, "feature": "age", "rule": "range", "value": 200, "allowed": "18..90"}],
    [
        {"row": 0, "feature": "age", "rule": "range"},
        {"row": 1, "feature": "plan", "rule": "category"},
    ],
    [],
    None,
]


def make_records(
    n: int, seed: int = 1, prefix: str = "r", hours: float = 3
) -> list[dict[str, Any]]:
    """Records as the spool holds them (time in seconds since 1970), spread over `hours`."""
    rng = random.Random(seed)
    return [
        {
            "request_id": f"{prefix}{i}",
            "role": rng.choice(["primary", "primary", "fallback", "shadow", "pinned"]),
            "version": rng.choice([1, 2]),
            "model": rng.choice(["churn", "iris"]),
            "time": (NOW - timedelta(seconds=rng.random() * hours * 3600)).timestamp(),
            "n_rows": 1,
            "inputs": {"age": [40]},
            "latency_ms": rng.lognormvariate(1.5, 1.2),
            "error_code": "model_error" if rng.random() < 0.1 else None,
            "findings": rng.choice(FINDINGS) if rng.random() < 0.3 else None,
            "client": rng.choice(["crm", "web", None]),
        }
        for i in range(n)
    ]


def raw_rollups(
    records: list[dict[str, Any]],
) -> tuple[dict[tuple[Any, ...], list[Any]], Counter[tuple[Any, ...]]]:
    """What the rollups should hold, aggregated in Python from the records (each once)."""
    unique = {(r["request_id"], r["role"], r["version"]): r for r in records}
    rows: dict[tuple[Any, ...], list[Any]] = {}
    findings: Counter[tuple[Any, ...]] = Counter()
    for r in unique.values():
        key = (
            r["model"],
            minute_of(datetime.fromtimestamp(r["time"], UTC)),
            r["version"],
            r["role"],
        )
        row = rows.setdefault(key, [0, 0, 0, 0.0] + [0] * len(HISTOGRAM))
        row[0] += 1
        row[1] += r["error_code"] is not None
        row[2] += bool(r["findings"])
        row[3] += r["latency_ms"]
        row[4 + bucket_of(r["latency_ms"])] += 1
        for finding in r["findings"] or ():
            findings[(*key, finding["feature"], finding["rule"])] += 1
    return rows, findings


def everything(_: Any) -> list[sa.ColumnElement[bool]]:
    return []


def stored_rollups(
    engine: sa.Engine, read: bool = False
) -> tuple[dict[tuple[Any, ...], list[Any]], Counter[tuple[Any, ...]]]:
    """The rollup tables, or (`read`) what readers see: the rollups plus the tail, summed."""
    columns = ["requests", "errors", "flagged", "latency_ms_sum", *HISTOGRAM]
    counts: Any = prediction_rollups
    findings_of: Any = finding_rollups
    with engine.connect() as conn:
        if read:
            counts = counts_with_tail(conn, everything)
            findings_of = findings_with_tail(conn, everything)
        key = [counts.c.model, counts.c.minute, counts.c.version, counts.c.role]
        f = findings_of.c
        rows = {
            tuple(row[:4]): list(row[4:])
            for row in conn.execute(
                sa.select(*key, *(sa.func.sum(counts.c[c]) for c in columns)).group_by(*key)
            )
        }
        findings = Counter(
            {
                tuple(row[:6]): row[6]
                for row in conn.execute(
                    sa.select(f.model, f.minute, f.version, f.role, f.feature, f.rule)
                    .add_columns(sa.func.sum(f.findings))
                    .group_by(f.model, f.minute, f.version, f.role, f.feature, f.rule)
                )
            }
        )
    return rows, findings


def assert_rollups_match(
    engine: sa.Engine, records: list[dict[str, Any]], read: bool = False
) -> None:
    """The rollup tables (or what readers see) hold exactly the records' aggregation."""
    expected, expected_findings = raw_rollups(records)
    stored, stored_findings = stored_rollups(engine, read)
    assert stored.keys() == expected.keys()
    for key, row in expected.items():
        got = [int(v) for v in stored[key][:3]], float(stored[key][3]), stored[key][4:]
        assert got[0] == row[:3] and [int(v) for v in got[2]] == row[4:], key  # exact
        assert abs(got[1] - row[3]) < 1e-6 * max(1.0, row[3]), key
    assert {k: int(v) for k, v in stored_findings.items()} == expected_findings
    assert stored_clients(engine, read) == raw_clients(records)


def assert_exact(engine: sa.Engine, records: list[dict[str, Any]]) -> None:
    """Readers see the records before and after a roll-up; the tables hold all of them after."""
    assert_rollups_match(engine, records, read=True)
    roll_up_pending(engine)
    assert pending_records(engine) == 0
    assert_rollups_match(engine, records)
    assert_rollups_match(engine, records, read=True)


def raw_clients(records: list[dict[str, Any]]) -> dict[tuple[str, int], list[int]]:
    """Requests and errors per client and minute, shadows left out (each record once)."""
    unique = {(r["request_id"], r["role"], r["version"]): r for r in records}
    out: dict[tuple[str, int], list[int]] = {}
    for r in unique.values():
        if r["client"] is None or r["role"] == "shadow":
            continue
        key = (r["client"], minute_of(datetime.fromtimestamp(r["time"], UTC)))
        counts = out.setdefault(key, [0, 0])
        counts[0] += 1
        counts[1] += r["error_code"] is not None
    return out


def stored_clients(engine: sa.Engine, read: bool = False) -> dict[tuple[str, int], list[int]]:
    with engine.connect() as conn:
        table: Any = clients_with_tail(conn, everything) if read else client_rollups
        c = table.c
        query = sa.select(c.client, c.minute, sa.func.sum(c.requests), sa.func.sum(c.errors))
        return {
            (row[0], int(row[1])): [int(row[2]), int(row[3])]
            for row in conn.execute(query.group_by(c.client, c.minute))
        }


@pytest.fixture
def postgres_url(request: pytest.FixtureRequest, migrated_stores: dict[str, str]) -> str:
    """A PostgreSQL store migrated to head (what several shippers at once need)."""
    if not migrated_stores["postgresql"]:
        skip_or_fail("PostgreSQL not reachable")
    return fresh_postgres_database(request, migrated_stores["postgresql"])


def ship(engine: sa.Engine, records: list[dict[str, Any]], size: int = 250) -> None:
    """What the shippers do: insert batches (the roll-up is another process's job)."""
    for start in range(0, len(records), size):
        insert_records(engine, records[start : start + size])


def watermark(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.select(rollup_watermark.c.last_id)).scalar_one())


def test_rollups_equal_the_raw_aggregation_and_count_a_reshipped_batch_once(
    database_url: str,
) -> None:
    engine = connect(database_url)
    try:
        records = make_records(3000)
        ship(engine, records)
        assert_rollups_match(engine, records, read=True)  # nothing rolled up yet: all tail
        assert roll_up_pending(engine, chunk=700) == 3000  # in chunks of ids
        ship(engine, records[1000:1600], size=150)  # shipped again after a crash: no-ops
        mixed = records[2900:] + make_records(200, seed=2, prefix="m")
        random.Random(3).shuffle(mixed)  # old and new interleaved in one batch
        insert_records(engine, mixed)
        assert pending_records(engine) == 200
        assert_exact(engine, records + mixed)
        assert roll_up_pending(engine) == 0  # nothing new: nothing moves
    finally:
        engine.dispose()


def test_percentiles_of_a_window_are_within_one_bucket_of_the_raw_ones(database_url: str) -> None:
    engine = connect(database_url)
    try:
        records = make_records(4000, seed=5)
        ship(engine, records, size=1000)
        roll_up_pending(engine)
        first = minute_of(NOW) - 120  # the last two hours, whole minutes
        r = prediction_rollups.c
        with engine.connect() as conn:
            summed = conn.execute(
                sa.select(*(sa.func.sum(r[h]) for h in HISTOGRAM)).where(
                    r.model == "churn", r.minute >= first, r.role.in_(["primary", "fallback"])
                )
            ).one()
        histogram = [int(v) for v in summed]
        raw = [
            rec["latency_ms"]
            for rec in records
            if rec["model"] == "churn"
            and rec["role"] in ("primary", "fallback")
            and minute_of(datetime.fromtimestamp(rec["time"], UTC)) >= first
        ]
        assert sum(histogram) == len(raw) > 500
        for q in (50, 95, 99):
            estimate = percentile(histogram, q)
            assert estimate is not None
            exact = float(np.percentile(raw, q))
            assert abs(bucket_of(estimate) - bucket_of(exact)) <= 1, (q, estimate, exact)
    finally:
        engine.dispose()


def test_late_records_land_in_their_own_minute(database_url: str) -> None:
    engine = connect(database_url)
    try:
        recent = make_records(300, seed=7, prefix="now", hours=0.1)
        ship(engine, recent)
        roll_up_pending(engine)
        late = make_records(300, seed=8, prefix="late", hours=0.1)
        for record in late:  # held back by an outage: written 5 hours ago, shipped now
            record["time"] -= 5 * 3600
        ship(engine, late)
        assert_exact(engine, recent + late)
        old = minute_of(NOW - timedelta(hours=4))
        with engine.connect() as conn:
            counted = conn.execute(
                sa.select(sa.func.sum(prediction_rollups.c.requests)).where(
                    prediction_rollups.c.minute < old
                )
            ).scalar_one()
        assert counted == 300
    finally:
        engine.dispose()


def test_concurrent_shippers_and_rollers_count_each_record_once(database_url: str) -> None:
    """Four shippers at once (each worker has one), overlapping batches into the same
    minutes, while two rollers (two servers' supervisors) roll up: every record counted
    once, no deadlock."""
    engine = connect(database_url)
    try:
        records = make_records(2400, seed=11, hours=0.2)
        errors: list[BaseException] = []
        shipping = threading.Event()

        def run(offset: int) -> None:
            try:  # each takes a different half, shifted: every record shipped by two
                mine = records[offset * 600 :] + records[: offset * 600]
                ship(engine, mine[:1200], size=100)
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        def roll() -> None:
            try:
                while shipping.is_set():
                    roll_up_pending(engine, chunk=150)
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        shipping.set()
        rollers = [threading.Thread(target=roll) for _ in range(2)]
        shippers = [threading.Thread(target=run, args=(i,)) for i in range(4)]
        for thread in rollers + shippers:
            thread.start()
        for thread in shippers:
            thread.join(timeout=120)
        shipping.clear()
        for thread in rollers:
            thread.join(timeout=120)
        assert not errors, errors
        assert_exact(engine, records)
    finally:
        engine.dispose()


def test_a_lower_id_committed_after_a_higher_one_is_not_skipped(postgres_url: str) -> None:
    """PostgreSQL hands out ids at insert: shipper A inserts first (lower ids) and commits
    after shipper B (higher ids). The roller must not move past A's ids before they commit."""
    engine = connect(postgres_url)
    try:
        first, second = make_records(300, seed=21, prefix="a"), make_records(300, seed=22)
        rolled: list[int] = []
        with engine.begin() as conn:  # shipper A's transaction, left open
            insert_batch(conn, first)
            insert_records(engine, second)  # shipper B: commits its higher ids first
            assert_rollups_match(engine, second, read=True)  # readers see what is committed
            roller = threading.Thread(target=lambda: rolled.append(roll_up_pending(engine)))
            roller.start()
            waited = wait_for_a_waiting_lock(engine, roller)  # the roller waits for shipper A
        roller.join(timeout=60)
        assert rolled and watermark(engine) == max_id(engine)
        assert_rollups_match(engine, first + second)  # A's records counted, and once
        assert waited
        assert_exact(engine, first + second)
    finally:
        engine.dispose()


def wait_for_a_waiting_lock(engine: sa.Engine, roller: threading.Thread) -> bool:
    """Whether a session of this database came to wait for an advisory lock before the
    roller ended (it must not end while a shipper is open); bounded to a minute."""
    query = sa.text(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
        "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    )
    for _ in range(600):
        with engine.connect() as conn:
            if conn.execute(query).scalar_one():
                return True
        if not roller.is_alive():
            return False
        threading.Event().wait(0.1)
    return False


def max_id(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.max(prediction_log.c.id))).scalar_one())


def test_pruning_takes_the_rollups_of_whole_minutes_before_the_cutoff(database_url: str) -> None:
    engine = connect(database_url)
    try:
        records = make_records(1000, seed=13, hours=3)
        ship(engine, records)
        roll_up_pending(engine)
        cutoff = NOW - timedelta(hours=1, seconds=15)
        prune_predictions(engine, timedelta(hours=1, seconds=15), now=NOW)
        kept = [r for r in records if datetime.fromtimestamp(r["time"], UTC) >= cutoff]
        expected, _ = raw_rollups(kept)
        stored, _ = stored_rollups(engine)
        edge = minute_of(cutoff)  # the cutoff's own minute keeps the counts of its pruned part
        assert min(k[1] for k in stored) >= edge
        assert {k for k in stored if k[1] > edge} == {k for k in expected if k[1] > edge}
        clients = stored_clients(engine)
        assert min(minute for _, minute in clients) >= edge
        assert {k: v for k, v in clients.items() if k[1] > edge} == {
            k: v for k, v in raw_clients(kept).items() if k[1] > edge
        }
    finally:
        engine.dispose()


def test_records_after_pruning_the_last_ones_are_counted(database_url: str) -> None:
    """SQLite gives the ids of deleted last records out again: pruning records shipped last
    (late, hence old) must not leave the watermark above the new records' ids."""
    engine = connect(database_url)
    try:
        recent = make_records(200, seed=31, prefix="now", hours=0.1)
        late = make_records(100, seed=32, prefix="late", hours=0.1)
        for record in late:
            record["time"] -= 10 * 3600
        ship(engine, recent + late)  # the late ones get the highest ids
        roll_up_pending(engine)
        prune_predictions(engine, timedelta(hours=5), now=NOW)
        more = make_records(150, seed=33, prefix="more", hours=0.1)
        ship(engine, more)
        assert pending_records(engine) == 150
        assert_exact(engine, recent + more)
    finally:
        engine.dispose()


def test_a_store_with_records_gets_its_rollups_when_migrated(empty_database_url: str) -> None:
    engine = connect(empty_database_url)
    try:
        upgrade_to_head(engine)
        records = make_records(500, seed=17)
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        with engine.begin() as conn:
            config.attributes["connection"] = conn
            downgrade(config, "0013")
            rows = [{**r, "time": datetime.fromtimestamp(r["time"], UTC)} for r in records]
            conn.execute(prediction_log.insert(), rows)
        upgrade_to_head(engine)
        assert pending_records(engine) == 0
        assert_rollups_match(engine, records)
        with engine.begin() as conn:  # and rebuilding them gives the same
            roll_up_all(conn)
        assert_rollups_match(engine, records)
        more = make_records(100, seed=18, prefix="more")
        ship(engine, more)
        with engine.begin() as conn:  # back to rollups made by the shippers: none missing
            config.attributes["connection"] = conn
            downgrade(config, "0014")
        assert_rollups_match(engine, records + more)
    finally:
        engine.dispose()
