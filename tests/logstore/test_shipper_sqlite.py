"""The SQLite batch insert stores what the SQLAlchemy insert stores, and stays idempotent."""

from __future__ import annotations

import math
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import orjson
import pytest
import sqlalchemy as sa

from pointsman.logstore import shipper
from pointsman.logstore.query import LogQuery, find_predictions
from pointsman.logstore.record import build_record
from pointsman.logstore.spool import dumps
from pointsman.store.engine import connect, upgrade_to_head
from pointsman.store.tables import prediction_log
from pointsman.types import Frame, Outputs

pytestmark = pytest.mark.skipif(
    sqlite3.sqlite_version_info < (3, 38), reason="the batch insert needs SQLite 3.38"
)


def records() -> list[dict[str, object]]:
    """Spooled records as the shipper reads them back, with every column's edge cases."""
    frame = Frame({"a": np.array([1.5, math.nan])}, 2)
    out = []
    for i in range(4):
        record = build_record(
            request_id=f"r{i}",
            role="primary",
            model="churn",
            version=1,
            frame=frame,
            inputs={"a": [1.5, None], "s": ['x"y', "é\u2028"], "big": [2**62]},
            outputs=None if i % 2 else Outputs([1, 0], np.array([[0.1, 0.9], [0.7, 0.3]]), [0, 1]),
            latency_s=0.001234567,
            model_s=None if i == 3 else 0.0009,
            route_revision=None if i == 2 else 3,
            client=None if i == 1 else "k",
            findings=[{"row": 0, "feature": "a", "rule": "not_finite"}] if i == 3 else None,
            error_code="model_failed" if i == 1 else None,
            error="boom 'quoted' \\ back" if i == 1 else None,
            extra={"fallback": {"from_version": 2}} if i == 0 else None,
        )
        out.append(orjson.loads(dumps(record)))
    return out


def stored(engine: sa.engine.Engine) -> list[tuple[object, ...]]:
    query = sa.select(prediction_log).order_by(prediction_log.c.request_id)
    with engine.connect() as conn:
        return [tuple(row)[1:] for row in conn.execute(query)]  # all but the id


def test_batch_insert_stores_what_sqlalchemy_stores(tmp_path: Path) -> None:
    batch, rows = (connect(f"sqlite:///{tmp_path / name}.db") for name in ("batch", "rows"))
    for engine in (batch, rows):
        upgrade_to_head(engine)
    spooled = records()
    shipper.insert_records(batch, spooled)
    shipper.insert_records(batch, spooled)  # shipped twice: a no-op
    with rows.begin() as conn:
        shipper._insert_rows(conn, spooled)
    assert len(stored(batch)) == 4
    assert stored(batch) == stored(rows)
    query = LogQuery(model="churn")
    assert find_predictions(batch, query).records == find_predictions(rows, query).records


# Seconds since 1970 whose microseconds round half to even (down, then up), carry into the
# next second, or are plain.
EDGE_TIMES = (1733553601.0078125, 1733553601.0234375, 1733553601.9999997, 1733553601.123456789)


def test_row_by_row_insert_stores_what_sqlalchemy_stores(tmp_path: Path) -> None:
    """The log process's insert (alone: executemany) stores the very same values."""
    many, rows = (connect(f"sqlite:///{tmp_path / name}.db") for name in ("many", "rows"))
    for engine in (many, rows):
        upgrade_to_head(engine)
    spooled = records()
    for record, when in zip(spooled, EDGE_TIMES, strict=True):
        record["time"] = when
    shipper.insert_records(many, spooled, alone=True)
    shipper.insert_records(many, spooled, alone=True)  # shipped twice: a no-op
    with rows.begin() as conn:
        shipper._insert_rows(conn, spooled)
    assert len(stored(many)) == 4
    assert stored(many) == stored(rows)


def test_sqlite_time_rounds_as_datetime_does() -> None:
    rng = np.random.default_rng(14)
    spread = 1.7e9 + rng.random(20_000) * 1e8
    for seconds in [*EDGE_TIMES, 0.0, 59.9999995, *spread.tolist()]:
        expected = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
        assert shipper.sqlite_time(seconds) == expected, seconds
