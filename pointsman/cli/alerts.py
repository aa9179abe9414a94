"""`pointsman alerts add | list | remove | history | test`: alert rules and what they sent."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import click

from pointsman.alerts import RuleBook, build_rule, read_history, read_states
from pointsman.alerts.dispatch import send_test
from pointsman.alerts.metrics import METRICS
from pointsman.alerts.rules import SEVERITIES, format_duration, parse_duration
from pointsman.alerts.watch import rule_configs
from pointsman.cli.context import Context, pass_context
from pointsman.cli.output import console, err_console, print_json, table
from pointsman.project import Project
from pointsman.registry.lineage import current_user


def rule_book(project: Project) -> RuleBook:
    return RuleBook(project.engine, rule_configs(project.settings))


def metric_help() -> str:
    return "Condition METRIC OP NUMBER, e.g. 'error_rate > 0.02' (metrics: " + (
        ", ".join(sorted(METRICS)) + "; `pointsman alerts metrics` explains each)."
    )


@click.group()
def alerts() -> None:
    """Alert rules: a metric over a window, a severity, and who to tell."""


@alerts.command("add")
@click.argument("name")
@click.option("--when", required=True, help=metric_help())
@click.option("--model", default="*", show_default=True, help="Model the rule watches; * = each.")
@click.option("--window", default="5m", show_default=True, help="Span the metric is read over.")
@click.option(
    "--for", "for_", default="0s", show_default=True, help="How long the condition must hold."
)
@click.option("--severity", type=click.Choice(SEVERITIES), default="warn", show_default=True)
@click.option(
    "--notify",
    multiple=True,
    help="webhook=URL (Alertmanager v4 body), slack=URL (incoming webhook) or email=ADDRESS; "
    "repeat for several.",
)
@click.option(
    "--cooldown",
    default="1h",
    show_default=True,
    help="Repeat a firing alert at most this often (0: never repeat).",
)
@click.option("--description", default="", help="What the alert means and what to do.")
@click.option("--json", "as_json", is_flag=True, help="Print the rule as JSON.")
@pass_context
def add(
    ctx: Context,
    name: str,
    when: str,
    model: str,
    window: str,
    for_: str,
    severity: str,
    notify: tuple[str, ...],
    cooldown: str,
    description: str,
    as_json: bool,
) -> None:
    """Add alert rule NAME (stored; every server picks it up at its next tick)."""
    project = ctx.project()
    user = current_user()
    rule = build_rule(
        name, when=when, model=model, window=window, for_=for_, severity=severity,
        notify=notify, cooldown=cooldown, description=description, created_by=user,
    )  # fmt: skip
    rule = rule_book(project).add(rule, user)
    if as_json:
        print_json(rule.to_json())
        return
    console.print(
        f"Added alert rule {rule.name}: {rule.condition.text} on {rule.model}.", markup=False
    )
    if not rule.channels:
        err_console.print(
            "No --notify channel: the rule is evaluated and kept in the history only."
        )


@alerts.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_context
def list_rules(ctx: Context, as_json: bool) -> None:
    """List rules (from pointsman.toml and the store) and where each stands."""
    project = ctx.project()
    rules = rule_book(project).list_rules()
    states = read_states(project.engine)
    if as_json:
        print_json(
            [
                {
                    **r.to_json(),
                    "states": [s for (n, _), s in sorted(states.items()) if n == r.name],
                }
                for r in rules
            ]
        )
        return
    rows = []
    for r in rules:
        mine = [s for (n, _), s in sorted(states.items()) if n == r.name and s["status"] != "ok"]
        status = ", ".join(f"{s['status']} on {s['model']}" for s in mine) or "ok"
        held = f" for {format_duration(r.for_s)}" if r.for_s else ""
        when = f"{r.condition.text} on {r.model}, {format_duration(r.window_s)}{held}"
        name = r.name + (" (file)" if r.source == "file" else "")
        channels = [c.label for c in r.channels] or ["history only"]
        rows.append([name, when, f"{r.severity}: {status}", channels])
    table(None, ["name", "when", "state", "notify"], rows)


@alerts.command("remove")
@click.argument("name")
@pass_context
def remove(ctx: Context, name: str) -> None:
    """Remove stored rule NAME (its history stays)."""
    project = ctx.project()
    rule = rule_book(project).remove(name, current_user())
    console.print(f"Removed alert rule {rule.name}.", markup=False)


@alerts.command("history")
@click.option("--rule", help="Only this rule.")
@click.option("--model", help="Only this model.")
@click.option("--since", help="Only the last DURATION, e.g. 1h, 7d.")
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON, with every delivery attempt.")
@pass_context
def history(
    ctx: Context, rule: str | None, model: str | None, since: str | None, limit: int, as_json: bool
) -> None:
    """Alerts sent (firing, repeat, resolved, test), newest first, and how each was delivered."""
    start = None
    if since:
        start = datetime.now(UTC) - timedelta(seconds=parse_duration(since, "--since", "history"))
    project = ctx.project()
    entries = read_history(project.engine, rule, model, start, limit)
    if as_json:
        print_json(entries)
        return
    rows = []
    for e in entries:
        last: dict[str, str] = {}
        for d in e["deliveries"]:
            last[d["channel"]] = d["outcome"]
        delivered = [f"{c.partition('=')[0]}: {o}" for c, o in last.items()]
        at = datetime.fromisoformat(e["at"])
        rows.append([at, e["rule"], e["model"], e["event"], e["severity"], e["summary"], delivered])
    table(None, ["at (UTC)", "rule", "model", "event", "severity", "summary", "delivered"], rows)


@alerts.command("test")
@click.argument("name")
@pass_context
def test(ctx: Context, name: str) -> None:
    """Send a test notification of rule NAME to each of its channels now."""
    project = ctx.project()
    rule = rule_book(project).get(name)
    if not rule.channels:
        err_console.print(f"Alert rule {name} has no channel to test; add one with --notify.")
        raise SystemExit(1)
    outcomes = send_test(project.engine, project.settings, rule)
    for label, outcome in outcomes:
        mark = "sent" if outcome.is_sent else "FAILED"
        console.print(f"{mark:6}  {label}  {outcome.detail}", markup=False)
    if not all(o.is_sent for _, o in outcomes):
        raise SystemExit(1)


@alerts.command("metrics")
@pass_context
def metrics(ctx: Context) -> None:
    """The metrics a rule's --when can name."""
    rows = [
        [m.name, m.unit, m.scope, m.help] for m in sorted(METRICS.values(), key=lambda m: m.name)
    ]
    table(None, ["metric", "unit", "per", "meaning"], rows)


COMMANDS = [alerts]
