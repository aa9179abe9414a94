"""`pointsman outcomes add MODEL -f outcomes.csv`: the true values of earlier predictions."""

from __future__ import annotations

from pathlib import Path

import click

from pointsman.cli.context import Context, pass_context
from pointsman.cli.output import console, print_json
from pointsman.errors import BadRequest
from pointsman.logstore.outcomes import MAX_OUTCOMES, parse_outcomes, store_outcomes
from pointsman.registry.lineage import current_user
from pointsman.registry.profiles import read_training_data


@click.group()
def outcomes() -> None:
    """Outcomes: the true values of predictions, by request id or by the route's outcome key."""


@outcomes.command("add")
@click.argument("model")
@click.option(
    "-f",
    "--file",
    "path",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="CSV or Parquet: a `request_id` column (and `row`, default 0) or the route's "
    "outcome key column, the outcome column, and optionally `time` (when it was observed).",
)
@click.option("--column", default="outcome", show_default=True, help="The outcome column.")
@click.option("--json", "as_json", is_flag=True, help="Print the counts as JSON.")
@pass_context
def add(ctx: Context, model: str, path: Path, column: str, as_json: bool) -> None:
    """Store the outcomes in FILE for MODEL; sending a file again changes nothing."""
    project = ctx.project()
    project.registry.version_numbers(model)  # ModelNotFound names the models
    route = project.routes.find(model)
    outcome_key = route.policy.outcome_key if route is not None else None
    frame = read_training_data(path)
    if column not in frame.columns:
        listed = ", ".join(map(str, frame.columns))
        raise click.ClickException(
            f"{path.name} has no column {column!r} (columns: {listed}); "
            "name the outcome column with --column."
        )
    records = [{str(k): v for k, v in r.items()} for r in frame.to_dict(orient="records")]
    try:
        parsed = parse_outcomes(records, outcome_key, column) if records else []
    except BadRequest as exc:
        raise click.ClickException(f"{path.name}: {exc.message}") from None
    totals: dict[str, int] = {}
    for start in range(0, len(parsed), MAX_OUTCOMES):
        counts = store_outcomes(
            project.engine, model, parsed[start : start + MAX_OUTCOMES], current_user()
        )
        for name, n in counts.items():
            totals[name] = totals.get(name, 0) + n
    if as_json:
        print_json({"model": model, **totals})
        return
    console.print(
        f"{model}: {totals.get('stored', 0)} outcomes stored, {totals.get('updated', 0)} updated, "
        f"{totals.get('unchanged', 0)} unchanged; by request id {totals.get('matched', 0)} "
        f"matched a prediction and {totals.get('waiting', 0)} wait for theirs; "
        f"{totals.get('by_key', 0)} by {outcome_key or 'key'}."
    )


COMMANDS = [outcomes]
