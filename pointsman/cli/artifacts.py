"""`pointsman artifacts verify`: every stored version's artifact, hashed where it is stored."""

from __future__ import annotations

import sys
from dataclasses import dataclass

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from pointsman.cli.context import Context, pass_context
from pointsman.cli.output import console, err_console, print_json
from pointsman.errors import PointsmanError
from pointsman.registry import ArtifactStore, VersionRecord

PROGRESS_FROM = 5  # versions: fewer are checked without a progress bar


@dataclass(frozen=True)
class Problem:
    """One version whose stored artifact is missing, altered or cannot be read."""

    model: str
    version: int
    code: str
    error: str

    def to_json(self) -> dict[str, object]:
        return {"model": self.model, "version": self.version, "code": self.code,
                "error": self.error}  # fmt: skip


@click.group()
def artifacts() -> None:
    """Stored artifacts: check them against the sha256 each version recorded."""


@artifacts.command()
@click.argument("model", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@pass_context
def verify(ctx: Context, model: str | None, as_json: bool) -> None:
    """Hash every stored version (of MODEL, or of every model) where it is stored: the
    artifact folder, or the S3 bucket itself (not the local cache). Exit 1 when one is
    missing or altered."""
    project = ctx.project()
    registry = project.registry
    names = [model] if model else registry.model_names()
    versions = [v for name in names for v in registry.list_versions(name)]
    store = registry.artifacts
    problems, checked_bytes = check_all(store, versions, show=not as_json)
    if as_json:
        print_json({
            "store": store.describe(),
            "versions": len(versions),
            "bytes": checked_bytes,
            "problems": [p.to_json() for p in problems],
        })  # fmt: skip
    else:
        for p in problems:
            err_console.print(
                f"[red]{p.model} version {p.version}:[/red] {p.error}", soft_wrap=True
            )
        verdict = (
            f"[red]FAILED[/red], {len(problems)} missing or altered"
            if problems
            else "[green]all match[/green]"
        )
        console.print(
            f"Checked {len(versions)} version(s), {_size(checked_bytes)}, in "
            f"{store.describe()}: {verdict}",
            soft_wrap=True,
        )
    if problems:
        sys.exit(1)


def check_all(
    store: ArtifactStore, versions: list[VersionRecord], show: bool
) -> tuple[list[Problem], int]:
    """Each version's stored artifact hashed; the problems found and the bytes read."""
    problems: list[Problem] = []
    total = 0
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("versions"),
        TextColumn("{task.fields[read]}"),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
        disable=not show or len(versions) < PROGRESS_FROM,
    ) as progress:
        task = progress.add_task("verifying", total=len(versions), read="")
        for version in versions:
            progress.update(task, description=f"{version.model} v{version.number}")

            def read(n: int) -> None:
                nonlocal total
                total += n
                progress.update(task, read=f"{total / 2**20:.1f} MiB read")

            try:
                store.check(version.artifact, version.sha256, read)
            except PointsmanError as exc:
                problems.append(Problem(version.model, version.number, exc.code, exc.message))
            progress.advance(task)
    return problems, total


def _size(n: int) -> str:
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"


COMMANDS = [artifacts]
