"""Cancelling a batch job running in another process: it stops, its workers end, it resumes."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from pointsman.auth import read_audit
from pointsman.batch import Job, JobBook, JobSpec, create_job, run_job
from pointsman.batch.launch import start_in_background
from pointsman.batch.run import job_folder
from pointsman.errors import JobConflict, JobNotFound
from pointsman.project import Project, open_project
from pointsman.settings import load_settings
from tests.batch.test_jobs import _group, _reap, numbers, register_slow
from tests.cli.test_routes_cli import flat, run


def wait_for_chunks(book: JobBook, output: str, count: int) -> str:
    """The id of the job writing `output`, once it has recorded `count` chunks."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = [j for j in book.find() if j.spec.output == output]
        if found and len(book.get(found[0].id).chunks_done) >= count:
            return found[0].id
        time.sleep(0.05)
    raise AssertionError(f"no job writing {output} recorded {count} chunks within 60 s")


def check_stopped(project: Project, job_id: str, pids: list[int], output: Path) -> None:
    """Every process of the job has ended; the record, parts and output are as documented."""
    deadline = time.monotonic() + 30
    while any(_is_running(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert [p for p in pids if _is_running(p)] == []
    job = JobBook(project.engine).get(job_id)
    assert job.state == "cancelled" and job.finished_at is not None
    assert job.error.startswith("cancelled by ")
    assert 3 <= len(job.chunks_done) < 60 and job.rows_done == 100 * len(job.chunks_done)
    assert not output.exists()  # nothing assembled: no partial output to mistake for a whole
    assert not list(output.parent.glob("*.partial"))
    parts = job_folder(project, job_id) / "parts"
    assert not list(parts.glob("*.partial"))  # the killed workers' unfinished files removed
    written = {int(p.stem.split("-")[1]) for p in parts.glob("out-*.arrow")}
    assert job.chunks_done <= written  # every recorded chunk's part is kept, whole


def _is_running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def check_resumes(project: Project, job_id: str, output: Path) -> None:
    p = ["--project", str(project.settings.project_path())]
    run(*p, "jobs", "resume", job_id)
    done = JobBook(project.engine).get(job_id)
    assert done.state == "succeeded" and done.error == "" and done.rows_done == 6000
    scored = pd.read_parquet(output)
    assert scored["row"].tolist() == list(range(6000))
    data = numbers(6000)
    assert scored["id"].tolist() == data["id"].tolist()
    pd.testing.assert_series_equal(
        scored["prediction"], data[["a", "b", "c"]].sum(axis=1), check_names=False
    )


def test_a_job_cancelled_from_the_cli_stops_its_workers_and_resumes(
    project: Project, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    register_slow(project, tmp_path, sleep_s=0.15)
    numbers(6000).to_parquet(tmp_path / "in.parquet")
    output = tmp_path / "out.parquet"
    p = ["--project", str(project.settings.project_path())]
    args = [*p, "batch", "slow", str(tmp_path / "in.parquet"), "-o", str(output), "--keep"]
    job_process = subprocess.Popen(
        [sys.executable, "-m", "pointsman", *args, "id", "--chunk-rows", "100", "--workers", "2"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    request.addfinalizer(lambda: _reap(job_process.pid))
    book = JobBook(project.engine)
    job_id = wait_for_chunks(book, str(output), 3)
    pids = _group(job_process.pid)  # the job's process, its forkserver and its workers
    assert len(pids) >= 4, pids

    shown = flat(run(*p, "jobs", "cancel", job_id).output)
    assert f"job {job_id}: slow version 1, cancelled" in shown
    assert f"cancelled by {JobBook(project.engine).get(job_id).error[13:]}" in shown
    _, stderr = job_process.communicate(timeout=30)
    assert job_process.returncode == 1
    assert f"Job {job_id} was cancelled by" in " ".join(stderr.decode().split())
    check_stopped(project, job_id, pids, output)
    [entry] = read_audit(project.engine, action="job.cancel")
    assert (entry.target, entry.before["state"], entry.after) == (
        f"job:{job_id}",
        "running",
        {"state": "cancelling"},  # what the cancel wrote: the job's process then stopped
    )

    again = run(*p, "jobs", "cancel", job_id, ok=False)
    assert again.exit_code == 1 and "has already been cancelled" in flat(again.output)
    check_resumes(project, job_id, output)
    ended = run(*p, "jobs", "cancel", job_id, ok=False)
    assert ended.exit_code == 1 and "has already succeeded" in flat(ended.output)
    unknown = run(*p, "jobs", "cancel", "0123abcd", ok=False)
    assert unknown.exit_code == 1 and "No batch job '0123abcd'" in flat(unknown.output)


def queued_job(project: Project, tmp_path: Path) -> tuple[Job, JobBook]:
    """A job of the slow model over 10 rows, created and not started, and the job book."""
    register_slow(project, tmp_path)
    numbers(10).to_csv(tmp_path / "in.csv", index=False)
    spec = JobSpec(str(tmp_path / "in.csv"), str(tmp_path / "o.csv"), str(tmp_path / "r.csv"))
    return create_job(project, "slow", None, spec, "test"), JobBook(project.engine)


def test_a_queued_job_cancelled_is_not_started_by_its_launched_process(
    project: Project, tmp_path: Path
) -> None:
    job, book = queued_job(project, tmp_path)
    cancelled = book.cancel(job.id, "ann")
    assert cancelled.state == "cancelled" and cancelled.error.startswith("cancelled by ann at ")
    with pytest.raises(JobConflict, match="is cancelled, no longer queued"):
        run_job(project, job.id, only_queued=True)  # as a server's launched process runs it
    assert book.get(job.id).state == "cancelled"
    with pytest.raises(JobNotFound):
        book.cancel("0123abcd", "ann")
    # Resumed by hand, a cancelled job runs (from its first chunk: none was done).
    assert run_job(project, job.id).state == "succeeded"
    with pytest.raises(JobConflict, match="has already succeeded"):
        book.cancel(job.id, "ann")


def test_a_job_whose_process_is_gone_is_cancelled_at_once(project: Project, tmp_path: Path) -> None:
    job, book = queued_job(project, tmp_path)
    book.start(job.id, 10, "queued")
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    host = book.get(job.id).runner.rpartition(":")[0]
    book._update(job.id, runner=f"{host}:{gone.pid}")  # as if its process had been killed
    assert book.cancel(job.id, "ann").state == "cancelled"
    assert book.get(job.id).finished_at is not None


def test_a_launched_job_that_ends_is_reaped_at_once(project: Project, tmp_path: Path) -> None:
    job, book = queued_job(project, tmp_path)
    book.cancel(job.id, "ann")  # its launched process refuses it and exits at once
    pid = start_in_background(project, job.id)
    deadline = time.monotonic() + 60
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    # Gone, not a zombie of this process waiting for the next launch to be polled.
    assert not Path(f"/proc/{pid}").exists(), Path(f"/proc/{pid}/stat").read_text()


STALLING_MODEL = '''
import os
import time


class Stalling:
    """Sums its inputs; once the file STALL exists, each chunk takes an hour (its worker's
    pid noted in STALL.pids when it starts waiting)."""

    def predict(self, frame):
        if os.path.exists(STALL):
            with open(STALL + ".pids", "a") as pids:
                pids.write(f"{os.getpid()} ")
            time.sleep(3600)
        time.sleep(0.05)
        return (frame["a"] + frame["b"] + frame["c"]).tolist()
'''


def test_a_cancel_drops_the_chunks_in_flight_rather_than_wait_for_them(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    folder = tmp_path / "proj"
    run("init", str(folder))
    p = ["--project", str(folder)]
    stall = tmp_path / "stall"
    (tmp_path / "stalling.py").write_text(STALLING_MODEL.replace("STALL", repr(str(stall))))
    numbers(200, seed=1).drop(columns=["id"]).to_csv(tmp_path / "train.csv", index=False)
    model = f"{tmp_path / 'stalling.py'}:Stalling"
    run(*p, "register", "stalling", model, "--training-data", str(tmp_path / "train.csv"))
    run(*p, "deploy", "stalling", "1")
    numbers(6000).to_parquet(tmp_path / "in.parquet")
    output = tmp_path / "out.parquet"
    args = ["batch", "stalling", str(tmp_path / "in.parquet"), "-o", str(output)]
    job_process = subprocess.Popen(
        [sys.executable, "-m", "pointsman", *p, *args, "--chunk-rows", "100", "--workers", "2"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    request.addfinalizer(lambda: _reap(job_process.pid))
    with open_project(load_settings(folder)) as project:
        book = JobBook(project.engine)
        job_id = wait_for_chunks(book, str(output), 3)
        pids = _group(job_process.pid)
        stall.touch()  # the chunks now in flight would take an hour each
        stalled = tmp_path / "stall.pids"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # until both workers are in an hour-long chunk
            if stalled.exists() and len(set(stalled.read_text().split())) == 2:
                break
            time.sleep(0.05)
        busy = [int(pid) for pid in set(stalled.read_text().split())]
        assert set(busy) <= set(pids)
        shown = flat(run(*p, "jobs", "cancel", job_id, "--wait-s", "60").output)
        assert f"job {job_id}: stalling version 1, cancelled" in shown
        job_process.wait(30)
        assert job_process.returncode == 1
        check_stopped(project, job_id, pids, output)


def test_a_job_asked_twice_keeps_the_first_cancel_until_its_process_stops(
    project: Project, tmp_path: Path
) -> None:
    job, book = queued_job(project, tmp_path)
    book.start(job.id, 10, "queued")  # run by this process, which is alive
    first = book.cancel(job.id, "ann")
    assert first.state == "cancelling" and first.finished_at is None
    assert book.wait_stopped(job.id, 0).state == "cancelling"
    second = book.cancel(job.id, "bob")
    assert (second.state, second.error) == ("cancelling", first.error)  # ann's, kept
    book.stopped(job.id)  # what the job's process records once its workers have ended
    stopped = book.get(job.id)
    assert stopped.state == "cancelled" and stopped.error.startswith("cancelled by ann at ")
    assert [e.who for e in read_audit(project.engine, action="job.cancel")] == ["ann", "bob"]
