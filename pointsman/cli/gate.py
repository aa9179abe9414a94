"""`pointsman gate MODEL VERSION --data test.csv`: what a CI job runs before deploy or canary."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
from rich.markup import escape

from pointsman.cli import bench as bench_cli
from pointsman.cli import diff as diff_cli
from pointsman.cli.context import Context, pass_context
from pointsman.cli.diff import json_option, write_json
from pointsman.cli.output import console
from pointsman.cli.running import runner_session
from pointsman.gates.runs import run_gate
from pointsman.registry.profiles import is_parquet, read_training_data


@click.command("gate")
@click.argument("model")
@click.argument("version")
@click.option(
    "--data",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The test set (CSV or Parquet) with the model's inputs.",
)
@click.option("--target", help="Column of true values (kept out of the inputs; quality on it).")
@json_option
@pass_context
def gate(
    ctx: Context, model: str, version: str, data: Path, target: str | None, json_out: str | None
) -> None:
    """Validate the test set, diff VERSION against the version in force and benchmark them.

    Thresholds come from the [gate] table of pointsman.toml (docs/release-gates.md). Prints
    one verdict and exits 1 when any check fails: what a CI job runs before `deploy` or
    `canary`.
    """
    project = ctx.project()
    table_in = read_training_data(data)
    if target is not None and target not in table_in.columns:
        raise click.ClickException(
            f"{data.name} has no column {target!r} for --target "
            f"(columns: {', '.join(map(str, table_in.columns))})."
        )
    session = runner_session(project)
    report = run_gate(
        project, session, model, version, table_in, target, text_source=not is_parquet(data)
    )
    if not write_json(report, json_out):
        show(report)
    if not report["passed"]:
        sys.exit(1)


def show(report: dict[str, Any]) -> None:
    v = report["validation"]
    console.print(
        f"[bold]{report['model']}[/bold] version {report['version']} against version "
        f"{report['baseline']} (in force)\n"
        f"validation: {v['rows']} test rows, {v['refused_rows']} would be refused, "
        f"{v['flagged_rows']} flagged"
    )
    diff_cli.show(report["diff"])
    bench_cli.show(report["bench"])
    if report["failures"]:
        lines = "\n".join(f"  - {escape(f)}" for f in report["failures"])
        console.print(f"[bold red]GATE FAILED[/bold red]:\n{lines}")
    else:
        console.print("[bold green]GATE PASSED[/bold green]: validation, diff and bench hold.")


COMMANDS = [gate]
