"""POST /v1/models/{m}/jobs runs a batch job in the background; GET /v1/admin/jobs follows it."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pandas as pd
import pytest

from pointsman.demo.churn import TARGET, make_data

pytestmark = pytest.mark.anyio


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """SQLite only: jobs on PostgreSQL are tested in tests/batch/test_jobs.py, without a
    server (each app start here costs seconds)."""
    return f"sqlite:///{tmp_path / 'pointsman.db'}"


async def test_a_job_posted_runs_in_the_background_and_is_listed(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    data = make_data(300, 9).drop(columns=[TARGET])
    data.insert(0, "customer_id", range(300))
    data.to_parquet(tmp_path / "in.parquet")
    body = {
        "input": str(tmp_path / "in.parquet"),
        "output": str(tmp_path / "out.csv"),
        "keep": ["customer_id"],
        "chunk_rows": 100,
        "workers": 1,
    }
    r = await client.post("/v1/models/churn/jobs", json=body)
    assert r.status_code == 202, r.text
    job = r.json()
    assert (job["state"], job["version"], job["created_by"]) == ("queued", 1, "tests")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        shown = (await client.get(f"/v1/admin/jobs/{job['id']}")).json()
        if shown["state"] in ("succeeded", "failed"):
            break
        await asyncio.sleep(0.1)
    assert shown["state"] == "succeeded", shown
    assert (shown["rows_total"], shown["rows_done"], shown["chunks_done"]) == (300, 300, 3)
    out = pd.read_csv(tmp_path / "out.csv")
    assert out["customer_id"].tolist() == list(range(300))
    listed = (await client.get("/v1/admin/jobs", params={"model": "churn"})).json()["jobs"]
    assert [j["id"] for j in listed] == [job["id"]]
    # Refused before anything runs, with what to do (one app start serves every case).
    refused = [
        ("/v1/models/churn/jobs", {**body, "input": "/nope.csv"}, 400, "does not exist"),
        ("/v1/models/nope/jobs", body, 404, "'nope'"),
        ("/v1/admin/jobs/0123", None, 404, "No batch job '0123'"),
    ]
    for path, sent, status, says in refused:
        r = await (client.post(path, json=sent) if sent is not None else client.get(path))
        assert r.status_code == status, r.text
        assert says in r.json()["error"]
