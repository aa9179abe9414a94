"""`pointsman canary`: start, follow and abort a model's canary."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import click
from rich.markup import escape

from pointsman.cli.context import Context, pass_context
from pointsman.cli.output import cell, console, print_json, table
from pointsman.cli.routes import allow_signature_change, items_of, number_of, print_change
from pointsman.gates.verdicts import QualityGate
from pointsman.project import Project
from pointsman.registry.lineage import current_user
from pointsman.routing import Gates, Route
from pointsman.routing.canary import canary_status

HOLD_PART = re.compile(r"^(\d+)req$|^(\d+(?:\.\d+)?)([smh])$")
SECONDS = {"s": 1, "m": 60, "h": 3600}


def parse_steps(ctx: click.Context, param: click.Parameter, value: str) -> list[int]:
    """`5,25,50,100` → [5, 25, 50, 100]."""
    return [number_of(item, int, "each step") for item in items_of((value,))]


def parse_hold(ctx: click.Context, param: click.Parameter, value: str) -> tuple[int, float]:
    """`500req,2m` (any order; `Nreq` and `Ns|Nm|Nh`) → (hold_requests, hold_s)."""
    requests: int | None = None
    seconds: float | None = None
    for item in items_of((value,)):
        found = HOLD_PART.match(item.lower())
        if found is None:
            raise click.BadParameter(
                f"{item!r} is neither Nreq nor a time such as 90s, 2m or 1h; e.g. --hold 500req,2m"
            )
        if found.group(1) is not None:
            if requests is not None:
                raise click.BadParameter("give the number of requests (Nreq) once")
            requests = int(found.group(1))
        else:
            if seconds is not None:
                raise click.BadParameter("give the time (Ns, Nm or Nh) once")
            seconds = float(found.group(2)) * SECONDS[found.group(3)]
    return (500 if requests is None else requests, 120.0 if seconds is None else seconds)


def duration(seconds: float) -> str:
    """120 → `2m`, 90 → `90s`, 7200 → `2h` (whole seconds)."""
    seconds = round(seconds)
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


@click.command("canary")
@click.argument("model")
@click.argument("version", required=False)
@click.option(
    "--steps",
    default="5,25,50,100",
    show_default=True,
    callback=parse_steps,
    metavar="PERCENT,...",
    help="Candidate's share at each step, rising to 100 (100 is added if missing).",
)
@click.option(
    "--hold",
    default="500req,2m",
    show_default=True,
    callback=parse_hold,
    metavar="Nreq,TIME",
    help="Minimum per step before it may advance: Nreq and/or a time (Ns, Nm, Nh), in any "
    "order; one left out keeps its default.",
)
@click.option(
    "--gate",
    "quality_gate",
    metavar="EXPR",
    help='Quality gate on outcomes, e.g. "auc >= primary - 0.01": rolled back once enough '
    "outcomes show the candidate worse than that.",
)
@click.option(
    "--min-outcomes",
    type=click.IntRange(1),
    default=200,
    show_default=True,
    help="Outcomes per arm before the quality gate may roll back.",
)
@click.option("--status", is_flag=True, help="Show the canary: step, window figures, hold.")
@click.option("--abort", is_flag=True, help="Stop the canary; the baseline takes all traffic.")
@click.option("--reason", default="", help="Why (with --abort), kept in the route history.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@allow_signature_change
@pass_context
def canary(
    ctx: Context,
    model: str,
    version: str | None,
    steps: list[int],
    hold: tuple[int, float],
    quality_gate: str | None,
    min_outcomes: int,
    status: bool,
    abort: bool,
    reason: str,
    as_json: bool,
    allow_signature_change: bool,
) -> None:
    """Move VERSION of MODEL through traffic steps while its gates hold against the baseline.

    Each step holds for a minimum number of requests and time; a failing gate (error rate,
    p99 latency, fallback rate, validation failures, agreement) sends it back to 0 % at once.
    """
    if status and abort:
        raise click.UsageError("give --status or --abort, not both.")
    if (status or abort) == (version is not None):
        raise click.UsageError(
            f"give VERSION to start a canary (pointsman canary {model} 4), or --status / "
            "--abort without one."
        )
    user = current_user()
    project = ctx.project()
    if status:
        _print_status(model, canary_report(project, model), as_json)
        return
    if abort:
        why = reason or f"aborted by {user}"
        change = project.routes.end_canary(model, "aborted", why, user)
    else:
        requests, seconds = hold
        gates = None
        if quality_gate is not None:
            QualityGate.parse(quality_gate)  # refused here, with the form to write
            gates = Gates(quality=quality_gate.strip(), min_outcomes=min_outcomes)
        change = project.routes.start_canary(
            model, str(version), steps, user, hold_requests=requests, hold_s=seconds,
            gates=gates, allow_signature_change=allow_signature_change,
        )  # fmt: skip
    if as_json:
        print_change(model, change, as_json)
    elif abort:
        console.print(
            f"Canary of [bold]{model}[/bold] aborted: version {change.after.primary} answers "
            f"all traffic again (route revision {change.after.revision})."
        )
    else:
        _print_started(model, change.after)


def canary_report(project: Project, model: str) -> dict[str, Any]:
    """The canary of the route in force (state `none` if it has none), with its window."""
    route = project.routes.get(model)
    return {"model": model, "revision": route.revision, **canary_status(project.engine, route)}


def _print_started(model: str, route: Route) -> None:
    c = route.policy.canary
    if c is None:  # start_canary always writes one
        return
    console.print(
        f"Canary of [bold]{model}[/bold] version [bold]{c.candidate}[/bold] started at "
        f"{c.weight} % against version {c.baseline} (route revision {route.revision}); steps "
        f"{', '.join(map(str, c.steps))} %, each held for {c.hold_requests} requests and "
        f"{duration(c.hold_s)}. Follow it with: pointsman canary {model} --status"
    )


def _print_status(model: str, report: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(report)
        return
    if report.get("state") == "none":
        console.print(
            f"{model} has no canary. Start one with: pointsman canary {model} VERSION "
            "--steps 5,25,50,100 --hold 500req,2m"
        )
        return
    facts: list[list[Any]] = [
        ["state", str(report.get("state")).replace("_", " ")],
        ["candidate", report.get("candidate")],
        ["baseline", report.get("baseline")],
    ]
    if report.get("state") != "running":
        facts.append(["reason", escape(report.get("reason") or "-")])
        table(f"{model} canary", ["", ""], facts)
        return
    steps = report.get("steps") or []
    arms = report.get("arms") or {}
    candidate = arms.get(str(report.get("candidate")), {})
    step = int(report.get("step") or 0) + 1
    since = report.get("since")
    when = f"{cell(datetime.fromisoformat(since))} UTC, " if since else ""
    facts += [
        ["since", f"{when}route revision {report.get('revision')}"],
        ["step", f"{step} of {len(steps)}: {report.get('weight')} % (steps {cell(steps)} %)"],
        [
            "hold",
            f"{candidate.get('requests', 0)} of {report.get('hold_requests')} requests, "
            f"{duration(float(report.get('held_s') or 0))} of "
            f"{duration(float(report.get('hold_s') or 0))}",
        ],
        ["gates", _gates_text(report.get("gates") or {})],
        ["next", (report.get("next") or {}).get("reason") or "-"],
    ]
    table(f"{model} canary", ["", ""], facts)
    columns = ["version", "requests", "errors", "error rate", "p99 ms", "fallback", "invalid"]
    keys = ["requests", "errors", "error_rate", "p99_ms", "fallback_rate", "validation_rate"]
    rows = [[version, *(figures.get(k) for k in keys)] for version, figures in arms.items()]
    table("window of this step", columns, rows)


def _gates_text(gates: dict[str, float]) -> str:
    parts = [
        f"{label} +{gates[name]:.0%}"
        for name, label in (
            ("max_error_rate_delta", "error rate"),
            ("max_fallback_rate_delta", "fallback rate"),
            ("max_validation_rate_delta", "validation failures"),
        )
        if name in gates
    ]
    if "max_p99_ratio" in gates:
        parts.append(f"p99 {gates['max_p99_ratio']:g}x")
    if "min_agreement" in gates:
        parts.append(f"agreement ≥ {gates['min_agreement']:.0%} if shadowed")
    return "candidate vs baseline at most: " + ", ".join(parts) if parts else "-"


COMMANDS = [canary]
