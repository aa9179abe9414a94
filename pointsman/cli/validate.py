"""`pointsman validate | profile`: a file through the request checks; a version's reference."""

from __future__ import annotations

import itertools
import sys
from pathlib import Path
from typing import Any

import click
from rich.markup import escape
from rich.table import Table

from pointsman.cli.context import Context, pass_context
from pointsman.cli.output import cell, console, print_json
from pointsman.project import Project
from pointsman.registry import VersionRecord
from pointsman.registry.profiles import is_parquet, read_training_data
from pointsman.validation.policy import ValidationPolicy
from pointsman.validation.report import Report, validate_table

BAR_WIDTH = 30
MAX_CATEGORIES_SHOWN = 20


def version_of(project: Project, model: str, version: str | None) -> VersionRecord:
    """The given version, else the one the route answers with, else the newest."""
    if version is not None:
        return project.registry.get_version(model, version)
    route = project.routes.find(model)
    if route is not None:
        return project.registry.get_version(model, route.primary)
    numbers = project.registry.version_numbers(model)  # ModelNotFound names the models
    return project.registry.get_version(model, max(numbers))


@click.command("validate")
@click.argument("model")
@click.argument("data", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--version", help="Version to check against (default: the routed one).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@pass_context
def validate(ctx: Context, model: str, data: Path, version: str | None, as_json: bool) -> None:
    """Check every row of DATA (CSV or Parquet) as the server checks requests to MODEL.

    Uses the version's reference profile and the validation policy of MODEL's route (or the
    defaults). Exits with 1 when a server would refuse some rows, so it can gate a pipeline.
    """
    project = ctx.project()
    record = version_of(project, model, version)
    route = project.routes.find(model)
    policy = route.policy.validation if route else ValidationPolicy()
    frame = read_training_data(data)
    text = not is_parquet(data)
    report = validate_table(
        model, record.number, frame, record.signature, record.profile, policy, text_source=text
    )
    if as_json:
        print_json({**report.to_json(), "policy": policy.to_json()})
    else:
        _print_report(report, policy, data)
    if report.refused_rows:
        sys.exit(1)


def _print_report(report: Report, policy: ValidationPolicy, data: Path) -> None:
    rows: list[list[Any]] = []
    for f in report.features:
        if not f.rules and f.type == "row":
            continue
        found = ", ".join(f"{rule} {n} ({f.actions[rule]})" for rule, n in f.rules.items())
        examples = ", ".join(f.examples)
        rows.append([escape(f.feature), f.type, escape(found) or "ok", escape(examples) or "-"])
    out = Table(
        title=f"{escape(data.name)} against {report.model} version {report.version}",
        title_justify="left",
        header_style="bold",
    )
    out.add_column("feature", no_wrap=True)
    out.add_column("type", no_wrap=True)
    out.add_column("findings (action)", ratio=3, overflow="fold")
    out.add_column("examples", ratio=2, overflow="fold")
    for row in rows:
        out.add_row(*row)
    console.print(out)
    if report.ignored_columns:
        console.print(f"Not model inputs, ignored: {escape(', '.join(report.ignored_columns))}")
    console.print(
        f"{report.rows} rows: {report.refused_rows} would be refused (422), "
        f"{report.flagged_rows} served with warnings. Policy: {escape(policy.describe())}."
    )


@click.command("profile")
@click.argument("model")
@click.argument("version", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print the profile as JSON.")
@pass_context
def profile(ctx: Context, model: str, version: str | None, as_json: bool) -> None:
    """Show the reference profile of MODEL VERSION (default: the routed one).

    Ranges, moments and null rates, histograms of the quantile bins and category shares as
    text bars: what every request is checked against.
    """
    project = ctx.project()
    record = version_of(project, model, version)
    if as_json:
        print_json({"model": model, "version": record.number, "profile": record.profile})
        return
    features = (record.profile or {}).get("features", {})
    if not features:
        console.print(
            f"{model} version {record.number} has no reference profile: it was registered "
            "without --training-data, so its inputs are checked against the signature only."
        )
        return
    console.print(
        f"[bold]{model}[/bold] version [bold]{record.number}[/bold]: reference profile from "
        f"{record.profile.get('rows', '?') if record.profile else '?'} training rows"
    )
    for spec in record.signature.inputs:
        stats = features.get(spec.name)
        if stats:
            _print_feature(spec.name, spec.type, stats)


def _print_feature(name: str, kind: str, stats: dict[str, Any]) -> None:
    nulls = f"nulls {stats.get('null_rate', 0):.1%}"
    if stats["kind"] == "numeric":
        if not stats.get("count"):
            console.print(f"\n[bold]{escape(name)}[/bold] ({kind}): no values, {nulls}")
            return
        console.print(
            f"\n[bold]{escape(name)}[/bold] ({kind}): {cell(stats['min'])} to "
            f"{cell(stats['max'])}, mean {cell(stats['mean'])}, std {cell(stats['std'])}, {nulls}"
        )
        edges, shares = stats.get("bin_edges", []), stats.get("bin_fractions", [])
        pairs = list(itertools.pairwise(edges))
        labels = [f"{cell(lo)} to {cell(hi)}" for lo, hi in pairs]
        # Quantile bins hold similar shares: the bar is the density (share per unit width),
        # so that the shape of the distribution shows.
        density = [
            s / (hi - lo) if hi > lo else 0.0 for s, (lo, hi) in zip(shares, pairs, strict=False)
        ]
        _bars(labels, shares, density)
        return
    shares = stats.get("categories", {})
    top = sorted(shares.items(), key=lambda kv: (-kv[1], kv[0]))[:MAX_CATEGORIES_SHOWN]
    more = stats.get("n_categories", len(shares)) - len(top)
    console.print(
        f"\n[bold]{escape(name)}[/bold] ({kind}): {stats.get('n_categories', len(shares))} "
        f"categories, {nulls}"
    )
    _bars([repr(k) for k, _ in top], [v for _, v in top])
    if more > 0:
        console.print(f"  … and {more} more")


def _bars(labels: list[str], shares: list[float], heights: list[float] | None = None) -> None:
    heights = heights or shares
    width = max((len(label) for label in labels), default=0)
    peak = max(heights, default=0) or 1
    for label, share, height in zip(labels, shares, heights, strict=False):
        bar = "█" * max(1 if height > 0 else 0, round(height / peak * BAR_WIDTH))
        console.print(f"  {escape(label).ljust(width)}  {bar} {share:.1%}", highlight=False)


COMMANDS = [validate, profile]
