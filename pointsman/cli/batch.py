"""`pointsman batch` and `pointsman jobs`: score whole tables, follow and resume the jobs."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import click
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from pointsman.batch import Job, JobBook, JobSpec, create_job, run_job
from pointsman.batch.jobs import runner_alive
from pointsman.batch.sinks import rejects_of
from pointsman.cli.context import Context, pass_context
from pointsman.cli.main import exit_without_teardown
from pointsman.cli.output import cell, console, err_console, print_json, table
from pointsman.errors import JobConflict
from pointsman.project import Project
from pointsman.registry.lineage import current_user


@click.command("batch")
@click.argument("model")
@click.argument("input_spec", metavar="INPUT")
@click.option(
    "-o",
    "--output",
    required=True,
    help="Output: file.csv|.parquet, folder, "
    "s3://bucket/key.parquet or sqlite:///file.db#table, postgresql://…#table.",
)
@click.option("--version", help="Version to score with (default: the routed one).")
@click.option("--rejects", help="Where refused rows go (default: beside OUTPUT, .rejects).")
@click.option("--keep", default="", help="Input columns copied to the output, e.g. id,region.")
@click.option(
    "--chunk-rows",
    type=int,
    default=65536,
    show_default=True,
    help="Rows per chunk: the unit of work, of memory and of resume.",
)
@click.option("--workers", type=int, default=0, help="Worker processes (default: every core).")
@click.option("--cluster", default="", help="A Dask scheduler, e.g. tcp://scheduler:8786.")
@click.option(
    "--log",
    "log_rows",
    is_flag=True,
    help="Record every row in the prediction log (off: big jobs would flood it).",
)
@click.option("--dry-run", is_flag=True, help="Validate only: write the rejects, no output.")
@click.option("--json", "as_json", is_flag=True, help="Print the finished job as JSON.")
@pass_context
def batch(
    ctx: Context,
    model: str,
    input_spec: str,
    output: str,
    version: str | None,
    rejects: str | None,
    keep: str,
    chunk_rows: int,
    workers: int,
    cluster: str,
    log_rows: bool,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Score every row of INPUT (CSV/Parquet files, a folder, a glob, s3://, URL#table) with
    MODEL into OUTPUT: kept columns, prediction, probabilities, version, status and job id.

    Rows are checked as requests are (signature, reference profile, the route's validation
    policy); refused rows go to the rejects with their findings. The job is recorded in the
    store: `pointsman jobs` follows it, `pointsman jobs resume ID` finishes a killed one.
    """
    project = ctx.project()
    kept = tuple(c.strip() for c in keep.split(",") if c.strip())
    spec = JobSpec(
        input_spec,
        output,
        rejects or rejects_of(output),
        kept,
        chunk_rows,
        workers,
        cluster,
        dry_run,
        log_rows,
    )
    job = create_job(project, model, version, spec, current_user())
    err_console.print(f"job [bold]{job.id}[/bold]: {model} version {job.version}")
    _run(project, job, as_json)


