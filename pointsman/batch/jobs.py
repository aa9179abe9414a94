"""Batch jobs as records in the store: what a job was asked, how far it got, each chunk done."""

from __future__ import annotations

import os
import socket
import time
import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from pointsman.batch.score import ChunkResult
from pointsman.errors import JobConflict, JobNotFound
from pointsman.store.audit import write_audit
from pointsman.store.tables import batch_chunks, batch_jobs
from pointsman.types import as_utc

# cancelling: asked to stop, its process has not yet; cancelled: stopped, its chunks kept.
STATES = ("queued", "running", "cancelling", "succeeded", "failed", "cancelled")
ENDED = ("succeeded", "failed", "cancelled")


@dataclass(frozen=True)
class JobSpec:
    """What a job was asked to do; kept with it, so that a resume does the same."""

    input: str
    output: str
    rejects: str
    keep: tuple[str, ...] = ()
    chunk_rows: int = 65536
    workers: int = 0  # 0: every core
    cluster: str = ""  # a Dask scheduler address, else local processes
    dry_run: bool = False
    log: bool = False
    fingerprint: str = ""  # of the input when the job was created: a resume checks it

    def to_json(self) -> dict[str, Any]:
        return {
            "input": self.input,
            "output": self.output,
            "rejects": self.rejects,
            "keep": list(self.keep),
            "chunk_rows": self.chunk_rows,
            "workers": self.workers,
            "cluster": self.cluster,
            "dry_run": self.dry_run,
            "log": self.log,
            "fingerprint": self.fingerprint,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> JobSpec:
        return cls(**{**data, "keep": tuple(data.get("keep") or ())})


@dataclass
class Job:
    """One job's record: its spec, state and figures."""

    id: str
    model: str
    version: int
    spec: JobSpec
    state: str
    rows_total: int | None
    rows_done: int
    rows_rejected: int
    rows_flagged: int
    rows_failed: int
    rows_per_s: float | None
    error: str
    runner: str
    created_at: datetime
    created_by: str
    updated_at: datetime
    finished_at: datetime | None
    chunks_done: set[int] = field(default_factory=set)

    @property
    def eta_s(self) -> float | None:
        """Seconds left at the current rate, while running."""
        if self.state != "running" or not self.rows_per_s or self.rows_total is None:
            return None
        return max(self.rows_total - self.rows_done, 0) / self.rows_per_s

    def after_chunk(self, result: ChunkResult, rows_per_s: float | None) -> Job:
        """This record as `JobBook.chunk_done` leaves it: the chunk's counts added (and the
        chunk to the set of chunks done, which the two records share)."""
        self.chunks_done.add(result.chunk)
        return replace(
            self,
            rows_done=self.rows_done + result.rows,
            rows_rejected=self.rows_rejected + result.rejected,
            rows_flagged=self.rows_flagged + result.flagged,
            rows_failed=self.rows_failed + result.failed,
            rows_per_s=rows_per_s,
            updated_at=datetime.now(UTC),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "model": self.model,
            "version": self.version,
            "state": self.state,
            "rows_total": self.rows_total,
            "rows_done": self.rows_done,
            "rows_rejected": self.rows_rejected,
            "rows_flagged": self.rows_flagged,
            "rows_failed": self.rows_failed,
            "rows_per_s": self.rows_per_s,
            "eta_s": self.eta_s,
            "error": self.error,
            "created_at": self.created_at.isoformat(),
            "created_by": self.created_by,
            "updated_at": self.updated_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            **self.spec.to_json(),
        }


def runner_id() -> str:
    """Who runs a job: host and process, so a resume can tell a dead run from a live one."""
    return f"{socket.gethostname()}:{os.getpid()}"


def runner_alive(runner: str) -> bool | None:
    """Whether a job's recorded process still runs on this host; None for a process of
    another host, which only it can say (by stopping)."""
    host, _, pid = runner.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return None
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def runner_is_gone(runner: str) -> bool:
    """Whether a job's recorded process has surely ended: on this host and no longer there."""
    return runner_alive(runner) is False


class JobBook:
    """Reads and writes the batch_jobs and batch_chunks tables."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def create(self, model: str, version: int, spec: JobSpec, user: str) -> Job:
        now = datetime.now(UTC)
        job_id = uuid.uuid4().hex[:16]
        with self.engine.begin() as conn:
            conn.execute(
                batch_jobs.insert().values(
                    id=job_id,
                    model=model,
                    version=version,
                    spec=spec.to_json(),
                    state="queued",
                    rows_done=0,
                    rows_rejected=0,
                    rows_flagged=0,
                    rows_failed=0,
                    error="",
                    runner="",
                    created_at=now,
                    created_by=user,
                    updated_at=now,
                )
            )
        return self.get(job_id)

    def get(self, job_id: str) -> Job:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(batch_jobs).where(batch_jobs.c.id == job_id)).first()
            if row is None:
                raise JobNotFound(job_id)
            chunks = conn.execute(
                sa.select(batch_chunks.c.chunk).where(batch_chunks.c.job_id == job_id)
            ).scalars()
            job = _job(row._mapping)
            job.chunks_done = set(chunks)
        return job

    def find(self, limit: int = 50, model: str | None = None) -> list[Job]:
        """The newest jobs first."""
        query = sa.select(batch_jobs).order_by(batch_jobs.c.created_at.desc()).limit(limit)
        if model is not None:
            query = query.where(batch_jobs.c.model == model)
        with self.engine.connect() as conn:
            return [_job(r._mapping) for r in conn.execute(query)]

    def state(self, job_id: str) -> str:
        """The job's state as recorded now (what a running job polls for a cancel)."""
        with self.engine.connect() as conn:
            found = conn.execute(
                sa.select(batch_jobs.c.state).where(batch_jobs.c.id == job_id)
            ).scalar()
        if found is None:
            raise JobNotFound(job_id)
        return str(found)

    def start(self, job_id: str, rows_total: int, was: str) -> None:
        """Mark the job running in this process, if it is still in the state `was` read."""
        changed = self._update(
            job_id,
            was,
            state="running",
            rows_total=rows_total,
            runner=runner_id(),
            error="",
            finished_at=None,
        )
        if not changed:
            now = self.state(job_id)
            raise JobConflict(f"Job {job_id} became {now} while starting; it was not run.")

    def cancel(self, job_id: str, who: str) -> Job:
        """Ask a job to stop: `cancelled` at once when no process runs it, else `cancelling`
        until its process stops at its next chunk boundary. Audited as `job.cancel`."""
        for _ in range(5):  # a state that moved between the read and the write: read again
            job = self.get(job_id)
            if job.state in ENDED:
                raise JobConflict(
                    f"Job {job_id} has {_ended(job.state)}; there is nothing to cancel "
                    f"(its state: {job.state})."
                )
            now = datetime.now(UTC)
            note = f"cancelled by {who} at {now:%Y-%m-%d %H:%M:%S} UTC"
            # queued: no process has taken it (the one a server launched refuses it now).
            stopped = job.state == "queued" or runner_is_gone(job.runner)
            values: dict[str, Any] = {"state": "cancelled" if stopped else "cancelling"}
            if stopped:
                values["finished_at"] = now
            if job.state != "cancelling":  # a second cancel keeps the first one's note
                values["error"] = note
            with self.engine.begin() as conn:
                if not self._update(job_id, job.state, conn, **values):
                    continue
                write_audit(
                    conn,
                    who,
                    "job.cancel",
                    f"job:{job_id}",
                    {"state": job.state, "rows_done": job.rows_done},
                    {"state": values["state"]},
                    f"{job.model} version {job.version}, {len(job.chunks_done)} chunks done",
                )
            return self.get(job_id)
        raise JobConflict(f"Job {job_id} kept changing state; try to cancel it again.")

    def wait_stopped(self, job_id: str, wait_s: float) -> Job:
        """The job once its process stopped on a cancel, or as it is after `wait_s`."""
        deadline = time.monotonic() + wait_s
        while True:
            job = self.get(job_id)
            if job.state != "cancelling" or time.monotonic() >= deadline:
                return job
            time.sleep(0.1)

    def stopped(self, job_id: str) -> None:
        """The job's process stopped on a cancel: the job is `cancelled` from now."""
        self._update(job_id, "cancelling", state="cancelled", finished_at=datetime.now(UTC))

    def chunk_done(self, job_id: str, result: ChunkResult, rows_per_s: float | None) -> None:
        """A chunk's part files are written: record it and add its counts, in one go."""
        now = datetime.now(UTC)
        c = batch_jobs.c
        with self.engine.begin() as conn:
            conn.execute(
                batch_chunks.insert().values(
                    job_id=job_id,
                    chunk=result.chunk,
                    rows=result.rows,
                    rejected=result.rejected,
                    flagged=result.flagged,
                    failed=result.failed,
                    seconds=result.seconds,
                    finished_at=now,
                )
            )
            conn.execute(
                batch_jobs.update()
                .where(c.id == job_id)
                .values(
                    rows_done=c.rows_done + result.rows,
                    rows_rejected=c.rows_rejected + result.rejected,
                    rows_flagged=c.rows_flagged + result.flagged,
                    rows_failed=c.rows_failed + result.failed,
                    rows_per_s=rows_per_s,
                    updated_at=now,
                )
            )

    def chunks(self, job_id: str) -> list[ChunkResult]:
        """The finished chunks, in order."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(batch_chunks)
                .where(batch_chunks.c.job_id == job_id)
                .order_by(batch_chunks.c.chunk)
            )
            return [
                ChunkResult(r.chunk, r.rows, r.rejected, r.flagged, r.failed, r.seconds)
                for r in rows
            ]

    def finish(self, job_id: str, state: str, error: str = "") -> None:
        self._update(job_id, state=state, error=error[:2000], finished_at=datetime.now(UTC))

    def _update(
        self, job_id: str, was: str | None = None, conn: Connection | None = None, **values: Any
    ) -> bool:
        """Write `values`, only while the job is in state `was` when given; whether it was."""
        query = batch_jobs.update().where(batch_jobs.c.id == job_id)
        if was is not None:
            query = query.where(batch_jobs.c.state == was)
        query = query.values(updated_at=datetime.now(UTC), **values)
        if conn is not None:
            return bool(conn.execute(query).rowcount)
        with self.engine.begin() as own:
            return bool(own.execute(query).rowcount)


def _ended(state: str) -> str:
    return {"succeeded": "already succeeded", "failed": "already failed"}.get(
        state, "already been cancelled"
    )


def _job(row: Any) -> Job:
    finished = row["finished_at"]
    return Job(
        row["id"],
        row["model"],
        row["version"],
        JobSpec.from_json(row["spec"]),
        row["state"],
        row["rows_total"],
        row["rows_done"],
        row["rows_rejected"],
        row["rows_flagged"],
        row["rows_failed"],
        row["rows_per_s"],
        row["error"],
        row["runner"],
        as_utc(row["created_at"]),
        row["created_by"],
        as_utc(row["updated_at"]),
        as_utc(finished) if finished is not None else None,
    )
