"""Batch jobs over HTTP: POST /v1/models/{m}/jobs starts one, GET /v1/admin/jobs follows them,
POST /v1/admin/jobs/{id}/cancel stops one.

Every endpoint needs `admin`: a job reads and writes files and databases of the server's
machine, which a `predict:<model>` key must not reach. The job runs in a process of its own
(`pointsman jobs resume ID`), never in an HTTP worker.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from pydantic import Field
from starlette.routing import BaseRoute

from pointsman.api.admin import Body, ErrorOut, User, Version, who
from pointsman.api.common import project_of
from pointsman.batch import JobBook, JobSpec, create_job
from pointsman.batch.launch import start_in_background
from pointsman.batch.sinks import rejects_of
from pointsman.errors import JobConflict

router = APIRouter(
    tags=["batch jobs"],
    responses={
        400: {"model": ErrorOut, "description": "An input or output that cannot be used"},
        404: {"model": ErrorOut, "description": "Unknown model, version or job"},
    },
)

Wait = Annotated[
    float,
    Query(
        ge=0,
        le=60,
        description="Seconds to wait for the job's process to stop (0: ask and return).",
    ),
]


class JobIn(Body):
    """A batch job: what to score, where to write it (as `pointsman batch` takes them)."""

    input: str = Field(
        min_length=1, description="CSV/Parquet file, folder, glob, s3:// URL or URL#table."
    )
    output: str = Field(
        min_length=1, description="File (.csv, .parquet), folder, s3:// URL or URL#table."
    )
    version: Version | None = Field(None, description="Default: the routed version.")
    rejects: str | None = Field(None, description="Default: beside the output, .rejects.")
    keep: list[str] = Field(default_factory=list, description="Input columns to copy.")
    chunk_rows: int = Field(65536, ge=1)
    workers: int = Field(0, ge=0, description="0: every core of the server's machine.")
    cluster: str = Field("", description="A Dask scheduler, e.g. tcp://scheduler:8786.")
    dry_run: bool = False


@router.post("/v1/models/{model}/jobs", status_code=202, summary="Start a batch job")
def start_job(request: Request, model: str, body: JobIn, user: User = None) -> JSONResponse:
    """Queue the job (its input and output checked now) and run it in the background."""
    project = project_of(request)
    spec = JobSpec(
        body.input,
        body.output,
        body.rejects or rejects_of(body.output),
        tuple(body.keep),
        body.chunk_rows,
        body.workers,
        body.cluster,
        body.dry_run,
    )
    version = None if body.version is None else str(body.version)
    job = create_job(project, model, version, spec, who(request, user))
    start_in_background(project, job.id)
    return JSONResponse(job.to_json(), status_code=202)


@router.get("/v1/admin/jobs", summary="Batch jobs, newest first")
def list_jobs(
    request: Request,
    model: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
) -> dict[str, Any]:
    """State, rows done of total, rejected, rows/s and ETA of each job."""
    jobs = JobBook(project_of(request).engine).find(limit, model)
    return {"jobs": [j.to_json() for j in jobs]}


@router.get("/v1/admin/jobs/{job_id}", summary="One batch job")
def show_job(request: Request, job_id: str) -> dict[str, Any]:
    job = JobBook(project_of(request).engine).get(job_id)
    return {**job.to_json(), "chunks_done": len(job.chunks_done)}


@router.post(
    "/v1/admin/jobs/{job_id}/cancel",
    summary="Cancel a queued or running batch job",
    responses={
        202: {"description": "Asked: the job's process has not stopped within wait_s"},
        409: {"model": ErrorOut, "description": "The job has ended (its state is named)"},
    },
)
def cancel_job(
    request: Request, job_id: str, wait_s: Wait = 10.0, user: User = None
) -> JSONResponse:
    """Stop the job at its next chunk boundary: its workers end, its finished chunks are
    kept (no output is written), it is `cancelled` by whom and when (audited)."""
    book = JobBook(project_of(request).engine)
    asked = book.cancel(job_id, who(request, user))
    job = book.wait_stopped(job_id, wait_s) if asked.state == "cancelling" else asked
    if job.state not in ("cancelling", "cancelled"):
        raise JobConflict(f"Job {job_id} {job.state} before the cancel took effect.")
    body = {**job.to_json(), "chunks_done": len(job.chunks_done)}
    return JSONResponse(body, status_code=202 if job.state == "cancelling" else 200)


def routes() -> list[BaseRoute]:
    return list(router.routes)
