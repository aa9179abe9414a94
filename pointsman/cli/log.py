"""`pointsman log MODEL` (the prediction log, as a table, JSON or CSV) and `pointsman log prune`."""

from __future__ import annotations

import csv
import sys
from typing import Any

import click
import orjson

from pointsman.cli.context import Context, pass_context
from pointsman.cli.output import console, err_console, print_json, table
from pointsman.errors import BadLogQuery
from pointsman.logstore import LogQuery, find_predictions
from pointsman.logstore.query import MAX_LIMIT, ROLES, parse_span, parse_time, prune_predictions

CSV_COLUMNS = [
    "time", "request_id", "model", "version", "role", "route_revision", "client", "n_rows",
    "latency_ms", "model_ms", "runtime", "error_code", "error", "inputs", "outputs", "findings",
]  # fmt: skip


class LogGroup(click.Group):
    """`log MODEL ...` reads as `log show MODEL ...`; `log prune` is the one subcommand."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["show", *args]
        return super().parse_args(ctx, args)


@click.group(cls=LogGroup)
def log() -> None:
    """The prediction log: `pointsman log MODEL [filters]`, `pointsman log prune`."""


def query_of(
    model: str | None,
    version: int | None,
    role: str | None,
    since: str | None,
    until: str | None,
    request_id: str | None,
    errors: bool | None,
) -> LogQuery:
    """The filters as a LogQuery; a time that cannot be read exits with a clear error."""
    try:
        return LogQuery(
            model=model,
            version=version,
            role=role,
            since=parse_time("--since", since) if since else None,
            until=parse_time("--until", until) if until else None,
            request_id=request_id,
            has_error=errors,
        )
    except BadLogQuery as exc:
        raise click.BadParameter(exc.message) from None


def filter_options(command: Any) -> Any:
    """The filters `log`, `export` and `replay` share."""
    options = [
        click.option("--version", type=int, help="Only this version."),
        click.option("--role", type=click.Choice(ROLES), help="Only this role."),
        click.option("--since", help="From: a span back (1h, 7d) or an ISO time."),
        click.option("--until", help="Before: a span back (1h, 7d) or an ISO time."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


@log.command("show")
@click.argument("model")
@filter_options
@click.option("--request-id", help="Only this request (its primary and shadow records).")
@click.option("--errors/--no-errors", default=None, help="Only failed / only answered requests.")
@click.option("--limit", type=click.IntRange(1, MAX_LIMIT), default=20, show_default=True)
@click.option("--cursor", help="Continue from the cursor a previous page printed.")
@click.option("--json", "as_json", is_flag=True, help="JSON: records and the next cursor.")
@click.option("--csv", "as_csv", is_flag=True, help="CSV on stdout (inputs/outputs as JSON).")
@pass_context
def show(
    ctx: Context,
    model: str,
    version: int | None,
    role: str | None,
    since: str | None,
    until: str | None,
    request_id: str | None,
    errors: bool | None,
    limit: int,
    cursor: str | None,
    as_json: bool,
    as_csv: bool,
) -> None:
    """A model's prediction records, newest first."""
    query = query_of(model, version, role, since, until, request_id, errors)
    project = ctx.project()
    page = find_predictions(project.engine, query, limit, cursor)
    if as_json:
        print_json({"predictions": page.records, "cursor": page.cursor})
    elif as_csv:
        write_csv(page.records, sys.stdout)
        if page.cursor:
            err_console.print(f"next page: --cursor {page.cursor}")
    else:
        rows = [
            [
                r["time"][:19].replace("T", " "), r["request_id"], r["version"], r["role"],
                r["n_rows"], f"{r['latency_ms']:.2f}", _answer(r),
            ]
            for r in page.records
        ]  # fmt: skip
        columns = ["time (UTC)", "request id", "v", "role", "rows", "ms", "answer"]
        # The id is what `pointsman explain` takes: folded onto two lines, never cut short.
        table(f"{model}: {len(rows)} records", columns, rows, whole=("request id",))
        if page.cursor:
            console.print(f"more: pointsman log {model} ... --cursor {page.cursor}")


def _answer(record: dict[str, Any]) -> str:
    if record["error_code"]:
        return f"error {record['error_code']}"
    outputs = record["outputs"] or {}
    predictions = outputs.get("predictions") or []
    shown = ", ".join(str(p) for p in predictions[:3])
    return shown + (f" (+{len(predictions) - 3})" if len(predictions) > 3 else "")


def write_csv(records: Any, out: Any) -> int:
    """Records as CSV rows (nested values as JSON); returns how many were written."""
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    count = 0
    for r in records:
        writer.writerow([_csv_cell(r.get(c)) for c in CSV_COLUMNS])
        count += 1
    return count


def _csv_cell(value: Any) -> Any:
    if isinstance(value, dict | list):
        return orjson.dumps(value).decode()
    return "" if value is None else value


@log.command("prune")
@click.option("--older-than", required=True, help="Delete records older than this (30d, 12h).")
@pass_context
def prune(ctx: Context, older_than: str) -> None:
    """Delete prediction records older than a span (see also log_retention_days)."""
    try:
        span = parse_span("--older-than", older_than)
    except BadLogQuery as exc:
        raise click.BadParameter(exc.message) from None
    project = ctx.project()
    count = prune_predictions(project.engine, span)
    console.print(f"deleted {count} prediction records older than {older_than}")


COMMANDS = [log]
