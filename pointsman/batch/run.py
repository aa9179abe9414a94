"""Running a batch job: plan it, score its chunks where they run, record each, assemble.

A chunk's part files are written before the chunk is recorded as done, and the output is
assembled from the parts only when every chunk is done: a job killed at any moment resumes
from its record without redoing a recorded chunk and without writing a row twice.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from pointsman.batch.executors import (
    Executor,
    LocalExecutor,
    WorkerSetup,
    local_executor,
    write_scored,
)
from pointsman.batch.jobs import Job, JobBook, JobSpec
from pointsman.batch.rowgroups import plan_chunks
from pointsman.batch.score import OUTPUT_COLUMNS, ROW, ChunkResult, Scored, write_part
from pointsman.batch.sinks import (
    check_output,
    output_constants,
    rejects_constants,
    rejects_of,
    unified_schema,
    write_parts,
)
from pointsman.batch.sources import (
    Source,
    column_names,
    count_rows,
    fingerprint,
    open_source,
    read_chunks,
)
from pointsman.errors import BadBatchSource, JobCancelled, JobConflict
from pointsman.project import Project
from pointsman.registry import VersionRecord
from pointsman.store.rollups import roll_up_pending
from pointsman.validation.policy import ValidationPolicy

if TYPE_CHECKING:
    from pointsman.logstore import PredictionLog

logger = logging.getLogger("pointsman.batch")

Progress = Callable[[Job], None]

POLL_S = 0.5  # how often a running job reads its record for a cancel, at most


def version_for(project: Project, model: str, version: str | None) -> VersionRecord:
    """The given version, else the one the route answers with, else the newest."""
    if version is not None:
        return project.registry.get_version(model, version)
    route = project.routes.find(model)
    if route is not None:
        return project.registry.get_version(model, route.primary)
    numbers = project.registry.version_numbers(model)  # ModelNotFound names the models
    return project.registry.get_version(model, max(numbers))


def policy_of(project: Project, model: str) -> ValidationPolicy:
    """The validation policy of the model's route in force (the defaults without one)."""
    route = project.routes.find(model)
    return route.policy.validation if route is not None else ValidationPolicy()


def create_job(project: Project, model: str, version: str | None, spec: JobSpec, user: str) -> Job:
    """A queued job, its input and output checked now rather than half-way."""
    record = version_for(project, model, version)
    if spec.chunk_rows < 1:
        raise BadBatchSource(f"--chunk-rows must be at least 1, got {spec.chunk_rows}.")
    if spec.workers < 0:
        raise BadBatchSource(f"--workers must be 0 (every core) or more, got {spec.workers}.")
    check_output(spec.output)
    check_output(spec.rejects)
    source = open_source(spec.input)
    _check_columns(source, record, list(spec.keep))
    spec = replace(spec, fingerprint=fingerprint(source))
    return JobBook(project.engine).create(model, record.number, spec, user)


def _check_columns(source: Source, version: VersionRecord, keep: list[str]) -> None:
    have = column_names(source)
    needed = version.signature.names
    missing = [c for c in needed if c not in have]
    if missing:
        raise BadBatchSource(
            f"The input has no column {', '.join(missing)}, which {version.model} version "
            f"{version.number} takes (its inputs: {', '.join(needed)})."
        )
    unknown = [c for c in keep if c not in have]
    if unknown:
        raise BadBatchSource(
            f"--keep names {', '.join(unknown)}, not a column of the input "
            f"(columns: {', '.join(have)})."
        )
    taken = {*OUTPUT_COLUMNS, "findings"}
    clash = [c for c in keep if c in taken or c.startswith("p_")]
    if clash:
        raise BadBatchSource(
            f"--keep {', '.join(clash)} would clash with the output's own columns "
            f"({', '.join(sorted(taken))}, p_<class>); rename the column in the input."
        )


def job_folder(project: Project, job_id: str) -> Path:
    """Where a job keeps its part files until it is assembled."""
    return project.settings.project_path() / "jobs" / job_id


