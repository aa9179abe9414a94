"""Per-minute rollups kept by the shipper equal the raw aggregation of the prediction log."""

from __future__ import annotations

import random
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import sqlalchemy as sa
from alembic.command import downgrade
from alembic.config import Config

from pointsman.logstore.query import prune_predictions
from pointsman.logstore.shipper import insert_records
from pointsman.store.engine import connect, upgrade_to_head
from pointsman.store.revision import MIGRATIONS
from pointsman.store.rollups import HISTOGRAM, bucket_of, minute_of, percentile, roll_up_all
from pointsman.store.tables import (
    client_rollups,
    finding_rollups,
    prediction_log,
    prediction_rollups,
)

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


def stored_rollups(
    engine: sa.Engine,
) -> tuple[dict[tuple[Any, ...], list[Any]], Counter[tuple[Any, ...]]]:
    columns = ["requests", "errors", "flagged", "latency_ms_sum", *HISTOGRAM]
    with engine.connect() as conn:
        rows = {
            (row.model, row.minute, row.version, row.role): [row._mapping[c] for c in columns]
            for row in conn.execute(sa.select(prediction_rollups))
        }
        findings = Counter(
            {tuple(row[:6]): row[6] for row in conn.execute(sa.select(finding_rollups))}
        )
    return rows, findings


def assert_rollups_match(engine: sa.Engine, records: list[dict[str, Any]]) -> None:
    expected, expected_findings = raw_rollups(records)
    stored, stored_findings = stored_rollups(engine)
    assert stored.keys() == expected.keys()
    for key, row in expected.items():
        got = stored[key]
        assert got[:3] == row[:3] and got[4:] == row[4:], key  # counts: exact
        assert abs(got[3] - row[3]) < 1e-6 * max(1.0, row[3]), key
    assert stored_findings == expected_findings
    assert stored_clients(engine) == raw_clients(records)


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


def stored_clients(engine: sa.Engine) -> dict[tuple[str, int], list[int]]:
    with engine.connect() as conn:
        return {
            (row.client, row.minute): [row.requests, row.errors]
            for row in conn.execute(sa.select(client_rollups))
        }


def ship(engine: sa.Engine, records: list[dict[str, Any]], size: int = 250) -> None:
    for start in range(0, len(records), size):
        insert_records(engine, records[start : start + size])


def test_rollups_equal_the_raw_aggregation_and_count_a_reshipped_batch_once(
    database_url: str,
) -> None:
    engine = connect(database_url)
    try:
        records = make_records(3000)
        ship(engine, records)
        ship(engine, records[1000:1600], size=150)  # shipped again after a crash: no-ops
        mixed = records[2900:] + make_records(200, seed=2, prefix="m")
        random.Random(3).shuffle(mixed)  # old and new interleaved in one batch
        insert_records(engine, mixed)
        assert_rollups_match(engine, records + mixed)
    finally:
        engine.dispose()


def test_percentiles_of_a_window_are_within_one_bucket_of_the_raw_ones(database_url: str) -> None:
    engine = connect(database_url)
    try:
        records = make_records(4000, seed=5)
        ship(engine, records, size=1000)
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
        late = make_records(300, seed=8, prefix="late", hours=0.1)
        for record in late:  # held back by an outage: written 5 hours ago, shipped now
            record["time"] -= 5 * 3600
        ship(engine, late)
        assert_rollups_match(engine, recent + late)
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


def test_concurrent_shippers_count_each_record_once(database_url: str) -> None:
    """Four shippers at once (each worker has one), overlapping batches into the same
    minutes: every record counted once, no deadlock."""
    engine = connect(database_url)
    try:
        records = make_records(2400, seed=11, hours=0.2)
        errors: list[BaseException] = []

        def run(offset: int) -> None:
            try:  # each takes a different half, shifted: every record shipped by two
                mine = records[offset * 600 :] + records[: offset * 600]
                ship(engine, mine[:1200], size=100)
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert not errors, errors
        assert_rollups_match(engine, records)
    finally:
        engine.dispose()


def test_pruning_takes_the_rollups_of_whole_minutes_before_the_cutoff(database_url: str) -> None:
    engine = connect(database_url)
    try:
        records = make_records(1000, seed=13, hours=3)
        ship(engine, records)
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
        assert_rollups_match(engine, records)
        with engine.begin() as conn:  # and rebuilding them gives the same
            roll_up_all(conn)
        assert_rollups_match(engine, records)
    finally:
        engine.dispose()