@click.group("jobs", invoke_without_command=True)
@click.option("--model", help="Only this model's jobs.")
@click.option("--limit", type=int, default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def jobs(click_ctx: click.Context, model: str | None, limit: int, as_json: bool) -> None:
    """Batch jobs, newest first: `pointsman jobs`, `jobs show ID`, `jobs resume ID`,
    `jobs cancel ID`."""
    if click_ctx.invoked_subcommand is not None:
        return
    project = Context.current().project()
    found = JobBook(project.engine).find(limit, model)
    if as_json:
        print_json({"jobs": [j.to_json() for j in found]})
        return
    rows = [
        [
            j.id,
            j.model,
            j.version,
            j.state,
            _rows(j),
            j.rows_rejected,
            _rate(j),
            f"{j.created_at:%m-%d %H:%M}",
        ]
        for j in found
    ]
    table(
        "batch jobs",
        ["id", "model", "v", "state", "rows", "rejected", "rows/s", "created (UTC)"],
        rows,
    )


@jobs.command("show")
@click.argument("job_id")
@click.option("--json", "as_json", is_flag=True)
@pass_context
def show(ctx: Context, job_id: str, as_json: bool) -> None:
    """One job: what it was asked, its state and figures."""
    job = JobBook(ctx.project().engine).get(job_id)
    if as_json:
        print_json(job.to_json())
        return
    _summary(job)


@jobs.command("resume")
@click.argument("job_id")
@click.option("--json", "as_json", is_flag=True)
# A job a server launched runs as `jobs resume ID --if-queued`: not if cancelled meanwhile.
@click.option("--if-queued", "only_queued", is_flag=True, hidden=True)
@pass_context
def resume(ctx: Context, job_id: str, as_json: bool, only_queued: bool) -> None:
    """Finish a job that was killed, failed or cancelled, without redoing its finished
    chunks."""
    project = ctx.project()
    job = JobBook(project.engine).get(job_id)
    if job.state in ("running", "cancelling") and _alive(job.runner):
        raise JobConflict(
            f"Job {job_id} is {job.state} (process {job.runner}); wait for it, or cancel it "
            f"first with `pointsman jobs cancel {job_id}`."
        )
    err_console.print(f"job [bold]{job.id}[/bold]: resuming, {len(job.chunks_done)} chunks done")
    _run(project, job, as_json, only_queued)


@jobs.command("cancel")
@click.argument("job_id")
@click.option(
    "--wait-s",
    type=click.FloatRange(min=0),
    default=30.0,
    show_default=True,
    help="How long to wait for the job's process to stop (0: ask and return).",
)
@click.option("--json", "as_json", is_flag=True)
@pass_context
def cancel(ctx: Context, job_id: str, wait_s: float, as_json: bool) -> None:
    """Stop a queued or running job at its next chunk boundary, wherever it runs.

    Its worker processes end, its finished chunks are kept (no output is written) and it is
    recorded as cancelled, by whom and when (audit log: job.cancel). `jobs resume ID`
    finishes it later. A job that has ended cannot be cancelled (exit 1).
    """
    book = JobBook(ctx.project().engine)
    asked = book.cancel(job_id, current_user())
    job = book.wait_stopped(job_id, wait_s) if asked.state == "cancelling" else asked
    if as_json:
        print_json(job.to_json())
    else:
        _summary(job)
    if job.state == "cancelling":
        err_console.print(
            f"The job's process ({job.runner}) has not stopped yet; it stops at its next "
            "chunk boundary (`pointsman jobs show` follows it)."
        )
    elif job.state != "cancelled":
        raise JobConflict(f"Job {job_id} {job.state} before the cancel took effect.")


def _alive(runner: str) -> bool:
    """Whether another process that ran a job still runs (on this host; elsewhere: assume
    not, so that a job of a host that is gone can be taken over)."""
    return bool(runner_alive(runner)) and runner.rpartition(":")[2] != str(os.getpid())


def _run(project: Project, job: Job, as_json: bool, only_queued: bool = False) -> None:
    exit_without_teardown()  # the job's output and records are closed when this returns
    with _bar(job) as progress:
        done = run_job(project, job.id, progress, only_queued=only_queued)
    if as_json:
        print_json(done.to_json())
    else:
        _summary(done)
    if done.spec.dry_run and (done.rows_rejected or done.rows_failed):
        sys.exit(1)  # like `pointsman validate`: a dry run can gate a pipeline


@contextmanager
def _bar(job: Job) -> Iterator[Callable[[Job], None]]:
    """A rich progress bar on stderr (rows done of total, rows/s, time left)."""
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("rows · {task.fields[rate]} rows/s · {task.fields[rejected]} rejected"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=err_console, transient=True) as bar:
        task: TaskID = bar.add_task(job.id, total=job.rows_total, rate="-", rejected=0)

        def update(now: Job) -> None:
            bar.update(
                task,
                total=now.rows_total,
                completed=now.rows_done,
                rate=_rate(now),
                rejected=now.rows_rejected,
            )

        yield update


def _summary(job: Job) -> None:
    spec = job.spec
    console.print(
        f"[bold]job {job.id}[/bold]: {escape(job.model)} version {job.version}, "
        f"[bold]{job.state}[/bold]"
    )
    console.print(
        f"  rows {_rows(job)}: {job.rows_rejected} rejected, {job.rows_flagged} "
        f"flagged, {job.rows_failed} the model raised on · {_rate(job)} rows/s"
    )
    if job.eta_s is not None:
        console.print(f"  about {job.eta_s:.0f} s left")
    console.print(f"  input  {escape(spec.input)}")
    if not spec.dry_run:
        console.print(f"  output {escape(spec.output)}")
    console.print(f"  rejects {escape(spec.rejects)}")
    if job.error and job.state in ("cancelling", "cancelled"):
        console.print(f"  {escape(job.error)}")  # by whom and when
    elif job.error:
        console.print(f"  [red]error:[/red] {escape(job.error)}")
    if job.state in ("running", "failed", "cancelled"):
        console.print(f"  resume with `pointsman jobs resume {job.id}`")


def _rows(job: Job) -> str:
    total = "?" if job.rows_total is None else str(job.rows_total)
    return f"{job.rows_done}/{total}"


def _rate(job: Job) -> str:
    return "-" if job.rows_per_s is None else cell(round(job.rows_per_s))


COMMANDS = [batch, jobs]
