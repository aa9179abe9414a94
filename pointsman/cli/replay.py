"""`pointsman replay MODEL --to V`: logged inputs run offline on another version, compared."""

from __future__ import annotations

import random
import statistics
from collections import Counter
from typing import Any

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

from pointsman.cli.context import Context, pass_context
from pointsman.cli.log import filter_options, query_of
from pointsman.cli.output import console, err_console, print_json, table
from pointsman.cli.running import runner_session
from pointsman.errors import PointsmanError
from pointsman.logstore import iter_predictions
from pointsman.logstore.query import count_predictions, iter_sample
from pointsman.logstore.rerun import Rerunner
from pointsman.routing.agreement import Agreement


@click.command()
@click.argument("model")
@click.option("--to", "to_version", type=int, required=True, help="The version to replay on.")
@filter_options
@click.option("--sample", type=click.IntRange(1), help="Replay at most this many, at random.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of --sample.")
@click.option("--json", "as_json", is_flag=True, help="The report as JSON.")
@pass_context
def replay(
    ctx: Context,
    model: str,
    to_version: int,
    version: int | None,
    role: str | None,
    since: str | None,
    until: str | None,
    sample: int | None,
    seed: int,
    as_json: bool,
) -> None:
    """Run logged inputs on version --to; report agreement, changed labels, probability and
    latency differences (answered records only; shadows unless --role says otherwise)."""
    query = query_of(model, version, role, since, until, None, False)
    project = ctx.project()
    target = project.registry.get_version(model, to_version)
    total = count_predictions(project.engine, query)
    picked = (
        set(random.Random(seed).sample(range(total), sample)) if sample and sample < total else None
    )
    todo = len(picked) if picked is not None else total
    route = project.routes.find(model)
    report = Report(model, to_version, route.policy.agreement if route else Agreement())
    rerunner = Rerunner(runner_session(project))
    rerunner.warm(target)  # load (and fail) before the progress bar
    with Progress(
        "[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
        TimeRemainingColumn(), console=err_console, transient=True, disable=as_json,
    ) as progress:  # fmt: skip
        task = progress.add_task(f"replaying on version {to_version}", total=todo)
        records = (
            iter_predictions(project.engine, query)
            if picked is None
            else iter_sample(project.engine, query, picked)
        )
        for record in records:
            if role is None and record["role"] == "shadow":
                progress.advance(task)
                continue
            report.add(rerunner, target, record)
            progress.advance(task)
    result = report.to_json()
    if as_json:
        print_json(result)
    else:
        show(result)


class Report:
    """Running totals of a replay."""

    def __init__(self, model: str, version: int, agreement: Agreement | None = None) -> None:
        self.model = model
        self.version = version
        self.agreement = agreement or Agreement()
        self.requests = self.rows = self.agreed_rows = self.agreed_requests = 0
        self.changes: Counter[tuple[str, str]] = Counter()
        self.deltas: list[float] = []
        self.logged_ms: list[float] = []
        self.replay_ms: list[float] = []
        self.skipped: Counter[str] = Counter()
        self.from_versions: Counter[int] = Counter()

    def add(self, rerunner: Rerunner, target: Any, record: dict[str, Any]) -> None:
        try:
            result = rerunner.run(target, record)
        except PointsmanError as exc:
            self.skipped[exc.code] += 1
            return
        self.requests += 1
        self.from_versions[record["version"]] += 1
        old, new = result.logged_predictions, result.predictions
        self.rows += len(new)
        changed = result.changed_rows(self.agreement)
        self.agreed_rows += len(new) - len(changed)
        self.agreed_requests += not changed
        for i in changed:
            before = old[i] if i < len(old) else None
            after = new[i] if i < len(new) else None
            self.changes[(str(before), str(after))] += 1
        self.deltas += result.probability_deltas()
        if record.get("model_ms") is not None:
            self.logged_ms.append(record["model_ms"])
        self.replay_ms.append(result.model_ms)

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "to_version": self.version,
            "from_versions": {str(v): n for v, n in sorted(self.from_versions.items())},
            "requests": self.requests,
            "rows": self.rows,
            "agreement": self.agreed_rows / self.rows if self.rows else None,
            "requests_agreeing": self.agreed_requests,
            "changed_labels": [
                {"from": a, "to": b, "rows": n} for (a, b), n in self.changes.most_common()
            ],
            "probability_delta": _summary(self.deltas),
            "latency_ms": {"logged": _summary(self.logged_ms), "replay": _summary(self.replay_ms)},
            "skipped": dict(self.skipped),
        }


def _summary(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    ordered = sorted(values)
    return {
        "mean": statistics.fmean(ordered),
        "p50": ordered[len(ordered) // 2],
        "p95": ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))],
        "max": ordered[-1],
    }


def show(result: dict[str, Any]) -> None:
    agreement = result["agreement"]
    console.print(
        f"replayed {result['requests']} requests ({result['rows']} rows) of {result['model']} "
        f"on version {result['to_version']}: agreement "
        + ("-" if agreement is None else f"{agreement:.2%}")
    )
    if result["changed_labels"]:
        table(
            "changed labels",
            ["from", "to", "rows"],
            [[c["from"], c["to"], c["rows"]] for c in result["changed_labels"]],
        )
    rows = []
    for name, summary in (
        ("probability delta", result["probability_delta"]),
        ("model ms, logged", result["latency_ms"]["logged"]),
        ("model ms, replay", result["latency_ms"]["replay"]),
    ):
        if summary:
            rows.append([name, summary["mean"], summary["p50"], summary["p95"], summary["max"]])
    if rows:
        table(None, ["", "mean", "p50", "p95", "max"], rows)
    if result["skipped"]:
        skipped = ", ".join(f"{n} {code}" for code, n in result["skipped"].items())
        console.print(f"skipped: {skipped}")


COMMANDS = [replay]
