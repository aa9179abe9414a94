"""The `pointsman` command: global options and the command table."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from pointsman import __version__
from pointsman.cli import (
    alerts,
    audit,
    canary,
    demo,
    drift,
    explain,
    export,
    keys,
    log,
    models,
    predict,
    project,
    replay,
    routes,
    serve,
    validate,
)
from pointsman.cli.context import Context, Group


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--project",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="POINTSMAN_PROJECT",
    help="Project folder (default: the current folder).",
)
@click.option("--debug", is_flag=True, help="Show tracebacks.")
@click.version_option(__version__, prog_name="pointsman")
@click.pass_context
def cli(ctx: click.Context, project: Path | None, debug: bool) -> None:
    """pointsman: run trained models in production, one stable endpoint per model."""
    ctx.obj = Context(project, debug)
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING)


for _module in (
    project,
    models,
    routes,
    canary,
    serve,
    predict,
    demo,
    validate,
    keys,
    audit,
    log,
    explain,
    replay,
    export,
    alerts,
    drift,
):
    for _command in _module.COMMANDS:
        cli.add_command(_command)


def main() -> None:
    cli(prog_name="pointsman")
