"""`pointsman audit`: who changed what, when, with the state before and after."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import click
import orjson

from pointsman.auth import read_audit
from pointsman.auth.keys import parse_span
from pointsman.cli.context import Context, pass_context
from pointsman.cli.output import print_json, table
from pointsman.errors import BadRequest


def parse_since(text: str) -> datetime:
    """`2h`, `7d` (ago) or an ISO time (UTC unless it says otherwise)."""
    try:
        return datetime.now(UTC) - parse_span(text)
    except BadRequest:
        pass
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise BadRequest(
            f"--since {text!r} is not understood; give a span like 2h or 7d, or an ISO time "
            "like 2026-05-01T12:00."
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def brief(value: object) -> str:
    text = orjson.dumps(value).decode() if value is not None else "-"
    return text if len(text) <= 60 else text[:57] + "…"


def change_of(before: object, after: object) -> str:
    """What changed, field by field (top level); the whole of each in --json."""
    if not isinstance(before, dict) or not isinstance(after, dict):
        return f"{brief(before)} → {brief(after)}" if before is not None else brief(after)
    fields = sorted(k for k in {*before, *after} if before.get(k) != after.get(k))
    return "; ".join(f"{k}: {brief(before.get(k))} → {brief(after.get(k))}" for k in fields)


@click.command()
@click.option("--since", help="From this long ago (2h, 7d) or this ISO time.")
@click.option("--action", help="Only this action or family, e.g. deploy or key.")
@click.option("--target", help="Only this target, e.g. model:churn or key:ci.")
@click.option("--limit", type=int, default=200, show_default=True, help="At most this many.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON, with before and after whole.")
@pass_context
def audit(
    ctx: Context,
    since: str | None,
    action: str | None,
    target: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """Every admin action: register, deploy, route changes, promote, rollback, keys."""
    start = parse_since(since) if since else datetime.now(UTC) - timedelta(days=3650)
    project = ctx.project()
    entries = read_audit(project.engine, start, action, target, limit)
    if as_json:
        print_json([e.to_json() for e in entries])
        return
    rows = [[e.at, e.who, e.action, e.target, change_of(e.before, e.after)] for e in entries]
    table(None, ["when", "who", "action", "target", "change"], rows)


COMMANDS = [audit]
