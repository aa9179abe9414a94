"""`pointsman bench MODEL [VERSION...]`: versions timed side by side, with a CI exit code."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
from rich.markup import escape

from pointsman.cli.context import Context, pass_context
from pointsman.cli.diff import json_option, write_json
from pointsman.cli.output import console, table
from pointsman.cli.running import runner_session
from pointsman.gates.bench import BenchLimits, BenchPlan
from pointsman.gates.runs import run_bench_check
from pointsman.registry.profiles import read_training_data


def int_list(
    ctx: click.Context, param: click.Parameter, value: str | None
) -> tuple[int, ...] | None:
    """`1,64` → (1, 64); each a whole number >= 1."""
    if value is None:
        return None
    try:
        numbers = tuple(int(v) for v in value.split(",") if v.strip())
    except ValueError:
        raise click.BadParameter(
            f"give whole numbers separated by commas, e.g. 1,64; got {value!r}"
        ) from None
    if not numbers or min(numbers) < 1:
        raise click.BadParameter(f"give whole numbers >= 1, e.g. 1,64; got {value!r}")
    return numbers


@click.command("bench")
@click.argument("model")
@click.argument("versions", nargs=-1)
@click.option("--rows", callback=int_list, help="Rows per request, e.g. 1,64 (default: [gate]).")
@click.option("--concurrency", callback=int_list, help="Concurrent callers, e.g. 1,8.")
@click.option("--requests", type=click.IntRange(4), help="Requests per version and cell.")
@click.option(
    "--data",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Rows to send (CSV or Parquet; default: the version's input example).",
)
@click.option(
    "--max-p99-ratio",
    type=click.FloatRange(min=0, min_open=True),
    help="Fail when a version's p99 passes this many times the version in force's, in any "
    "cell (plus --slack-ms).",
)
@click.option(
    "--slack-ms",
    type=click.FloatRange(0),
    default=1.0,
    show_default=True,
    help="Latency below which differences never fail (jitter of tiny models).",
)
@json_option
@pass_context
def bench(
    ctx: Context,
    model: str,
    versions: tuple[str, ...],
    rows: tuple[int, ...] | None,
    concurrency: tuple[int, ...] | None,
    requests: int | None,
    data: Path | None,
    max_p99_ratio: float | None,
    slack_ms: float,
    json_out: str | None,
) -> None:
    """Time VERSIONs of MODEL against the version in force, side by side in one run.

    Per version and cell (rows per request x concurrent callers): end-to-end latency
    percentiles, throughput, the runner's CPU time per request; per version its peak memory.
    Exits 1 when --max-p99-ratio is exceeded.
    """
    project = ctx.project()
    defaults = project.settings.gate
    plan = BenchPlan(
        rows=rows or tuple(defaults.bench_rows),
        concurrency=concurrency or tuple(defaults.bench_concurrency),
        requests=requests or defaults.bench_requests,
    )
    table_in = read_training_data(data) if data else None
    session = runner_session(project)
    report = run_bench_check(
        project, session, model, list(versions), table_in, plan,
        BenchLimits(max_p99_ratio, slack_ms),
    )  # fmt: skip
    if not write_json(report, json_out):
        show(report)
    if not report["passed"]:
        sys.exit(1)


def show(report: dict[str, Any]) -> None:
    rows: list[list[Any]] = []
    for name, cells in report["versions"].items():
        for cell, f in cells.items():
            if isinstance(f, dict):
                rows.append([name, cell, f["p50_ms"], f["p95_ms"], f["p99_ms"], f["rows_per_s"],
                             f["model_cpu_ms"]])  # fmt: skip
    rows.sort(key=lambda r: (r[1], r[0]))
    table(
        f"{report['model']}: side by side against {report['baseline']} (in force)",
        ["version", "cell", "p50 ms", "p95 ms", "p99 ms", "rows/s", "cpu ms/req"],
        rows,
    )
    memory = [
        [name, (cells.get("peak_memory_bytes") or 0) / 2**20]
        for name, cells in report["versions"].items()
    ]
    table("peak memory of each runner", ["version", "MiB"], memory)
    if report["failures"]:
        console.print(f"[bold red]FAIL[/bold red]: {escape('; '.join(report['failures']))}")
    else:
        console.print("[bold green]PASS[/bold green]")


COMMANDS = [bench]