def run_job(
    project: Project,
    job_id: str,
    progress: Progress | None = None,
    executor: Executor | None = None,
    only_queued: bool = False,
) -> Job:
    """Run (or resume) a job to its end; its record says how it went.

    `only_queued`: run it only if nothing touched it since it was queued (a job a server
    launched, which may have been cancelled before its process started).
    """
    book = JobBook(project.engine)
    job = book.get(job_id)
    if job.state == "succeeded":
        raise JobConflict(f"Job {job_id} has already succeeded; its output is {job.spec.output}.")
    if only_queued and job.state != "queued":
        raise JobConflict(f"Job {job_id} is {job.state}, no longer queued; it was not started.")
    spec = job.spec
    version = project.registry.get_version(job.model, str(job.version))
    source = open_source(spec.input)
    if job.chunks_done and spec.fingerprint and fingerprint(source) != spec.fingerprint:
        raise JobConflict(
            f"The input of job {job_id} ({spec.input}) changed since the job started: its "
            "finished chunks would no longer match. Start a new job with `pointsman batch`."
        )
    book.start(job_id, count_rows(source), job.state)
    folder = job_folder(project, job_id)
    try:
        if executor is None:
            executor = _executor(project, job, version, source)
        log = _prediction_log(project) if spec.log else None
        try:
            with executor:
                try:
                    _score_all(book, job_id, source, spec, version, folder, executor, progress, log)
                except JobCancelled:
                    executor.stop()  # the chunks in flight are dropped, not waited for
                    raise
        finally:
            if log is not None:
                log.close()  # ships what was spooled
                _roll_up(project)
        _assemble(book, job_id, spec, folder)
    except JobCancelled:
        book.stopped(job_id)
        if progress is not None:
            progress(book.get(job_id))
        raise
    except BaseException as exc:
        book.finish(job_id, "failed", _why(exc))
        raise
    book.finish(job_id, "succeeded")
    shutil.rmtree(folder, ignore_errors=True)
    done = book.get(job_id)
    if progress is not None:
        progress(done)
    return done


def _prediction_log(project: Project) -> PredictionLog:
    # Imported with --log only: the log's writer and shipper are not a plain job's start-up.
    from pointsman.logstore import PredictionLog

    return PredictionLog(project.settings, project.engine)


def setup_of(project: Project, job: Job, version: VersionRecord, source: Source) -> WorkerSetup:
    """What a worker needs to score this job's chunks."""
    spec = job.spec
    runtime = project.runners.spec(job.model, version.number).runtime
    return WorkerSetup(
        version,
        project.registry.artifacts,
        runtime,
        policy_of(project, job.model),
        list(spec.keep),
        job.id,
        source.is_text,
        spec.dry_run,
        spec.log,
    )


def _executor(project: Project, job: Job, version: VersionRecord, source: Source) -> Executor:
    setup = setup_of(project, job, version, source)
    if job.spec.cluster:
        from pointsman.batch.cluster import DaskExecutor

        return DaskExecutor(job.spec.cluster, setup)
    return local_executor(setup, job.spec.workers, job_folder(project, job.id) / "parts")


