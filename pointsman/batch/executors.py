"""Where chunks are scored: processes of this machine, one a core (or a Dask cluster).

Each worker process loads the version once (its artifact checked against the sha256 the
version recorded) and writes each chunk's part files itself, so that only the chunk's rows
(or, for Parquet whose row groups fit in a chunk, where to read them) and a few counts cross
between processes. With one worker the job's own process scores:
a worker process would only add its start-up (seconds: it imports the model's libraries
again) and a copy of every chunk.
"""

from __future__ import annotations

import gc
import os
import select
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa
from threadpoolctl import threadpool_limits

from pointsman.batch.rowgroups import ChunkPlace, read_chunk
from pointsman.batch.score import ChunkResult, Scored, Scorer, write_part
from pointsman.errors import ChunkFailed, PointsmanError
from pointsman.registry import VersionRecord
from pointsman.registry.artifacts import ArtifactStore
from pointsman.registry.loading import load_resolved
from pointsman.validation.policy import ValidationPolicy


@dataclass(frozen=True)
class WorkerSetup:
    """Everything a worker needs to build its Scorer (picklable)."""

    version: VersionRecord
    artifacts: ArtifactStore
    runtime: str  # the runner spec's: auto | original | compiled
    policy: ValidationPolicy
    keep: list[str]
    job_id: str
    text_source: bool
    dry_run: bool
    log_rows: bool = False

    def build(self) -> Scorer:
        """Load the version (sha256-verified) and prepare its checks."""
        loaded = None
        if not self.dry_run:
            with loading_libraries():
                loaded, _ = load_resolved(self.artifacts, self.version, self.runtime)
        return Scorer(
            self.version,
            loaded,
            self.policy,
            self.keep,
            self.job_id,
            self.text_source,
            self.log_rows,
        )


@contextmanager
def loading_libraries(freeze: bool = True) -> Iterator[None]:
    """The garbage collector paused while a model and its libraries load (the import of
    scikit-learn makes a million objects and little garbage: the collector would walk them
    again and again), then, with `freeze`, those objects set aside for good, so that the
    collections while chunks are scored do not walk them either. `freeze` is for processes
    of the job's own, not a long-lived Dask worker, whose later jobs load other models."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if freeze:
            gc.freeze()
        if collecting:
            gc.enable()


class Executor(Protocol):
    """Scores chunks somewhere; a future gives a ChunkResult (parts written) or Scored."""

    capacity: int  # chunks in flight at most: what bounds the job's memory

    def submit(self, chunk: int, first_row: int, table: pa.Table) -> Any: ...

    def stop(self) -> None:
        """Drop the chunks in flight at once (the job was cancelled); `__exit__` follows."""

    def __enter__(self) -> Executor: ...

    def __exit__(self, *exc: object) -> None: ...


def cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class LocalExecutor:
    """A pool of worker processes on this machine, each holding the loaded version."""

    def __init__(self, setup: WorkerSetup, workers: int, parts: Path) -> None:
        self.workers = workers or cores()
        self.capacity = self.workers * 2  # one scoring, one waiting, per worker
        self.parts = parts
        self.setup = setup
        self.pool: ProcessPoolExecutor | None = None

    def __enter__(self) -> LocalExecutor:
        # Imported here: one worker (the job's own process) needs no forkserver.
        from pointsman.runners.supervisor import runner_context

        parts = self.parts
        parts.mkdir(parents=True, exist_ok=True)
        self.pool = ProcessPoolExecutor(
            self.workers,
            runner_context(),
            initializer=_start,
            initargs=(self.setup, parts, os.getpid()),
        )
        return self

    def __exit__(self, *exc: object) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)

    def submit(self, chunk: int, first_row: int, table: pa.Table) -> Future[ChunkResult]:
        assert self.pool is not None, "submit inside `with`"
        return self.pool.submit(_score, chunk, first_row, table)

    def submit_place(self, place: ChunkPlace, first_row: int) -> Future[ChunkResult]:
        """A chunk the worker reads itself from the input's row groups."""
        assert self.pool is not None, "submit inside `with`"
        return self.pool.submit(_read_and_score, place, first_row)

    def stop(self) -> None:
        """End the worker processes now, their chunks unfinished: a part file is renamed
        into place whole, so a killed worker leaves only its `.partial` file, removed here."""
        if self.pool is None:
            return
        # The pool has no public way to end busy workers (before Python 3.14).
        workers = list(self.pool._processes.values())
        self.pool.shutdown(wait=False, cancel_futures=True)
        for process in workers:
            process.terminate()
        for process in workers:
            process.join(10)
        self.pool.shutdown(wait=True)
        for partial in self.parts.glob("*.partial"):
            partial.unlink(missing_ok=True)


