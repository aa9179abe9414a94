"""`pointsman drift`: recent traffic against the reference profile, now, with its history."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import click
from rich.markup import escape
from rich.table import Table

from pointsman.cli.context import Context, pass_context
from pointsman.cli.output import console, print_json
from pointsman.logstore.query import parse_span
from pointsman.monitoring.drift import Thresholds
from pointsman.monitoring.monitor import (
    DriftReport,
    drift_report,
    history,
    routed_versions,
    store_report,
)

SPARKS = "▁▂▃▄▅▆▇█"
GRADE_STYLE = {"ok": "green", "warn": "yellow", "alert": "bold red", "too_small": "dim"}


def sparkline(values: list[float | None], top: float) -> str:
    """PSI values as bars scaled to `top` (the alert threshold fills the bar); gaps as ·."""
    out = []
    for value in values:
        if value is None:
            out.append("·")
        else:
            level = min(int(value / top * (len(SPARKS) - 1) + 0.5), len(SPARKS) - 1)
            out.append(SPARKS[level])
    return "".join(out)


@click.command("drift")
@click.argument("model")
@click.option("--version", type=int, help="One version (default: every routed version).")
@click.option("--window", default="1h", show_default=True, help="Logged traffic to compare.")
@click.option(
    "--history",
    "past",
    default="24h",
    show_default=True,
    help="How far back the sparklines of stored runs go.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the reports as JSON.")
@pass_context
def drift(
    ctx: Context, model: str, version: int | None, window: str, past: str, as_json: bool
) -> None:
    """Compare MODEL's recent inputs and predictions with each version's training data.

    Per feature: PSI on the reference bins (numeric) or categories, a Kolmogorov-Smirnov or
    chi-square test, the bin or category that moved most, and a sparkline of earlier runs.
    The run is stored like the monitor's scheduled runs.
    """
    span = parse_span("--window", window)
    back = parse_span("--history", past)
    project = ctx.project()
    settings = project.settings
    thresholds = Thresholds(
        settings.drift_warn_psi, settings.drift_alert_psi, settings.drift_min_rows
    )
    if version is not None:
        versions = [project.registry.get_version(model, version).number]
    else:
        versions = routed_versions(project, model)
        if not versions:
            project.registry.version_numbers(model)  # ModelNotFound names the models
            raise click.ClickException(
                f"{model} is not deployed: give --version, or deploy it first."
            )
    reports = []
    for number in versions:
        report = drift_report(project, model, number, span, thresholds)
        store_report(project.engine, report)
        reports.append((report, history(project.engine, model, number, report.window_end - back)))
    if as_json:
        print_json([r.to_json() for r, _ in reports])
        return
    for report, past_runs in reports:
        _print_report(report, past_runs, thresholds)


def _print_report(
    report: DriftReport, past: dict[str, list[tuple[datetime, float | None, str]]], t: Thresholds
) -> None:
    title = (
        f"{report.model} version {report.version}: {report.rows} rows in the last "
        f"{_span(report.window_s)} — {report.grade}"
    )
    out = Table(title=escape(title), title_justify="left", header_style="bold")
    for name in ("feature", "rows", "PSI", "grade", "test"):
        out.add_column(name, no_wrap=True)
    out.add_column("moved most", ratio=3, overflow="fold")
    out.add_column("history", no_wrap=True)
    for f in report.features:
        test = "-" if f.test == "none" else f"{f.test} p={_p(f.p_value)}"
        style = GRADE_STYLE.get(f.grade, "")
        runs = [psi for _, psi, _ in past.get(f.feature, [])]
        out.add_row(
            escape(f.feature),
            str(f.rows),
            "-" if f.psi is None else f"{f.psi:.3f}",
            f"[{style}]{f.grade}[/]",
            test,
            escape(f.top_change) or "-",
            sparkline(runs[-24:], t.alert),
        )
    console.print(out)
    if report.skipped:
        console.print(f"Redacted in the log, not compared: {escape(', '.join(report.skipped))}")
    if report.rows < t.min_rows:
        console.print(
            f"Fewer than {t.min_rows} rows: too small to grade (drift_min_rows). "
            "Widen --window or wait for traffic."
        )


def _p(value: float | None) -> str:
    if value is None:
        return "-"
    return "<1e-6" if value < 1e-6 else f"{value:.2g}"


def _span(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


COMMANDS: list[Any] = [drift]