def _score_all(
    book: JobBook,
    job_id: str,
    source: Source,
    spec: JobSpec,
    version: VersionRecord,
    folder: Path,
    executor: Executor,
    progress: Progress | None,
    log: PredictionLog | None,
) -> None:
    now = book.get(job_id)
    done = set(now.chunks_done)
    columns = list(dict.fromkeys([*version.signature.names, *spec.keep]))
    # The model's text inputs as dictionaries; kept columns are written as they are read.
    dictionaries = tuple(
        s.name for s in version.signature.inputs if s.type == "string" and s.name not in spec.keep
    )
    inflight: deque[Any] = deque()
    start, rows = time.monotonic(), 0
    watch = CancelWatch(book, job_id)

    def collect() -> None:
        nonlocal rows, now
        outcome = watch.result(inflight.popleft())
        if isinstance(outcome, Scored):  # scored elsewhere: its parts are written here
            outcome = write_scored(folder / "parts", outcome)
        rows += outcome.rows
        if log is not None and outcome.record is not None:
            record = outcome.record
            record["inputs"] = log.redactor.apply(record["model"], record["inputs"])
            log.spool.append(record)
        rate = rows / max(time.monotonic() - start, 1e-9)
        book.chunk_done(job_id, outcome, rate)
        # The record as just written, without reading it back (and its chunks) each chunk.
        now = now.after_chunk(outcome, rate)
        if progress is not None:
            progress(now)

    # Worker processes read their chunks themselves where they can (Parquet row groups).
    local = executor if isinstance(executor, LocalExecutor) else None
    places = None if local is None else plan_chunks(source, columns, spec.chunk_rows, dictionaries)
    if local is not None and places is not None:
        for place in places:
            if place.chunk not in done:
                watch.check()
                inflight.append(local.submit_place(place, place.chunk * spec.chunk_rows))
                while len(inflight) >= executor.capacity:
                    collect()
    else:
        for chunk, table in enumerate(read_chunks(source, columns, spec.chunk_rows, dictionaries)):
            if chunk not in done:
                watch.check()
                inflight.append(executor.submit(chunk, chunk * spec.chunk_rows, table))
                while len(inflight) >= executor.capacity:
                    collect()
    while inflight:
        collect()


class CancelWatch:
    """Reads the job's state (every POLL_S at most) and raises JobCancelled on a cancel."""

    def __init__(self, book: JobBook, job_id: str) -> None:
        self.book = book
        self.job_id = job_id
        self.last = time.monotonic()

    def result(self, future: Any) -> Any:
        """The future's result; a chunk may take long, so a cancel is looked for meanwhile."""
        while True:
            self.check()
            try:
                return future.result(timeout=POLL_S)
            except TimeoutError:
                continue

    def check(self) -> None:
        if time.monotonic() - self.last < POLL_S:
            return
        self.last = time.monotonic()
        if self.book.state(self.job_id) == "cancelling":
            job = self.book.get(self.job_id)
            raise JobCancelled(self.job_id, job.error, len(job.chunks_done))


def _assemble(book: JobBook, job_id: str, spec: JobSpec, folder: Path) -> None:
    chunks: list[ChunkResult] = book.chunks(job_id)
    version = book.get(job_id).version
    parts = folder / "parts"
    outputs = [parts / f"out-{c.chunk:06d}.arrow" for c in chunks]
    if not spec.dry_run:
        write_parts(spec.output, outputs, job_id, folder, output_constants(version, job_id))
    rejected = [parts / f"rej-{c.chunk:06d}.arrow" for c in chunks if c.rejected or c.failed]
    if not rejected:  # an empty rejects file all the same: no stale one is left to be read
        rejected = [_no_rejects(outputs, parts / "rej-none.arrow")]
    rejects = spec.rejects or rejects_of(spec.output)
    write_parts(rejects, rejected, job_id, folder, rejects_constants(version, job_id))


def _no_rejects(outputs: list[Path], path: Path) -> Path:
    """An empty part with the rejects' columns (the kept ones typed as in the output)."""
    schema = unified_schema(outputs)
    kept = [f for f in schema if f.name not in OUTPUT_COLUMNS and not f.name.startswith("p_")]
    fields = [
        pa.field(ROW, pa.int64()),
        *kept,
        pa.field("findings", pa.string()),
        pa.field("version", pa.int64()),
        pa.field("job_id", pa.string()),
    ]
    write_part(pa.schema(fields).empty_table(), path)
    return path


def _why(exc: BaseException) -> str:
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted (Ctrl-C); resume it with `pointsman jobs resume`"
    message = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
    return str(message)


def _roll_up(project: Project) -> None:
    """A logged job's records rolled up now, not left for the console's pages to add (a
    server's roller would, a second later, if one runs)."""
    try:
        roll_up_pending(project.engine)
    except Exception as exc:  # the job's output is done: the records are stored
        logger.warning("the job's prediction records are not rolled up yet: %s", exc)
