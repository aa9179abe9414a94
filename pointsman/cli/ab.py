"""`pointsman ab MODEL`: which arm wins, with always-valid intervals and the sample needed."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import click
from rich.markup import escape

from pointsman.cli.context import Context, pass_context
from pointsman.cli.output import console, print_json, table
from pointsman.gates.abtest import PER_ROW
from pointsman.gates.verdicts import ab_report, arm_rows
from pointsman.logstore.query import parse_time


@click.command("ab")
@click.argument("model")
@click.option("--metric", type=click.Choice(sorted(PER_ROW)), help="Default: accuracy or mae.")
@click.option("--since", default="30d", show_default=True, help="Predictions from: 30d, or ISO.")
@click.option("--baseline", type=int, help="The arm the others are compared with (default: "
              "the route's primary).")  # fmt: skip
@click.option("--versions", help="Arms to compare, e.g. 3,4 (default: the route's arms).")
@click.option(
    "--alpha",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    default=0.05,
    show_default=True,
    help="Chance of declaring a difference where there is none.",
)
@click.option("--mde", type=click.FloatRange(0, min_open=True),
              help="Smallest difference worth detecting, in the metric's unit (default: 0.02 "
              "for accuracy and log loss).")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@pass_context
def ab(
    ctx: Context, model: str, metric: str | None, since: str, baseline: int | None,
    versions: str | None, alpha: float, mde: float | None, as_json: bool,
) -> None:  # fmt: skip
    """Which arm of MODEL wins: quality per arm, difference, significance, sample needed.

    Per arm, the metric on its labelled answers with an always-valid confidence interval;
    per arm against the baseline, the difference with its interval, whether it is
    significant, and the rows per arm still needed to detect --mde. The intervals stay valid
    however often you look (a sequential test: no peeking problem).
    """
    project = ctx.project()
    project.registry.version_numbers(model)
    route = project.routes.get(model)
    arms = [a.version for a in route.policy.arms if a.weight > 0]
    if versions:
        try:
            arms = [int(v) for v in versions.split(",")]
        except ValueError:
            raise click.BadParameter(f"give versions like 3,4; got {versions!r}") from None
    base = baseline if baseline is not None else route.primary
    if base not in arms:
        arms = [base, *arms]
    if len(arms) < 2:
        raise click.ClickException(
            f"{model} has one arm ({base}); split traffic first (`pointsman route {model} "
            "--ab 3=50,4=50`) or name the arms with --versions 3,4."
        )
    now = datetime.now(UTC)
    key = route.policy.outcome_key
    rows = arm_rows(project.engine, key, model, arms, parse_time("--since", since, now), now)
    report = {"model": model, **ab_report(rows, base, metric, alpha, mde)}
    if as_json:
        print_json(report)
        return
    show(report)


def show(report: dict[str, Any]) -> None:
    metric, base = report["metric"], report["baseline"]
    if not report["comparisons"]:
        console.print(escape("No arm to compare."))
    for c in report["comparisons"]:
        cand, ref = c["candidate"], c["baseline"]
        facts: list[list[Any]] = [
            [f"version {c['version']} ({cand['n']} labelled)", _interval(cand)],
            [f"version {base} ({ref['n']} labelled)", _interval(ref)],
            ["difference", _interval(c["difference"] or {})],
            ["significant", "yes" if c["significant"] else "no"],
            ["verdict", c["verdict"]],
            ["rows per arm still needed", c["needed_per_arm"]],
        ]
        table(
            f"{report['model']}: {metric}, version {c['version']} against {base} "
            f"(always-valid {1 - report['alpha']:.0%} intervals, MDE {c['mde']:g})",
            ["", ""],
            facts,
        )


def _interval(e: dict[str, Any]) -> str:
    if not e or e.get("value") is None:
        return "-"
    if e.get("low") is None:
        return f"{e['value']:.4g}"
    return f"{e['value']:.4g} [{e['low']:.4g}, {e['high']:.4g}]"


COMMANDS = [ab]
