"""`pointsman init`: create a project; `pointsman migrate`: bring its store up to date."""

from __future__ import annotations

from pathlib import Path

import click

from pointsman.auth import KeyBook
from pointsman.cli.context import Context, pass_context
from pointsman.cli.output import console
from pointsman.project import Project, init_project, open_project
from pointsman.registry.lineage import current_user
from pointsman.store.engine import stored_revisions
from pointsman.store.revision import head_revision


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
    target = folder or ctx.folder or Path(".")
    path, created = init_project(target, database_url)
    settings = Context(path, ctx.debug).settings(database_url=database_url or None)
    with open_project(settings) as project:  # creates the schema now, so errors show at init
        url = project.engine.url.render_as_string(hide_password=True)
        admin_key = first_admin_key(project)
    state = "Created" if created else "Already a project:"
    console.print(f"{state} [bold]{path}[/bold]")
    console.print(f"  store      {url}")
    if settings.artifact_store:
        console.print(f"  artifacts  {settings.artifact_store} (cache {settings.artifact_path()})")
    else:
        console.print(f"  artifacts  {settings.artifact_path()}")
    console.print(f"  settings   {path / 'pointsman.toml'}")
    if admin_key:
        console.print("  admin key  [bold]" + admin_key + "[/bold]")
        console.print(
            "             shown once: store it now; callers send `Authorization: Bearer <key>`."
            " More keys: pointsman keys create NAME --scope predict:MODEL",
            markup=False,
        )
    if not settings.auth:
        console.print("  [red]auth is off (auth = false): anyone reaching the server may call it")
    console.print(f"Next: pointsman --project {path} register NAME MODEL_FILE --training-data CSV")


def first_admin_key(project: Project) -> str | None:
    """Create the project's first key, `admin`, unless it has keys; the key, or None."""
    book = KeyBook(project.engine)
    if book.list_keys():
        return None
    key, _record = book.create("admin", ["admin"], current_user())
    return key


@click.command()
@pass_context
def migrate(ctx: Context) -> None:
    """Apply the store's pending migrations and say which revision it is at.

    Every command does this first; on Kubernetes a Job runs it before the fronts roll, so
    that no front starts on a store it has to migrate.
    """
    with open_project(ctx.settings()) as project:
        url = project.engine.url.render_as_string(hide_password=True)
        with project.engine.connect() as connection:
            revisions = ", ".join(sorted(stored_revisions(connection)))
    console.print(f"store {url} is at revision {revisions} (head {head_revision()})")


COMMANDS = [init, migrate]
