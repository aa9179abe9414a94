"""`pointsman batch --cluster`: chunks on a Dask LocalCluster of processes, same output;
a cancel stops the job's chunks there and a resume finishes it."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from pointsman.batch import JobBook
from pointsman.batch.cluster import scorer_of
from pointsman.batch.run import job_folder
from pointsman.errors import ArtifactTampered
from pointsman.project import open_project
from pointsman.settings import load_settings
from tests.batch.test_batch_cli import batch, table_with_faults
from tests.batch.test_cancel import wait_for_chunks
from tests.batch.test_jobs import _reap, numbers, register_slow
from tests.cli.test_routes_cli import flat, run

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def scheduler() -> Iterator[str]:
    with distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        host="127.0.0.1",
    ) as cluster:
        yield cluster.scheduler_address


def test_a_job_on_a_dask_cluster_writes_what_a_local_run_writes(
    churn_project: list[str], scheduler: str, tmp_path: Path
) -> None:
    table_with_faults().to_csv(tmp_path / "in.csv", index=False)
    batch(churn_project, str(tmp_path / "in.csv"), "-o", str(tmp_path / "local.parquet"))
    shown = batch(
        churn_project,
        str(tmp_path / "in.csv"),
        "-o",
        str(tmp_path / "dask.parquet"),
        "--cluster",
        scheduler,
    )
    assert "succeeded" in shown
    for name in ("{}.parquet", "{}.rejects.parquet"):
        local = pd.read_parquet(tmp_path / name.format("local")).drop(columns=["job_id"])
        remote = pd.read_parquet(tmp_path / name.format("dask")).drop(columns=["job_id"])
        pd.testing.assert_frame_equal(local, remote)


def test_a_worker_refuses_shipped_bytes_that_are_not_the_version(tmp_path: Path) -> None:
    from dataclasses import dataclass

    @dataclass
    class Version:
        model: str = "churn"
        number: int = 1
        sha256: str = "0" * 64
        artifact: str = "ab/model.joblib"

    @dataclass
    class Setup:
        version: Version
        job_id: str = "j"
        dry_run: bool = False

    with pytest.raises(ArtifactTampered, match="shipped to this worker"):
        scorer_of(b"not the model", Setup(Version()))  # type: ignore[arg-type]


def scheduler_tasks(address: str) -> list[str]:
    """The keys of the chunk tasks the scheduler still holds, from any client."""
    with distributed.Client(address, timeout=30) as client:
        keys = client.run_on_scheduler(lambda dask_scheduler: list(dask_scheduler.tasks))
    return [str(k) for k in keys if "score_on_worker" in str(k)]


def test_a_job_cancelled_on_a_dask_cluster_stops_and_resumes_to_the_uninterrupted_output(
    scheduler: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    folder = tmp_path / "proj"
    run("init", str(folder))
    p = ["--project", str(folder)]
    with open_project(load_settings(folder)) as project:
        register_slow(project, tmp_path, sleep_s=0.15)
    numbers(6000).to_parquet(tmp_path / "in.parquet")
    args = ["slow", str(tmp_path / "in.parquet"), "--keep", "id", "--chunk-rows", "100"]
    cluster = ["--cluster", scheduler]
    run(*p, "batch", *args, *cluster, "-o", str(tmp_path / "whole.parquet"))

    output = tmp_path / "out.parquet"
    job_process = subprocess.Popen(
        [sys.executable, "-m", "pointsman", *p, "batch", *args, *cluster, "-o", str(output)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    request.addfinalizer(lambda: _reap(job_process.pid))
    with open_project(load_settings(folder)) as project:
        book = JobBook(project.engine)
        job_id = wait_for_chunks(book, str(output), 3)
        shown = flat(run(*p, "jobs", "cancel", job_id).output)
        assert f"job {job_id}: slow version 1, cancelled" in shown
        _, stderr = job_process.communicate(timeout=30)
        assert job_process.returncode == 1
        assert f"Job {job_id} was cancelled by" in " ".join(stderr.decode().split())

        cancelled = book.get(job_id)
        assert cancelled.state == "cancelled" and cancelled.finished_at is not None
        assert cancelled.error.startswith("cancelled by ")
        assert 3 <= len(cancelled.chunks_done) < 60
        assert cancelled.rows_done == 100 * len(cancelled.chunks_done)
        # The chunks in flight were cancelled on the cluster, not left to run there...
        deadline = time.monotonic() + 30
        while scheduler_tasks(scheduler) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert scheduler_tasks(scheduler) == []
        # ...and none was written or recorded after the cancel: the parts are the chunks done.
        time.sleep(1.0)  # several chunks' time, were any still coming
        parts = job_folder(project, job_id) / "parts"
        written = {int(part.stem.split("-")[1]) for part in parts.glob("out-*.arrow")}
        after = book.get(job_id)
        assert written == after.chunks_done == cancelled.chunks_done
        assert (after.state, after.rows_done) == ("cancelled", cancelled.rows_done)
        assert not output.exists() and not list(tmp_path.glob("*.partial"))

        shown = flat(run(*p, "jobs", "resume", job_id).output)
        assert f"{len(cancelled.chunks_done)} chunks done" in shown and "succeeded" in shown
        done = book.get(job_id)
        assert done.state == "succeeded" and done.error == "" and done.rows_done == 6000
        assert done.chunks_done == set(range(60))
    whole = pd.read_parquet(tmp_path / "whole.parquet").drop(columns=["job_id"])
    resumed = pd.read_parquet(output).drop(columns=["job_id"])
    pd.testing.assert_frame_equal(whole, resumed)
    assert resumed["row"].tolist() == list(range(6000))
