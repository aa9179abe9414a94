"""`pointsman export MODEL -o FILE`: prediction records to Parquet or CSV, streamed."""

from __future__ import annotations

from pathlib import Path

import click

from pointsman.cli.context import Context, pass_context
from pointsman.cli.log import filter_options, query_of
from pointsman.cli.output import console
from pointsman.logstore import iter_predictions
from pointsman.logstore.export import FORMATS, export_records, format_of


@click.command()
@click.argument("model")
@filter_options
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--format", "fmt", type=click.Choice(FORMATS), help="Default: from the file name.")
@pass_context
def export(
    ctx: Context,
    model: str,
    version: int | None,
    role: str | None,
    since: str | None,
    until: str | None,
    output: Path,
    fmt: str | None,
) -> None:
    """Write a model's prediction records, oldest first, one row per request and role."""
    chosen = format_of(output, fmt)
    if chosen is None:
        raise click.BadParameter(
            f"cannot tell the format of {output.name}: name it .parquet or .csv, or pass --format",
            param_hint="--output",
        )
    query = query_of(model, version, role, since, until, None, None)
    project = ctx.project()
    count = export_records(iter_predictions(project.engine, query), output, chosen)
    console.print(f"wrote {count} prediction records of {model} to {output} ({chosen})")


COMMANDS = [export]
