"""`pointsman quality MODEL`: predictions scored against their outcomes, per version and window."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import click

from pointsman.cli.context import Context, pass_context
from pointsman.cli.output import console, print_json, table
from pointsman.logstore.query import ROLES, parse_span, parse_time
from pointsman.monitoring.quality import QualityQuery, quality_report

COLUMNS = {
    "classification": ["accuracy", "log_loss", "auc", "brier", "calibration_error"],
    "regression": ["mae", "rmse", "bias"],
}


@click.command("quality")
@click.argument("model")
@click.option("--since", default="7d", show_default=True, help="Predictions from: 7d, or ISO.")
@click.option("--until", help="Predictions before: a span back from now or an ISO time.")
@click.option("--window", help="One row per window of this length, e.g. 1d (default: one).")
@click.option("--version", type=int, help="One version only.")
@click.option("--role", type=click.Choice(ROLES), help="One role only (primary, shadow, ...).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@pass_context
def quality(
    ctx: Context,
    model: str,
    since: str,
    until: str | None,
    window: str | None,
    version: int | None,
    role: str | None,
    as_json: bool,
) -> None:
    """Score MODEL's predictions against their outcomes, per version, role and window.

    Classifiers: accuracy, log loss, ROC AUC, Brier score, calibration error; regressors:
    MAE, RMSE, bias; with the number labelled and how late their outcomes came.
    """
    project = ctx.project()
    project.registry.version_numbers(model)  # ModelNotFound names the models
    now = datetime.now(UTC)
    query = QualityQuery(
        model,
        parse_time("--since", since, now),
        parse_time("--until", until, now) if until else now,
        parse_span("--window", window).total_seconds() if window else None,
        version,
        role,
    )
    report = quality_report(project.engine, project.routes, query)
    if as_json:
        print_json(report)
        return
    show(report)


def show(report: dict[str, Any]) -> None:
    groups = report["groups"]
    if not groups:
        console.print(
            f"No labelled predictions of {report['model']} since {report['since'][:16]} "
            f"({report['outcomes_stored']} outcomes stored). Send outcomes with "
            f"`pointsman outcomes add {report['model']} -f FILE`."
        )
        return
    kind = next((g["kind"] for g in groups if "kind" in g), "classification")
    names = COLUMNS[kind]
    rows = []
    for g in groups:
        late = g.get("lateness_s") or {}
        rows.append(
            [g["version"], g["role"], g["window"]["start"][:16], g["labelled"]]
            + [g.get(n) for n in names]
            + [_span(late.get("p50"))]
        )
    table(
        f"{report['model']}: quality against outcomes",
        ["version", "role", "window from", "labelled", *names, "late p50"],
        rows,
    )


def _span(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.0f}s"


COMMANDS = [quality]
