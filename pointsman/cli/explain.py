"""`pointsman explain REQUEST_ID`: the record, its version's lineage, and a re-run of it."""

from __future__ import annotations

from typing import Any

import click
import orjson
from rich.markup import escape

from pointsman.cli.context import Context, pass_context
from pointsman.cli.output import console, print_json, table
from pointsman.cli.running import runner_session
from pointsman.errors import BadLogQuery, CannotRerun
from pointsman.logstore import LogQuery, find_predictions
from pointsman.logstore.rerun import Rerunner

ROLE_ORDER = {"primary": 0, "pinned": 0, "fallback": 1, "shadow": 2}


@click.command()
@click.argument("request_id")
@click.option("--no-rerun", is_flag=True, help="Show the record and lineage only.")
@click.option("--json", "as_json", is_flag=True, help="JSON for scripts.")
@pass_context
def explain(ctx: Context, request_id: str, no_rerun: bool, as_json: bool) -> None:
    """What a request got, from which exact version, and whether that version still says so."""
    project = ctx.project()
    page = find_predictions(project.engine, LogQuery(request_id=request_id), 100)
    if not page.records:
        raise BadLogQuery(
            "request id",
            request_id,
            "no prediction record has it (records reach the store a second or two after "
            "the answer; check the id with `pointsman log MODEL`)",
        )
    records = sorted(page.records, key=lambda r: ROLE_ORDER.get(r["role"], 9))
    rerunner = Rerunner(runner_session(project))
    explained = [_explain(project.registry, rerunner, r, not no_rerun) for r in records]
    if as_json:
        print_json(explained)
        return
    for item in explained:
        _show(item)


def _explain(
    registry: Any, rerunner: Rerunner, record: dict[str, Any], rerun: bool
) -> dict[str, Any]:
    version = registry.get_version(record["model"], record["version"])
    lineage = version.lineage
    item: dict[str, Any] = {
        "record": record,
        "version": {
            "model": version.model,
            "version": version.number,
            "sha256": version.sha256,
            "format": version.format,
            "training_data": lineage.get("training_data"),
            "packages": lineage.get("packages"),
            "python": lineage.get("python"),
            "git": lineage.get("git"),
            "created_at": version.created_at.isoformat(),
            "created_by": version.created_by,
        },
    }
    if rerun:
        item["rerun"] = _rerun(rerunner, version, record)
    return item


def _rerun(rerunner: Rerunner, version: Any, record: dict[str, Any]) -> dict[str, Any]:
    try:
        result = rerunner.run(version, record)
    except CannotRerun as exc:
        return {"done": False, "reason": exc.message}
    changed = result.changed_rows()
    deltas = result.probability_deltas()
    same = not changed and (not deltas or max(deltas) < 1e-9) and not record["error_code"]
    return {
        "done": True,
        "same": same,
        "predictions": result.predictions,
        "logged_predictions": result.logged_predictions,
        "changed_rows": changed,
        "max_probability_delta": max(deltas) if deltas else None,
        "model_ms": result.model_ms,
    }


def _show(item: dict[str, Any]) -> None:
    r, v = item["record"], item["version"]
    console.print(
        f"[bold]{escape(r['request_id'])}[/bold] {r['role']} · {escape(r['model'])} version "
        f"{r['version']} · route revision {r['route_revision'] or '-'} · {r['time']}"
    )
    rows: list[list[Any]] = [
        ["rows", r["n_rows"]],
        ["latency", f"{r['latency_ms']:.2f} ms (model {r['model_ms'] or 0:.2f} ms)"],
        ["runtime", r.get("runtime")],
        ["client", r["client"]],
        ["inputs", _short(r["inputs"])],
        ["outputs", _short(r["outputs"])],
        ["findings", _short(r["findings"]) if r["findings"] else None],
        ["error", f"{r['error_code']}: {r['error']}" if r["error_code"] else None],
        ["artifact sha256", v["sha256"]],
        ["training data", _short(v["training_data"])],
        ["packages", _short(v["packages"])],
    ]
    table(None, ["", ""], rows)
    rerun = item.get("rerun")
    if rerun is None:
        return
    if not rerun["done"]:
        console.print(f"[yellow]not re-run:[/yellow] {escape(rerun['reason'])}")
    elif rerun["same"]:
        console.print(
            f"[green]re-run on version {v['version']} (sha256 {v['sha256'][:12]}…): "
            "same output[/green]"
        )
    else:
        delta = rerun["max_probability_delta"]
        console.print(
            f"[red]re-run on version {v['version']} differs:[/red] rows changed "
            f"{rerun['changed_rows'] or 'none'}; now {_short(rerun['predictions'])}, logged "
            f"{_short(rerun['logged_predictions'])}"
            + (f"; largest probability change {delta:.3g}" if delta is not None else "")
        )


def _short(value: Any, limit: int = 200) -> str:
    text = orjson.dumps(value).decode() if not isinstance(value, str) else value
    return text if len(text) <= limit else text[: limit - 1] + "…"


COMMANDS = [explain]