class InProcessExecutor:
    """Scores each chunk in this process as it is submitted: one worker, no pool."""

    capacity = 1

    def __init__(self, setup: WorkerSetup, parts: Path) -> None:
        self.setup = setup
        self.parts = parts
        self.scorer: Scorer | None = None
        self.limits: Any = None

    def __enter__(self) -> InProcessExecutor:
        self.parts.mkdir(parents=True, exist_ok=True)
        # One core, as a worker process has: BLAS would otherwise start a thread a core.
        self.limits = threadpool_limits(1)
        return self

    def stop(self) -> None:
        """Nothing runs between chunks here: the chunk being scored has already ended."""

    def __exit__(self, *exc: object) -> None:
        if self.limits is not None:
            self.limits.restore_original_limits()
            self.limits = None

    def submit(self, chunk: int, first_row: int, table: pa.Table) -> Future[ChunkResult]:
        future: Future[ChunkResult] = Future()
        try:
            if self.scorer is None:  # on the first chunk, as a worker loads it
                self.scorer = self.setup.build()
            scored = self.scorer.score(chunk, first_row, table)
            future.set_result(write_scored(self.parts, scored))
        except PointsmanError as exc:
            future.set_exception(ChunkFailed(exc.message))
        return future


def local_executor(setup: WorkerSetup, workers: int, parts: Path) -> Executor:
    """Worker processes for `workers` cores (0: every core); this process for one."""
    if (workers or cores()) == 1:
        return InProcessExecutor(setup, parts)
    return LocalExecutor(setup, workers, parts)


_setup: WorkerSetup | None = None
_scorer: Scorer | None = None
_parts: Path | None = None


def _start(setup: WorkerSetup, parts: Path, job_pid: int) -> None:
    global _setup, _parts
    _setup, _parts = setup, parts
    threading.Thread(target=_exit_with, args=(job_pid,), daemon=True).start()


def _exit_with(job_pid: int) -> None:
    """End this worker when the job's process ends, however it ends: a job killed with
    SIGKILL would otherwise leave its workers waiting on the pool's queue for good."""
    try:
        pidfd = os.pidfd_open(job_pid)  # readable once the process has ended
    except (AttributeError, OSError):  # not Linux 5.3+: look every second
        while _alive(job_pid):
            time.sleep(1.0)
    else:
        select.select([pidfd], [], [])
    os._exit(1)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _score(chunk: int, first_row: int, table: pa.Table) -> ChunkResult:
    # Loaded on the first chunk, not in the pool's initializer: an artifact that fails its
    # check or its load is then this chunk's error, with its message, not a broken pool.
    global _scorer
    assert _setup is not None and _parts is not None, "the pool's initializer ran"
    try:
        if _scorer is None:
            _scorer = _setup.build()
        return write_scored(_parts, _scorer.score(chunk, first_row, table))
    except PointsmanError as exc:
        raise ChunkFailed(exc.message) from None


def _read_and_score(place: ChunkPlace, first_row: int) -> ChunkResult:
    try:
        table = read_chunk(place)
    except PointsmanError as exc:
        raise ChunkFailed(exc.message) from None
    return _score(place.chunk, first_row, table)


def write_scored(parts: Path, scored: Scored) -> ChunkResult:
    """A chunk's part files: its output, and its rejects when it has any."""
    chunk = scored.result.chunk
    write_part(scored.output, parts / f"out-{chunk:06d}.arrow")
    if scored.rejects.num_rows:
        write_part(scored.rejects, parts / f"rej-{chunk:06d}.arrow")
    return scored.result
