"""POST /v1/models/{m}/jobs runs a batch job in the background; GET /v1/admin/jobs follows it."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pandas as pd
import pytest

from pointsman.batch import JobBook, JobSpec, create_job
from pointsman.batch.run import job_folder
from pointsman.demo.churn import TARGET, make_data
from pointsman.project import Project
from tests.batch.test_cancel import check_stopped, wait_for_chunks
from tests.batch.test_jobs import _group, numbers, register_slow

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


async def test_a_job_cancelled_over_the_api_stops_its_process_and_is_audited(
    client: httpx.AsyncClient, served: Project, tmp_path: Path
) -> None:
    register_slow(served, tmp_path, sleep_s=0.15)
    numbers(6000).to_parquet(tmp_path / "in.parquet")
    output = tmp_path / "out.parquet"
    body = {
        "input": str(tmp_path / "in.parquet"),
        "output": str(output),
        "keep": ["id"],
        "chunk_rows": 100,
        "workers": 1,  # the launched process scores itself (the CLI test has workers)
    }
    r = await client.post("/v1/models/slow/jobs", json=body)
    assert r.status_code == 202, r.text
    job_id = r.json()["id"]
    book = JobBook(served.engine)
    await asyncio.to_thread(wait_for_chunks, book, str(output), 3)
    pid = int(book.get(job_id).runner.rpartition(":")[2])  # `pointsman jobs resume ID`
    pids = _group(pid)
    assert pid in pids

    r = await client.post(f"/v1/admin/jobs/{job_id}/cancel", headers={"X-Pointsman-User": "ann"})
    assert r.status_code == 200, r.text
    shown = r.json()
    assert (shown["state"], shown["chunks_done"]) == (
        "cancelled",
        len(book.get(job_id).chunks_done),
    )
    assert shown["error"].startswith("cancelled by tests (for ann) at ")
    await asyncio.to_thread(check_stopped, served, job_id, pids, output)
    audit = (await client.get("/v1/admin/audit", params={"action": "job.cancel"})).json()
    assert [(a["who"], a["target"]) for a in audit] == [("tests (for ann)", f"job:{job_id}")]
    log = (job_folder(served, job_id) / "job.log").read_text()
    assert f"Job {job_id} was cancelled by tests (for ann)" in " ".join(log.split())

    refused = [
        (f"/v1/admin/jobs/{job_id}/cancel", 409, "has already been cancelled"),
        ("/v1/admin/jobs/0123abcd/cancel", 404, "No batch job '0123abcd'"),
    ]
    for path, status, says in refused:
        r = await client.post(path)
        assert r.status_code == status, r.text
        assert says in r.json()["error"] and r.json()["code"], r.text

    # A job whose process has not stopped within wait_s: 202, still cancelling.
    spec = JobSpec(body["input"], str(tmp_path / "o2.parquet"), str(tmp_path / "r2.parquet"))
    job = create_job(served, "slow", None, spec, "test")
    book.start(job.id, 6000, "queued")  # as if this (live) process ran it
    r = await client.post(f"/v1/admin/jobs/{job.id}/cancel", params={"wait_s": 0})
    assert (r.status_code, r.json()["state"]) == (202, "cancelling"), r.text
