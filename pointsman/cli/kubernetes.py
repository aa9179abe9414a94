"""`pointsman kubernetes render`: the runner Deployments of every routed version, as YAML."""

from __future__ import annotations

from pathlib import Path

import click

from pointsman import __version__
from pointsman.cli.context import Context, pass_context
from pointsman.cli.output import console
from pointsman.manifests import PREFIX, render, runner_targets

RENDERED = "# Rendered by `pointsman kubernetes render`"


@click.group("kubernetes")
def kubernetes() -> None:
    """Kubernetes manifests: `pointsman kubernetes render` writes the routed versions' runners."""


@kubernetes.command("render")
@click.option(
    "-o",
    "--output",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder to write: a file per version and a kustomization.yaml listing them "
    "(files of versions no longer routed are removed). Default: print the YAML.",
)
@click.option("--model", "models", multiple=True, help="Only this model (repeatable).")
@click.option(
    "--also",
    multiple=True,
    metavar="MODEL:VERSION",
    help="A version no route holds yet, to start its runners before routing it.",
)
@click.option(
    "--image",
    default=f"pointsman:{__version__}",
    show_default=True,
    help="The image of the runners (this project's Dockerfile).",
)
@pass_context
def render_command(ctx: Context, output: Path | None, models: tuple[str, ...],
                   also: tuple[str, ...], image: str) -> None:  # fmt: skip
    """Write a Deployment and a headless Service per routed version, from its runner settings.

    Replicas, CPU, memory, disk and drain time come from `pointsman runners`, so the
    manifests and the project's placement agree; the front reaches them with
    remote_runners = {"*": "pointsman-runner-{model}-{version}:7070"}.
    """
    project = ctx.project()
    for model in models:
        project.registry.version_numbers(model)  # ModelNotFound with the known names
    targets = runner_targets(project, list(models), [_version(text) for text in also])
    files = render(targets, image)
    if output is None:
        click.echo(
            "---\n".join(text for name, text in files.items() if name != "kustomization.yaml")
        )
        return
    output.mkdir(parents=True, exist_ok=True)
    for stale in output.glob(f"{PREFIX}-*.yaml"):
        if stale.name not in files and stale.read_text().startswith(RENDERED):
            stale.unlink()
    for name, text in files.items():
        (output / name).write_text(text)
    names = ", ".join(t.name for t in targets) or "none (no route)"
    console.print(f"wrote {len(targets)} runner Deployment(s) to {output}: {names}")


def _version(text: str) -> tuple[str, int]:
    model, _, number = text.rpartition(":")
    if not model or not number.isdigit():
        raise click.BadParameter(f"{text!r} is not MODEL:VERSION; write e.g. churn:3.",
                                 param_hint="--also")  # fmt: skip
    return model, int(number)


COMMANDS = [kubernetes]
