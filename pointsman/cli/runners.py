"""`pointsman runners`: how many runner processes each model's versions get, and their limits."""

from __future__ import annotations

from typing import Any

import click

from pointsman.cli.context import Context, pass_context
from pointsman.cli.output import console, print_json, table
from pointsman.project import Project
from pointsman.registry.lineage import current_user
from pointsman.runners.spec import (
    RunnerSpec,
    format_bytes,
    parse_bytes,
    parse_cpu,
    parse_memory,
    parse_seconds,
)


def changes_of(options: dict[str, Any]) -> dict[str, Any]:
    """The options given on the command line as spec changes (0 clears a cpu/memory limit)."""
    out: dict[str, Any] = {}
    for name in ("replicas", "queue", "max_batch_rows", "max_wait_ms", "runtime"):
        if options.get(name) is not None:
            out[name] = options[name]
    if options.get("cpu") is not None:
        out["cpu"] = parse_cpu(options["cpu"], "--cpu")
    if options.get("memory") is not None:
        out["memory_bytes"] = parse_memory(options["memory"], "--memory")
    if options.get("disk") is not None:
        out["disk_bytes"] = parse_bytes(options["disk"], "--disk")
    if options.get("timeout") is not None:
        out["timeout_s"] = parse_seconds(options["timeout"], "--timeout")
    return out


def spec_row(spec: RunnerSpec) -> list[Any]:
    return [
        spec.replicas,
        "any" if spec.cpu is None else f"{spec.cpu:g}",
        "none" if spec.memory_bytes is None else format_bytes(spec.memory_bytes),
        f"{spec.timeout_s:g} s",
        spec.queue,
        format_bytes(spec.disk_bytes),
        spec.max_batch_rows,
        spec.runtime,
    ]


COLUMNS = ["replicas", "cpu", "memory", "timeout", "queue", "disk", "batch", "runtime"]


def overview(project: Project, model: str | None) -> list[dict[str, Any]]:
    """The spec in force for each model (and each of its routed or specially set versions)."""
    if model:
        project.registry.version_numbers(model)  # ModelNotFound with the known names
    names = [model] if model else project.registry.model_names()
    out = []
    for name in names:
        route = project.routes.find(name)
        for number, spec in project.runners.overview(name, route.versions if route else []):
            out.append({"model": name, "version": number, "spec": spec})
    return out


@click.command("runners")
@click.argument("model", required=False)
@click.option("--version", type=int, help="Change one version only (default: the whole model).")
@click.option("--replicas", type=int, help="Runner processes per version, e.g. 2.")
@click.option("--cpu", help="CPUs per runner, e.g. 0.5 or 2; `none` for no limit.")
@click.option("--memory", help="Memory per runner, e.g. 1GiB or 512MiB; `none` for no limit.")
@click.option("--timeout", help="Hard time limit per call, e.g. 2s or 500ms; past it the runner "
              "is killed and replaced.")  # fmt: skip
@click.option("--queue", type=int, help="Requests waiting per runner before a 503 (Retry-After).")
@click.option("--disk", help="Largest file a runner may write in its scratch folder, e.g. 256MiB.")
@click.option("--max-batch-rows", type=int, help="Rows merged into one model call.")
@click.option("--max-wait-ms", type=float, help="Extra wait for a batch to fill (0: never wait).")
@click.option("--runtime", type=click.Choice(["auto", "original", "compiled"]),
              help="auto: the compiled (ONNX) artifact where it agreed with the original, "
              "else the original; compiled is refused where it did not agree.")  # fmt: skip
@click.option("--reason", default="", help="Why, kept in the audit log.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_context
def runners(ctx: Context, /, model: str | None, version: int | None, reason: str, as_json: bool,
            **options: Any) -> None:  # fmt: skip
    """Show or change the runner processes of MODEL: replicas, CPU, memory, time per call.

    Without options it shows what is in force (pointsman.toml, then changes made here or
    through the admin API). Running servers apply a change within a second, replacing the
    version's runners one by one.
    """
    project = ctx.project()
    changes = changes_of(options)
    if changes:
        if model is None:
            raise click.UsageError(
                "Name the MODEL to change, e.g. `pointsman runners churn --replicas 2`."
            )
        project.registry.version_numbers(model)  # ModelNotFound with the known names
        if version is not None:
            project.registry.get_version(model, version)
        spec = project.runners.change(model, version, changes, current_user(), reason)
        what = f"{model}" + (f" version {version}" if version else "")
        if as_json:
            print_json({"model": model, "version": version, "spec": spec.to_json()})
            return
        console.print(f"[bold]{what}[/bold] runners: {spec.describe()}. "
                      "Running servers apply it within a second.")  # fmt: skip
        return
    rows = overview(project, model)
    if as_json:
        print_json([{**r, "spec": r["spec"].to_json()} for r in rows])
        return
    table(
        "Runners" + (f" of {model}" if model else ""),
        ["model", "version", *COLUMNS],
        [[r["model"], r["version"] or "(all)", *spec_row(r["spec"])] for r in rows],
    )
    console.print(f"Limits are enforced by {project.enforcement.describe()}.")


COMMANDS = [runners]
