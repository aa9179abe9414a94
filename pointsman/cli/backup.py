"""`pointsman backup OUT` and `pointsman restore IN`: the store and every artifact, verified."""

from __future__ import annotations

import sys
from pathlib import Path

import click
import sqlalchemy as sa

from pointsman.cli.artifacts import check_all
from pointsman.cli.context import Context, pass_context
from pointsman.cli.output import console, err_console, print_json
from pointsman.project import open_project
from pointsman.registry import backup as backups
from pointsman.registry.stores import build_artifact_store
from pointsman.store.engine import connect


@click.command()
@click.argument("out", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the manifest as JSON.")
@pass_context
def backup(ctx: Context, out: Path, as_json: bool) -> None:
    """Back up the store and every version's artifacts into the new folder OUT, while
    servers keep serving (SQLite: its online backup; PostgreSQL: pg_dump)."""
    project = ctx.project()
    registry = project.registry
    versions = [v for name in registry.model_names() for v in registry.list_versions(name)]
    manifest = backups.backup(project.engine, registry.artifacts, versions, out)
    if as_json:
        print_json(manifest)
        return
    size = sum(f["bytes"] for f in manifest["files"])
    console.print(
        f"Backed up the {manifest['store']} store and {len(manifest['files'])} stored file(s) "
        f"of {len(versions)} version(s) ({size / 2**20:.1f} MiB) to {out}; each file and its "
        f"sha256 are listed in {out / backups.MANIFEST}.",
        soft_wrap=True,
    )


@click.command()
@click.argument("source", metavar="IN", type=click.Path(path_type=Path, exists=True))
@click.option("--force", is_flag=True, help="Overwrite a store that already holds models.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@pass_context
def restore(ctx: Context, source: Path, force: bool, as_json: bool) -> None:
    """Restore a backup made by `pointsman backup` into this project (servers stopped),
    then verify every artifact against its sha256. Exit 1 if one does not match."""
    settings = ctx.settings()
    manifest = backups.read_manifest(source)  # every file checked before anything changes
    url = sa.engine.make_url(settings.resolved_database_url())
    if not force:
        engine = connect(str(url.render_as_string(hide_password=False)))
        try:
            backups.check_empty(engine)
        finally:
            engine.dispose()
    backups.restore_database(manifest, source, url)
    restored = backups.restore_files(manifest, source, build_artifact_store(settings))
    project = click.get_current_context().with_resource(open_project(settings))  # migrates
    registry = project.registry
    versions = [v for name in registry.model_names() for v in registry.list_versions(name)]
    problems, _ = check_all(registry.artifacts, versions, show=not as_json)
    if as_json:
        print_json({
            "restored_from": str(source),
            "created_at": manifest["created_at"],
            "store": manifest["store"],
            "versions": len(versions),
            "files_copied": restored,
            "problems": [p.to_json() for p in problems],
        })  # fmt: skip
    else:
        for p in problems:
            err_console.print(f"[red]{p.model} version {p.version}:[/red] {p.error}")
        verdict = "[red]FAILED[/red]" if problems else "[green]all artifacts match[/green]"
        console.print(
            f"Restored the {manifest['store']} store of {manifest['created_at']} and "
            f"{restored} file(s); verified {len(versions)} version(s): {verdict}",
            soft_wrap=True,
        )
    if problems:
        sys.exit(1)


COMMANDS = [backup, restore]
