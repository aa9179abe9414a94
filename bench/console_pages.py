"""Server time of each console page over a large store: 50 models of 5 versions and 1 million
prediction records (SQLite, or --database-url for PostgreSQL).

The models' version rows copy one real registered version (the demo's churn v1: its signature,
reference profile and lineage), so that every page renders real content; nothing is served, so
no runner starts. Pages are called in-process through ASGI, each --rounds times; the median
and the worst are printed per page. Records are spread over the last 7 days across the
models, plus a hot model holding --hot records in the last 24 hours. Records are inserted
directly and then rolled up in one pass (the roller's SQL); then --tail more records of the
hot model, answered in the last seconds, are shipped and left for the pages to add (what a
busy server's roller has not reached yet, about two seconds of its records); as a baseline,
the hot model's 24 h traffic and latency are also aggregated from the raw records, the way
dashboards read them before the rollups, and the ratio printed. Each page is timed with the
tail, then again once it is rolled up (what the pages read with no tail to add).

    .venv/bin/python bench/console_pages.py                # ~2-3 minutes, mostly inserting
    .venv/bin/python bench/console_pages.py --records 200000 --hot 20000   # quicker
"""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from starlette.applications import Starlette

from pointsman.auth import KeyBook, KeyCache
from pointsman.demo.churn import train_versions
from pointsman.logstore.shipper import insert_records
from pointsman.project import Project, init_project, open_project
from pointsman.registry import Submission
from pointsman.routing.policy import Arm, Policy
from pointsman.settings import load_settings
from pointsman.store.rollups import pending_records, roll_up_all, roll_up_pending
from pointsman.store.tables import key_requests, models, prediction_log, routes, versions
from pointsman.ui import ConsoleParts, console_mount


def fill(project: Project, n_models: int, n_versions: int, records: int, hot: int) -> None:
    """Models and versions copied from one real version; routes; prediction records."""
    trained = train_versions(Path(project.settings.project_path()) / "train")[0]
    project.registry.register(
        Submission(model="m00", path=trained.path, training_data=trained.training_data,
                   target="churned", user="bench")
    )  # fmt: skip
    now = datetime.now(UTC)
    with project.engine.begin() as conn:
        template = conn.execute(sa.select(versions)).first()
        assert template is not None
        base = {
            k: v
            for k, v in template._mapping.items()
            if k not in ("id", "model_id", "number", "sha256")
        }
        for m in range(n_models):
            name = f"m{m:02d}"
            if m:
                conn.execute(
                    models.insert().values(
                        name=name,
                        created_at=now,
                        created_by="bench",
                        description=f"bench model {m}",
                        owner="bench",
                    )
                )
            model_id = conn.execute(
                sa.select(models.c.id).where(models.c.name == name)
            ).scalar_one()
            start = 2 if m == 0 else 1
            conn.execute(
                versions.insert(),
                [
                    {**base, "model_id": model_id, "number": n, "sha256": uuid.uuid4().hex * 2}
                    for n in range(start, n_versions + 1)
                ],
            )
            policy = Policy(arms=(Arm(n_versions - 1, 90), Arm(n_versions, 10)))
            conn.execute(
                routes.insert().values(
                    model_id=model_id,
                    revision=1,
                    spec=policy.to_json(),
                    reason="bench",
                    created_at=now,
                    created_by="bench",
                )
            )
    row = {
        "tenure_months": [12],
        "monthly_charges": [70.5],
        "support_calls": [1],
        "age": [40],
        "plan": ["standard"],
        "contract": ["annual"],
        "region": ["north"],
    }
    rng = random.Random(7)
    batch: list[dict[str, Any]] = []

    def flush() -> None:
        with project.engine.begin() as conn:
            conn.execute(prediction_log.insert(), batch)
        batch.clear()

    for i in range(records + hot):
        hot_row = i >= records
        model = "m00" if hot_row else f"m{rng.randrange(n_models):02d}"
        span = 86400 if hot_row else 7 * 86400
        batch.append(
            {
                "request_id": f"r{i}",
                "role": "primary",
                "version": n_versions - (rng.random() < 0.9),
                "model": model,
                "time": now - timedelta(seconds=rng.random() * span),
                "client": "bench",
                "n_rows": 1,
                "inputs": row,
                "outputs": {"predictions": [0]},
                "latency_ms": rng.lognormvariate(1, 0.5),
                "model_ms": 1.0,
                "error_code": "model_error" if rng.random() < 0.01 else None,
                "findings": [
                    {"row": 0, "feature": "age", "rule": "range", "value": 200, "allowed": "18..90"}
                ]
                if rng.random() < 0.02
                else None,
            }
        )
        if len(batch) >= 20_000:
            flush()
    if batch:
        flush()
    # A client whose collected key made every record: /ui/clients sums their last 24 hours.
    with project.engine.begin() as conn:
        conn.execute(
            key_requests.insert().values(
                client="acme", model="m00", scopes=["predict:m00"], state="collected",
                requested_by="bench", requested_at=now, key_name="bench",
            )
        )  # fmt: skip


