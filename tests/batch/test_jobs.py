"""Batch jobs as records: on both stores, SQL tables in and out, resume after SIGKILL."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from pointsman.batch import JobBook, JobSpec, create_job, run_job
from pointsman.batch.run import job_folder
from pointsman.batch.score import ChunkResult
from pointsman.errors import ChunkFailed, JobConflict
from pointsman.project import Project, open_project
from pointsman.registry import Submission
from pointsman.settings import load_settings
from tests.cli.test_routes_cli import run

SLOW_MODEL = '''
import time


class SlowSum:
    """Sums its inputs, slowly: a job of it is long enough to be killed half-way."""

    def predict(self, frame):
        time.sleep(0.03)
        return (frame["a"] + frame["b"] + frame["c"]).tolist()
'''


def numbers(rows: int, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(rows, 3)).round(6), columns=["a", "b", "c"])
    frame.insert(0, "id", np.arange(rows) * 7)
    return frame


def register_slow(project: Project, folder: Path, sleep_s: float = 0.03) -> None:
    source = folder / "slow.py"
    source.write_text(SLOW_MODEL.replace("0.03", str(sleep_s)))
    numbers(200, seed=1).drop(columns=["id"]).to_csv(folder / "train.csv", index=False)
    project.registry.register(
        Submission(
            model="slow",
            path=source,
            entrypoint="SlowSum",
            training_data=folder / "train.csv",
            user="test",
        )
    )


def test_a_job_reads_and_writes_sql_tables_and_is_recorded_chunk_by_chunk(
    project: Project, tmp_path: Path
) -> None:
    register_slow(project, tmp_path)
    url = project.settings.resolved_database_url()
    engine = sa.create_engine(url)
    data = numbers(450)
    data.to_sql("customers", engine, index=False)
    with engine.begin() as conn:  # a primary key gives the reading order
        if engine.dialect.name == "postgresql":
            conn.execute(sa.text("ALTER TABLE customers ADD PRIMARY KEY (id)"))
    spec = JobSpec(f"{url}#customers", f"{url}#scores", f"{url}#scores_rejects", ("id",), 100, 1)
    job = create_job(project, "slow", None, spec, "test")
    assert job.state == "queued" and job.version == 1
    seen: list[int] = []
    done = run_job(project, job.id, lambda j: seen.append(j.rows_done))
    assert done.state == "succeeded" and done.rows_total == done.rows_done == 450
    assert seen == [100, 200, 300, 400, 450, 450] and done.rows_per_s
    assert JobBook(project.engine).get(job.id).chunks_done == {0, 1, 2, 3, 4}
    scores = pd.read_sql('SELECT * FROM scores ORDER BY "row"', engine)
    assert scores["id"].tolist() == data["id"].tolist()
    np.testing.assert_allclose(scores["prediction"], data[["a", "b", "c"]].sum(axis=1))
    assert set(scores["job_id"]) == {job.id}
    assert (scores["status"] == "flagged").sum() == done.rows_flagged > 0  # out of range
    assert pd.read_sql("SELECT * FROM scores_rejects", engine).empty
    assert not job_folder(project, job.id).exists()  # parts removed once assembled
    engine.dispose()


def test_each_progress_report_is_the_job_record_as_stored(project: Project, tmp_path: Path) -> None:
    register_slow(project, tmp_path, sleep_s=0)
    data = numbers(250)
    data.loc[7, "a"] = None  # refused: a null
    data.loc[8, "b"] = 1e6  # flagged: out of range
    data.to_csv(tmp_path / "in.csv", index=False)
    spec = JobSpec(
        str(tmp_path / "in.csv"), str(tmp_path / "o.csv"), str(tmp_path / "r.csv"), (), 100, 1
    )
    job = create_job(project, "slow", None, spec, "test")
    book = JobBook(project.engine)
    reports: list[tuple[object, ...]] = []

    def figures(j: object) -> tuple[object, ...]:
        names = ("rows_done", "rows_rejected", "rows_flagged", "rows_failed", "chunks_done")
        return tuple(getattr(j, n) for n in names)

    def progress(j: object) -> None:
        assert figures(j) == figures(book.get(job.id))
        reports.append(figures(j))

    done = run_job(project, job.id, progress)
    assert done.rows_done == 250 and done.rows_rejected == 1 and done.rows_flagged >= 1
    assert [r[0] for r in reports] == [100, 200, 250, 250]


@pytest.mark.parametrize(
    ("workers", "whole_group", "group_rows"),
    [("1", True, None), ("2", False, None), ("2", False, 70)],
    ids=["in-process-killed", "job-pid-killed-workers-left", "workers-reading-row-groups"],
)
def test_a_job_killed_mid_run_resumes_to_the_output_of_an_uninterrupted_run(
    tmp_path: Path,
    workers: str,
    whole_group: bool,
    group_rows: int | None,
    request: pytest.FixtureRequest,
) -> None:
    # One worker: the job's own process scores, and SIGKILL takes it whole. Two: only the
    # job's process is killed (by its PID), its workers may outlive it for a moment; with
    # row groups smaller than a chunk, the workers read their chunks themselves.
    folder = tmp_path / "proj"
    run("init", str(folder))
    p = ["--project", str(folder)]
    with open_project(load_settings(folder)) as project:
        register_slow(project, tmp_path)
    numbers(3000).to_parquet(tmp_path / "in.parquet", row_group_size=group_rows)
    args = [
        "batch",
        "slow",
        str(tmp_path / "in.parquet"),
        "--keep",
        "id",
        "--chunk-rows",
        "100",
        "--workers",
        workers,
    ]
    run(*p, *args, "-o", str(tmp_path / "whole.parquet"))

    killed = subprocess.Popen(
        [sys.executable, "-m", "pointsman", *p, *args, "-o", str(tmp_path / "resumed.parquet")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    request.addfinalizer(lambda: _reap(killed.pid))
    engine = sa.create_engine(f"sqlite:///{folder / 'pointsman.db'}")
    book = JobBook(engine)
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            jobs = [j for j in book.find() if j.spec.output.endswith("resumed.parquet")]
            if jobs and len(book.get(jobs[0].id).chunks_done) >= 5:
                break
            time.sleep(0.02)
        if whole_group:
            os.killpg(killed.pid, signal.SIGKILL)
        else:
            os.kill(killed.pid, signal.SIGKILL)
    finally:
        killed.wait(10)
    # The killed job's workers (and its forkserver) end too, rather than wait on its queue.
    deadline = time.monotonic() + 60
    while _group(killed.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _group(killed.pid) == []
    job = book.get(jobs[0].id)
    assert job.state == "running" and 5 <= len(job.chunks_done) < 30
    assert not (tmp_path / "resumed.parquet").exists()

    shown = run(*p, "jobs", "resume", job.id).output
    assert f"{len(job.chunks_done)} chunks done" in shown
    done = book.get(job.id)
    assert done.state == "succeeded" and done.rows_done == 3000
    assert done.chunks_done == set(range(30))
    whole = pd.read_parquet(tmp_path / "whole.parquet").drop(columns=["job_id"])
    resumed = pd.read_parquet(tmp_path / "resumed.parquet").drop(columns=["job_id"])
    pd.testing.assert_frame_equal(whole, resumed)
    assert run(*p, "jobs", "resume", job.id, ok=False).exit_code == 1  # done: nothing to resume
    assert len(resumed) == 3000 and resumed["row"].is_unique
    engine.dispose()


def _group(pgid: int) -> list[int]:
    """The live processes of a process group."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            found.append(int(entry))
    return found


