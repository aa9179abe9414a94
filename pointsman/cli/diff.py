"""`pointsman diff MODEL A B --data test.csv`: the differential test, with a CI exit code."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
import orjson
from rich.markup import escape

from pointsman.cli.context import Context, pass_context
from pointsman.cli.output import console, print_json, table
from pointsman.cli.running import runner_session
from pointsman.gates.diff import DiffLimits
from pointsman.gates.runs import run_diff
from pointsman.registry.profiles import read_training_data

json_option = click.option(
    "--json",
    "json_out",
    metavar="FILE",
    help="Also write the report as JSON to FILE (`-`: print JSON instead of tables).",
)


def write_json(report: dict[str, Any], json_out: str | None) -> bool:
    """Write the report where --json says; True when it went to stdout (no tables then)."""
    if json_out == "-":
        print_json(report)
        return True
    if json_out:
        Path(json_out).write_bytes(
            orjson.dumps(report, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY)
        )
    return False


@click.command("diff")
@click.argument("model")
@click.argument("a")
@click.argument("b")
@click.option(
    "--data",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The test set (CSV or Parquet) with the model's inputs.",
)
@click.option("--target", help="Column of true values: each side's quality on it.")
@click.option(
    "--max-flip-rate", type=click.FloatRange(0, 1), help="Fail past this label flip rate."
)
@click.option(
    "--max-mean-abs-diff",
    type=click.FloatRange(0),
    help="Fail past this mean absolute difference (regressors: predictions; classifiers: "
    "probabilities).",
)
@json_option
@pass_context
def diff(
    ctx: Context,
    model: str,
    a: str,
    b: str,
    data: Path,
    target: str | None,
    max_flip_rate: float | None,
    max_mean_abs_diff: float | None,
    json_out: str | None,
) -> None:
    """Compare B's answers with A's on a test set, row by row and on average.

    A and B are versions of MODEL; B may also be a model file not registered yet
    (model.joblib, model.py:Class). Exits 1 past --max-flip-rate or --max-mean-abs-diff.
    """
    project = ctx.project()
    table_in = read_training_data(data)
    if target is not None and target not in table_in.columns:
        raise click.ClickException(
            f"{data.name} has no column {target!r} for --target "
            f"(columns: {', '.join(map(str, table_in.columns))})."
        )
    limits = DiffLimits(max_flip_rate, max_mean_abs_diff)
    session = runner_session(project)
    report = run_diff(project, session, model, (a, b), table_in, target, limits)
    if not write_json(report, json_out):
        show(report)
    if not report["passed"]:
        sys.exit(1)


def show(report: dict[str, Any]) -> None:
    """The report as people read it."""
    a, b = report["a"], report["b"]
    console.print(
        f"[bold]{report['model']}[/bold]: {escape(b)} against {escape(a)} on "
        f"{report['rows']} rows ({report['kind']}); agreement within tolerance "
        f"{_pct(report['agreement'])}"
    )
    facts = [
        [name.replace("_", " "), report[name]]
        for name in (
            "flip_rate", "mean_diff", "mean_abs_diff", "p95_abs_diff", "max_abs_diff",
            "probability_mean_abs_diff", "probability_p95_abs_diff", "probability_max_abs_diff",
        )
        if report.get(name) is not None
    ]  # fmt: skip
    table(None, ["", ""], facts)
    if report.get("flips"):
        table(
            "label flips", ["from", "to", "rows"],
            [[f["from"], f["to"], f["rows"]] for f in report["flips"]],
        )  # fmt: skip
    if report.get("segments"):
        table(
            "largest changes by feature segment", ["feature", "segment", "rows", "mean change"],
            [[s["feature"], s["segment"], s["rows"], s["mean_change"]] for s in report["segments"]],
        )  # fmt: skip
    if report.get("quality"):
        names = sorted({k for q in report["quality"].values() for k in q if k != "lateness_s"})
        names = [n for n in names if n not in ("kind", "labelled")]
        rows = [[side, *[q.get(n) for n in names]] for side, q in report["quality"].items()]
        table("quality on the target", ["", *names], rows)
    _verdict(report["failures"])


def _verdict(failures: list[str]) -> None:
    if failures:
        console.print(f"[bold red]FAIL[/bold red]: {escape('; '.join(failures))}")
    else:
        console.print("[bold green]PASS[/bold green]")


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.2%}"


COMMANDS = [diff]