def ship_tail(project: Project, n: int, n_versions: int) -> None:
    """`n` records of the hot model from the last 2 s, shipped (not rolled up)."""
    rng = random.Random(11)
    now = time.time()
    records = [
        {"request_id": f"tail{i}", "role": "primary", "version": n_versions, "model": "m00",
         "time": now - rng.random() * 2, "client": "bench", "n_rows": 1,
         "inputs": {"age": [40]}, "outputs": {"predictions": [0]},
         "latency_ms": rng.lognormvariate(1, 0.5), "model_ms": 1.0,
         "error_code": None, "findings": [{"row": 0, "feature": "age", "rule": "range"}]
         if rng.random() < 0.02 else None}
        for i in range(n)
    ]  # fmt: skip
    for start in range(0, n, 1000):
        insert_records(project.engine, records[start : start + 1000])


def raw_window(project: Project, model: str, span_s: float) -> None:
    """The baseline: a window's counts per bucket and role, and every latency, from the raw
    records (what dashboards read before the rollups; they sampled 10 000 latencies)."""
    t = prediction_log.c
    since = datetime.now(UTC) - timedelta(seconds=span_s)
    epoch = (sa.func.julianday(t.time) - 2440587.5) * 86400.0
    if project.engine.dialect.name != "sqlite":
        epoch = sa.extract("epoch", t.time)
    bucket = sa.cast(sa.func.floor((epoch - since.timestamp()) / (span_s / 30)), sa.Integer)
    where = [t.model == model, t.time >= since, t.role.in_(("primary", "fallback", "pinned"))]
    with project.engine.connect() as conn:
        counts = sa.select(bucket, t.role, t.error_code.is_(None), sa.func.count())
        conn.execute(counts.where(*where).group_by(bucket, t.role, t.error_code.is_(None))).all()
        conn.execute(sa.select(bucket, t.latency_ms).where(*where)).all()


def time_raw(project: Project, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        raw_window(project, "m00", 86400)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


async def measure(project: Project, rounds: int) -> list[tuple[str, float, float]]:
    app = Starlette(routes=[console_mount()])
    keys = KeyCache(KeyBook(project.engine))
    key, _ = KeyBook(project.engine).create(f"admin-{uuid.uuid4().hex[:8]}", ["admin"], "bench")
    keys.refresh(force=True)

    async def invoke(model: str, body: bytes, client: str) -> tuple[int, Any]:
        return 200, {}

    app.state.project = project
    app.state.console = ConsoleParts(keys, invoke)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
        form = await client.get("/ui/signin")
        token = re.search(r'name="token" value="([^"]+)"', form.text).group(1)  # type: ignore[union-attr]
        await client.post("/ui/signin", data={"key": key, "token": token})
        pages = [
            "/ui/models",
            "/ui/models/m07",
            "/ui/models/m07/portal",
            "/ui/models/m07/dashboard?window=1h",
            "/ui/models/m07/dashboard?window=24h",
            "/ui/models/m00/dashboard?window=1h",
            "/ui/models/m00/dashboard?window=24h",
            "/ui/models/m00/actions",
            "/ui/clients",
            "/ui/requests",
        ]
        out = []
        for url in pages:
            times = []
            for _ in range(rounds):
                start = time.perf_counter()
                answer = await client.get(url)
                times.append((time.perf_counter() - start) * 1000)
                assert answer.status_code == 200, (url, answer.status_code)
            out.append((url, statistics.median(times), max(times)))
        return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=int, default=50)
    parser.add_argument("--versions", type=int, default=5)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--hot", type=int, default=50_000, help="records of m00 in the last 24 h")
    parser.add_argument("--tail", type=int, default=5000, help="records left to roll up")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--database-url", default="")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder, _ = init_project(Path(tmp) / "project", args.database_url)
        project = open_project(load_settings(folder))
        project.registry.compile_at_register = False
        started = time.perf_counter()
        fill(project, args.models, args.versions, args.records, args.hot)
        print(
            f"filled {args.models} models x {args.versions} versions, "
            f"{args.records + args.hot} records in {time.perf_counter() - started:.0f} s"
        )
        started = time.perf_counter()
        with project.engine.begin() as conn:
            roll_up_all(conn)
        print(f"rolled up in {time.perf_counter() - started:.1f} s")
        ship_tail(project, args.tail, args.versions)
        if project.engine.dialect.name == "postgresql":  # what autovacuum does in a while
            with project.engine.begin() as conn:
                conn.exec_driver_sql("ANALYZE")
        print(f"records not rolled up, which the pages add: {pending_records(project.engine)}")
        pages = asyncio.run(measure(project, args.rounds))
        roll_up_pending(project.engine)  # and again with nothing left to add
        rolled = {
            url: (median, worst)
            for url, median, worst in asyncio.run(measure(project, args.rounds))
        }
        print(f"{'page':45s} {'with the tail: median (worst)':>30s} {'all rolled up':>22s}")
        for url, median, worst in pages:
            print(f"{url:45s} {median:14.1f} ({worst:7.1f}) ms {rolled[url][0]:10.1f} "
                  f"({rolled[url][1]:7.1f}) ms")  # fmt: skip
        raw = time_raw(project, args.rounds)
        page = next(median for url, median, _ in pages if url.endswith("m00/dashboard?window=24h"))
        print(f"baseline: m00's 24 h aggregated from raw records, median {raw:.1f} ms "
              f"(the rolled-up page: {page / raw:.2f} of it)")  # fmt: skip
        project.close()


if __name__ == "__main__":
    main()