def _reap(group: int) -> None:
    """End what is left of a killed job's process group (its orphaned workers)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, signal.SIGKILL)


def test_an_artifact_changed_since_registration_fails_the_job_saying_so(
    project: Project, tmp_path: Path
) -> None:
    register_slow(project, tmp_path)
    version = project.registry.get_version("slow", "1")
    stored = project.registry.artifacts.path_of(version.artifact)
    stored.write_text(stored.read_text() + "\n# edited\n")
    numbers(10).to_csv(tmp_path / "in.csv", index=False)
    spec = JobSpec(str(tmp_path / "in.csv"), str(tmp_path / "o.csv"), str(tmp_path / "r.csv"))
    job = create_job(project, "slow", None, spec, "test")
    with pytest.raises(ChunkFailed, match="changed after registration"):
        run_job(project, job.id)
    failed = JobBook(project.engine).get(job.id)
    assert failed.state == "failed" and "changed after registration" in failed.error


def test_a_job_whose_input_changed_is_not_resumed(project: Project, tmp_path: Path) -> None:
    register_slow(project, tmp_path)
    numbers(10).to_csv(tmp_path / "in.csv", index=False)
    spec = JobSpec(str(tmp_path / "in.csv"), str(tmp_path / "o.csv"), str(tmp_path / "r.csv"))
    job = create_job(project, "slow", None, spec, "test")
    JobBook(project.engine).chunk_done(job.id, ChunkResult(0, 5, 0, 0, 0, 0.1), None)
    numbers(12).to_csv(tmp_path / "in.csv", index=False)  # chunk 0 is other rows now
    with pytest.raises(JobConflict, match="changed since the job started"):
        run_job(project, job.id)
