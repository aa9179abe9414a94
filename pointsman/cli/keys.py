"""`pointsman keys create | list | revoke | rotate`: API keys, shown once, stored hashed."""

from __future__ import annotations

import click

from pointsman.auth import KeyBook, KeyRecord
from pointsman.cli.context import Context, pass_context
from pointsman.cli.output import console, err_console, print_json, table
from pointsman.registry.lineage import current_user


def show_new_key(key: str, record: KeyRecord, as_json: bool) -> None:
    """Print a new key once; it cannot be shown again (only its hash is stored)."""
    if as_json:
        print_json({"key": key, **record.to_json()})
        return
    scopes = ", ".join(record.scopes)
    limits = f", rate {record.rate}" if record.rate else ""
    until = f", expires {record.expires_at:%Y-%m-%d %H:%M} UTC" if record.expires_at else ""
    err_console.print(f"API key [bold]{record.name}[/bold] ({scopes}{limits}{until}):")
    print(key)  # alone on stdout, so that `$(pointsman keys create …)` captures just the key
    err_console.print(
        "Shown once: store it now. Callers send it as `Authorization: Bearer <key>`.",
        markup=False,
    )


@click.group()
def keys() -> None:
    """API keys: who may call which model, and how often."""


@keys.command("create")
@click.argument("name")
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    required=True,
    help="predict:MODEL, read:MODEL, register:MODEL, outcome:MODEL, deploy:MODEL (MODEL may be *) "
    "or admin; "
    "repeat for several.",
)
@click.option("--rate", help="Most requests, e.g. 100/s, 6000/min, 10/h (default: no limit).")
@click.option("--expires", help="Lifetime, e.g. 90d, 12h, 2w (default: never).")
@click.option("--json", "as_json", is_flag=True, help="Print the key and its record as JSON.")
@pass_context
def create(
    ctx: Context,
    name: str,
    scopes: tuple[str, ...],
    rate: str | None,
    expires: str | None,
    as_json: bool,
) -> None:
    """Create key NAME (the client's name in every record) and print it once."""
    project = ctx.project()
    items = [s.strip() for v in scopes for s in v.split(",") if s.strip()]
    key, record = KeyBook(project.engine).create(
        name, items, current_user(), rate=rate, expires=expires
    )
    show_new_key(key, record, as_json)


@keys.command("list")
@click.option("--all", "show_all", is_flag=True, help="Include revoked keys.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_context
def list_keys(ctx: Context, show_all: bool, as_json: bool) -> None:
    """List keys: name, prefix, scopes, rate, expiry and state (never the key)."""
    project = ctx.project()
    records = KeyBook(project.engine).list_keys(include_revoked=show_all)
    if as_json:
        print_json([r.to_json() for r in records])
        return
    rows = [
        [r.name, r.prefix + "…", r.state(), r.rate, r.expires_at, r.created_by, list(r.scopes)]
        for r in records
    ]
    table(None, ["name", "prefix", "state", "rate", "expires", "created by", "scopes"], rows)


@keys.command("revoke")
@click.argument("name")
@pass_context
def revoke(ctx: Context, name: str) -> None:
    """Revoke key NAME: every server refuses it within a second."""
    project = ctx.project()
    record = KeyBook(project.engine).revoke(name, current_user())
    console.print(f"Revoked key {record.name} ({record.prefix}…).", markup=False)


@keys.command("rotate")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print the key and its record as JSON.")
@pass_context
def rotate(ctx: Context, name: str, as_json: bool) -> None:
    """Give key NAME a new secret (same scopes, rate, expiry); the old one stops working."""
    project = ctx.project()
    key, record = KeyBook(project.engine).rotate(name, current_user())
    show_new_key(key, record, as_json)


COMMANDS = [keys]
