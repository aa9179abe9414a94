"""`pointsman init`: create a project."""

from __future__ import annotations

from pathlib import Path

import click

from pointsman.cli.context import Context, console, pass_context
from pointsman.project import init_project, open_project


@click.command()
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path), required=False)
@click.option(
    "--database-url",
    envvar="POINTSMAN_DATABASE_URL",
    default="",
    help="Store URL (default: SQLite in the project). "
    "PostgreSQL: postgresql+psycopg://user@host:5432/db.",
)
@pass_context
def init(ctx: Context, folder: Path | None, database_url: str) -> None:
    """Create a project in FOLDER (default: --project or the current folder)."""
    target = folder or ctx.project or Path(".")
    path, created = init_project(target, database_url)
    settings = Context(path, ctx.debug).settings(database_url=database_url or None)
    project = open_project(settings)  # creates the schema now, so errors show at init
    url = project.engine.url.render_as_string(hide_password=True)
    project.close()
    state = "Created" if created else "Already a project:"
    console.print(f"{state} [bold]{path}[/bold]")
    console.print(f"  store      {url}")
    console.print(f"  artifacts  {settings.artifact_path()}")
    console.print(f"  settings   {path / 'pointsman.toml'}")
    console.print(f"Next: pointsman --project {path} register NAME MODEL_FILE --training-data CSV")


COMMANDS = [init]
