"""What the per-minute rollups cost: one batch inserted, then rolled up, or inserted alone.

The same batches of records (as the spool holds them, over the last hour, 2 models of
2 versions, some errors and findings) are inserted into a fresh store, alternating the
shipper's `insert_records` followed by the roller's `roll_up_pending` (the work of both, per
batch; they run in different processes) with the insert alone, into two stores side by
side; the median per batch and per record is printed.

    .venv/bin/python bench/rollup_cost.py [--batch 160 1000] [--rounds 15]
    .venv/bin/python bench/rollup_cost.py --database-url PG_URL_1 PG_URL_2 PG_URL_3
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from pointsman.logstore import shipper
from pointsman.store.engine import connect, upgrade_to_head
from pointsman.store.rollups import roll_up_pending
from pointsman.store.tables import prediction_log


def records(n: int, serial: int) -> list[dict[str, Any]]:
    rng = random.Random(serial)
    now = time.time()
    return [
        {"request_id": f"b{serial}-{i}", "role": "primary", "version": rng.choice([1, 2]),
         "model": rng.choice(["churn", "iris"]), "time": now - rng.random() * 3600,
         "client": "bench", "n_rows": 1, "inputs": {"age": [40], "plan": ["standard"]},
         "outputs": {"predictions": [0]}, "latency_ms": rng.lognormvariate(1, 0.5),
         "model_ms": 1.0, "error_code": "model_error" if rng.random() < 0.01 else None,
         "findings": [{"row": 0, "feature": "age", "rule": "range"}]
         if rng.random() < 0.02 else None}
        for i in range(n)
    ]  # fmt: skip


def insert_and_roll_up(engine: sa.Engine, batch: list[dict[str, Any]]) -> None:
    """The shipper's insert, then the roller's run over what it inserted."""
    shipper.insert_records(engine, batch)
    roll_up_pending(engine)


def executemany(engine: sa.Engine, batch: list[dict[str, Any]]) -> None:
    """PostgreSQL: the shipper's insert before the rollups (executemany, no roll-up)."""
    statement = postgresql.insert(prediction_log).on_conflict_do_nothing()
    with engine.begin() as conn:
        conn.execute(statement, [shipper._row(r) for r in batch])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, nargs="+", default=[160, 1000])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument(
        "--database-url", nargs="+", metavar="URL",
        help="empty PostgreSQL databases, two (or three: the last also times the insert of "
        "before, executemany) (default: two SQLite files)",
    )  # fmt: skip
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        urls = args.database_url or [f"sqlite:///{Path(tmp) / f'{n}.db'}" for n in "ab"]
        engines = [connect(url) for url in urls]
        for engine in engines:
            upgrade_to_head(engine)
        sides: list[tuple[str, sa.Engine, Callable[[sa.Engine, list[Any]], None]]] = [
            ("with rollups", engines[0], insert_and_roll_up),
            ("insert only", engines[1], shipper.insert_records),
        ]
        if len(engines) > 2:
            sides.append(("executemany before", engines[2], executemany))
        serial = 0
        for size in args.batch:
            times: dict[str, list[float]] = {name: [] for name, _, _ in sides}
            for _ in range(args.rounds):
                serial += 1
                batch = records(size, serial)
                for name, engine, insert in sides:
                    start = time.perf_counter()
                    insert(engine, batch)
                    times[name].append(time.perf_counter() - start)
            medians = {name: statistics.median(t) for name, t in times.items()}
            added = medians["with rollups"] - medians["insert only"]
            print(
                f"batch {size:5d}: "
                + ", ".join(f"{n} {m * 1000:.2f} ms" for n, m in medians.items())
                + f"; added {added * 1000:.2f} ms a batch, {added / size * 1e6:.1f} µs a record"
                + f" (ratio {medians['with rollups'] / medians['insert only']:.2f})"
            )
            if "executemany before" in medians:
                before = medians["executemany before"]
                print(
                    f"  with rollups / executemany before: {medians['with rollups'] / before:.2f}"
                )
        for engine in engines:
            engine.dispose()


if __name__ == "__main__":
    main()
