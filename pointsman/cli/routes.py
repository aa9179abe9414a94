"""`pointsman deploy`: point a model's route at a version."""

from __future__ import annotations

import click

from pointsman.cli.context import Context, console, pass_context
from pointsman.cli.output import print_json
from pointsman.project import open_project
from pointsman.registry.lineage import current_user


@click.command()
@click.argument("model")
@click.argument("version")
@click.option("--reason", default="", help="Why, kept in the route history.")
@click.option("--json", "as_json", is_flag=True, help="Print the new route revision as JSON.")
@pass_context
def deploy(ctx: Context, model: str, version: str, reason: str, as_json: bool) -> None:
    """Make VERSION the version that answers MODEL (a new route revision)."""
    project = open_project(ctx.settings())
    try:
        route = project.routes.deploy(model, version, current_user(), reason)
    finally:
        project.close()
    if as_json:
        print_json(route.to_json())
        return
    console.print(
        f"[bold]{model}[/bold] now answers with version [bold]{route.primary}[/bold] "
        f"(route revision {route.revision}). Running servers switch within a second."
    )


COMMANDS = [deploy]
