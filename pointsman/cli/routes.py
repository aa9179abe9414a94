"""`pointsman deploy | route | promote | rollback`: a model's traffic policy."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import click
from rich.markup import escape
from rich.table import Table

from pointsman.cli.context import Context, pass_context
from pointsman.cli.output import cell, console, print_json, table
from pointsman.registry.lineage import current_user
from pointsman.routing import Arm, Policy, Route, RouteChange, Shadow, history_json
from pointsman.routing.agreement import Agreement
from pointsman.routing.changes import arms_text, shadow_text
from pointsman.validation.policy import ValidationPolicy


# -- option parsing ---------------------------------------------------------------------
def items_of(values: tuple[str, ...]) -> list[str]:
    """Option values split at commas: `--shadow 2,3 --shadow 4` → [2, 3, 4] as text."""
    return [item.strip() for value in values for item in value.split(",") if item.strip()]


def number_of(text: str, kind: type[int] | type[float], what: str) -> Any:
    """`text` as `kind`, or a BadParameter naming `what`."""
    try:
        return kind(text)
    except ValueError:
        number = "a whole number" if kind is int else "a number"
        raise click.BadParameter(f"{what} must be {number}, got {text!r}") from None


def parse_arms(
    ctx: click.Context, param: click.Parameter, values: tuple[str, ...]
) -> tuple[Arm, ...] | None:
    """`3=90,4=10` (or repeated) → arms; a lone `3` means 3=100."""
    if not values:
        return None
    arms = []
    for item in items_of(values):
        version, sep, weight = item.partition("=")
        arms.append(
            Arm(
                number_of(version, int, f"version in {item!r}"),
                number_of(weight, int, f"weight in {item!r}") if sep else 100,
            )
        )
    return tuple(arms)


def parse_shadows(
    ctx: click.Context, param: click.Parameter, values: tuple[str, ...]
) -> tuple[Shadow, ...] | None:
    """`5` or `5@0.25` (repeated or comma-separated) → shadows."""
    if not values:
        return None
    shadows = []
    for item in items_of(values):
        version, sep, sample = item.partition("@")
        shadows.append(
            Shadow(
                number_of(version, int, f"version in {item!r}"),
                number_of(sample, float, f"share in {item!r}") if sep else 1.0,
            )
        )
    return tuple(shadows)


# -- shared -----------------------------------------------------------------------------
allow_signature_change = click.option(
    "--allow-signature-change",
    is_flag=True,
    help="Bring in a version whose inputs differ from the primary's (missing, new, retyped "
    "or reordered), which would refuse callers of the primary; recorded in the audit log.",
)


def print_change(model: str, change: RouteChange, as_json: bool) -> None:
    """The new revision and what changed, as a sentence or JSON (with `changes`)."""
    if as_json:
        print_json(change.to_json())
        return
    console.print(
        f"[bold]{model}[/bold] route revision [bold]{change.after.revision}[/bold]: "
        f"{escape('; '.join(change.changes))}. "
        "Running servers switch within a second."
    )


@click.command()
@click.argument("model")
@click.argument("version")
@click.option("--reason", default="", help="Why, kept in the route history.")
@click.option("--json", "as_json", is_flag=True, help="Print the new route revision as JSON.")
@allow_signature_change
@pass_context
def deploy(
    ctx: Context, model: str, version: str, reason: str, as_json: bool, allow_signature_change: bool
) -> None:
    """Make VERSION the version that answers MODEL (a new route revision)."""
    project = ctx.project()
    route = project.routes.deploy(
        model, version, current_user(), reason, allow_signature_change=allow_signature_change
    ).after
    if as_json:
        print_json(route.to_json())
        return
    console.print(
        f"[bold]{model}[/bold] now answers with version [bold]{route.primary}[/bold] "
        f"(route revision {route.revision}). Running servers switch within a second."
    )


# -- route ------------------------------------------------------------------------------
FIELDS = (
    "arms", "key", "shadows", "fallback", "timeout_ms", "breaker_failures", "breaker_pause_s",
    "outcome_key",
)  # fmt: skip
CLEARS = {
    "key": "no_key",
    "outcome_key": "no_outcome_key",
    "shadows": "no_shadow",
    "fallback": "no_fallback",
    "timeout_ms": "no_timeout",
}


VALIDATION_MODES = ("reject", "flag", "allow", "default")


def parse_feature_modes(
    ctx: click.Context, param: click.Parameter, values: tuple[str, ...]
) -> tuple[tuple[str, str], ...] | None:
    """`plan=allow,age=reject` (repeatable) → ((plan, allow), (age, reject))."""
    out = []
    for item in items_of(values):
        name, sep, mode = item.partition("=")
        if not sep or not name.strip() or mode.strip() not in VALIDATION_MODES:
            raise click.BadParameter(
                f"{item!r} is not FEATURE=MODE with MODE one of {', '.join(VALIDATION_MODES)}; "
                "e.g. --validation-feature plan=allow"
            )
        out.append((name.strip(), mode.strip()))
    return tuple(out) or None


def changed_validation(base: ValidationPolicy, options: dict[str, Any]) -> ValidationPolicy:
    """`base` with the validation options given; `default` goes back to the rule defaults."""
    mode, coerce = options.pop("validation"), options.pop("coerce")
    features, tolerance = options.pop("validation_features"), options.pop("validation_tolerance")
    if options.pop("no_validation_features"):
        if features:
            raise click.UsageError(
                "--no-validation-features contradicts --validation-feature; give one."
            )
        base = replace(base, features=())
    overrides = dict(base.features)
    for name, chosen in features or ():
        if chosen == "default":
            overrides.pop(name, None)
        else:
            overrides[name] = chosen
    return ValidationPolicy(
        mode=base.mode if mode is None else (None if mode == "default" else mode),
        coerce=base.coerce if coerce is None else (None if coerce == "default" else coerce),
        features=tuple(sorted(overrides.items())),
        tolerance=base.tolerance if tolerance is None else tolerance,
    )


def changed_policy(base: Policy, options: dict[str, Any]) -> Policy:
    """`base` with the options the user gave; the ones not given keep their values."""
    options = dict(options)
    validation = changed_validation(base.validation, options)
    updates: dict[str, Any] = {"validation": validation}
    tolerances = {k: options.pop(f"agree_{k}") for k in ("abs", "rel", "prob")}
    if any(v is not None for v in tolerances.values()):
        a = base.agreement
        updates["agreement"] = Agreement(
            abs_tol=a.abs_tol if tolerances["abs"] is None else tolerances["abs"],
            rel_tol=a.rel_tol if tolerances["rel"] is None else tolerances["rel"],
            prob_tol=a.prob_tol if tolerances["prob"] is None else tolerances["prob"],
        )
    for name in FIELDS:
        if options[name] is not None:
            updates[name] = options[name]
    for name, clear in CLEARS.items():
        if options[clear]:
            if name in updates:
                flag = "--" + clear.replace("_", "-")
                raise click.UsageError(f"{flag} contradicts the value given for it; give one.")
            updates[name] = () if name == "shadows" else None
    return replace(base, **updates)


def _is_change(options: dict[str, Any]) -> bool:
    # `is`, not `in`: --timeout-ms 0 is a change (to refuse), and 0 == False.
    return any(v is not None and v is not False for v in options.values())


@click.command("route")
@click.argument("model")
@click.option(
    "--ab",
    "arms",
    multiple=True,
    callback=parse_arms,
    metavar="V=W,...",
    help="Primary versions and their weights in percent, summing to 100, e.g. 3=90,4=10.",
)
@click.option("--key", help="Payload field that keeps a caller on one arm, e.g. customer_id.")
@click.option("--no-key", is_flag=True, help="Assign arms at random (X-Routing-Key still works).")
@click.option(
    "--shadow",
    "shadows",
    multiple=True,
    callback=parse_shadows,
    metavar="V[@SHARE]",
    help="Version that gets a copy of the traffic after the answer; 5@0.25 copies a quarter. "
    "Repeat or separate with commas; replaces the current shadows.",
)
@click.option("--no-shadow", is_flag=True, help="Remove every shadow.")
@click.option(
    "--fallback",
    type=int,
    metavar="VERSION",
    help="Version that answers when the chosen arm fails, times out or is not loaded.",
)
@click.option("--no-fallback", is_flag=True, help="Remove the fallback.")
@click.option("--timeout-ms", type=int, help="Time an arm has to answer before the fallback does.")
@click.option("--no-timeout", is_flag=True, help="Remove the timeout.")
@click.option("--breaker-failures", type=int, help="Consecutive failures that stop an arm.")
@click.option("--breaker-pause-s", type=float, help="Seconds before a stopped arm is tried again.")
@click.option(
    "--validation",
    type=click.Choice(VALIDATION_MODES),
    help="What to do with inputs unlike the training data (unknown category, out of range, "
    "unexpected null, …): reject (422), flag (serve, return warnings), allow; default: "
    "each rule's own default (docs/validation.md).",
)
@click.option(
    "--validation-feature",
    "validation_features",
    multiple=True,
    callback=parse_feature_modes,
    metavar="FEATURE=MODE",
    help="Override --validation for one feature, e.g. plan=allow; MODE default removes it.",
)
@click.option("--no-validation-features", is_flag=True, help="Remove every feature override.")
@click.option(
    "--coerce",
    type=click.Choice(VALIDATION_MODES),
    help='Mistyped values that read as the column\'s type ("3" for a long): reject (the '
    "default), flag (convert, serve, warn) or allow (convert silently).",
)
@click.option(
    "--validation-tolerance",
    type=float,
    metavar="SHARE",
    help="How far past the training range a number may go, as a share of the range on each "
    "side (default 0.1).",
)
@click.option(
    "--outcome-key",
    help="Payload field outcomes may name instead of a request id, e.g. customer_id.",
)
@click.option("--no-outcome-key", is_flag=True, help="Outcomes by request id only.")
@click.option(
    "--agree-abs",
    type=float,
    help="Shadows, replay and canaries: regression answers within this absolute difference "
    "(plus --agree-rel) agree (default 1e-6).",
)
@click.option(
    "--agree-rel",
    type=float,
    help="... and within this share of the primary's answer (default 0.01).",
)
@click.option(
    "--agree-prob",
    type=float,
    help="Classifiers agree on the label and, with this, every probability within it.",
)
@click.option("--reason", default="", help="Why, kept in the route history.")
@click.option("--history", is_flag=True, help="Every revision: who, when, what changed, why.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@allow_signature_change
@pass_context
def route(
    ctx: Context,
    /,
    model: str,
    reason: str,
    history: bool,
    as_json: bool,
    allow_signature_change: bool,
    **options: Any,
) -> None:
    """Show or change MODEL's traffic policy; options not given keep their current values.

    With no option, prints the policy in force. Example: pointsman route churn --ab 3=90,4=10
    --key customer_id --shadow 5 --fallback 2 --timeout-ms 200
    """
    changing = _is_change(options)
    if history and changing:
        raise click.UsageError("--history only shows revisions; give it without changes.")
    if changing:
        project = ctx.project()
        in_force = project.routes.find(model)
        policy = changed_policy(in_force.policy if in_force else Policy(arms=()), options)
        change = project.routes.apply(
            model, policy, current_user(), reason, allow_signature_change=allow_signature_change
        )
        print_change(model, change, as_json)
        return
    reader = ctx.fast_read()  # a read: without SQLAlchemy when `fastread` can
    if history:
        revisions = reader.history(model) if reader else None
        if revisions is None:
            revisions = ctx.project().routes.history(model)
        _print_history(model, revisions, as_json)
    else:
        found = reader.route(model) if reader else None
        _print_route(ctx.project().routes.get(model) if found is None else found, as_json)


def _print_history(model: str, revisions: list[Route], as_json: bool) -> None:
    entries = history_json(revisions)
    if as_json:
        print_json(entries)
        return
    if not revisions:
        console.print(
            f"{model} has no route yet. Deploy a version with: pointsman deploy {model} V"
        )
        return
    # Both "what changed" and "why" are long: let them share the width and wrap.
    out = Table(title=f"{model} route history", title_justify="left", header_style="bold")
    for column in ("rev", "when", "who"):
        out.add_column(column, no_wrap=True)
    out.add_column("what changed", ratio=3, overflow="fold")
    out.add_column("why", ratio=2, overflow="fold")
    for r, e in zip(revisions, entries, strict=True):
        out.add_row(
            str(r.revision),
            cell(r.created_at),
            escape(r.created_by),
            escape("; ".join(e["changes"])),
            escape(r.reason) or "-",
        )
    console.print(out)


def _print_route(route: Route, as_json: bool) -> None:
    if as_json:
        print_json(route.to_json())
        return
    p = route.policy
    facts: list[list[Any]] = [
        ["arms", arms_text(p.arms)],
        ["key", escape(p.key) if p.key else "none (random)"],
        ["shadows", ", ".join(shadow_text(s) for s in p.shadows) or "none"],
        ["fallback", "none" if p.fallback is None else p.fallback],
        ["timeout", f"{p.timeout_ms} ms" if p.timeout_ms else "none"],
        ["breaker", f"after {p.breaker_failures} failures, retry after {p.breaker_pause_s:g} s"],
        ["validation", escape(p.validation.describe())],
        ["outcome key", escape(p.outcome_key) if p.outcome_key else "none (request ids)"],
        ["agreement", escape(p.agreement.describe())],
        ["canary", _canary_line(route)],
        ["changed", f"{cell(route.created_at)} by {escape(route.created_by)}"],
        ["why", escape(route.reason) or "-"],
    ]
    table(f"{route.model} route revision {route.revision}", ["", ""], facts)


def _canary_line(route: Route) -> str:
    c = route.policy.canary
    if c is None:
        return "none"
    steps = ", ".join(map(str, c.steps))
    state = c.state.replace("_", " ")
    return f"version {c.candidate} vs {c.baseline}: {state}, step {c.weight} % of {steps}"


@click.command("promote")
@click.argument("model")
@click.argument("version")
@click.option("--reason", default="", help="Why, kept in the route history.")
@click.option("--json", "as_json", is_flag=True, help="Print the new route revision as JSON.")
@allow_signature_change
@pass_context
def promote(
    ctx: Context, model: str, version: str, reason: str, as_json: bool, allow_signature_change: bool
) -> None:
    """Make VERSION the sole primary of MODEL; a running canary of it ends as promoted."""
    project = ctx.project()
    change = project.routes.promote(
        model, version, current_user(), reason, allow_signature_change=allow_signature_change
    )
    print_change(model, change, as_json)


@click.command("rollback")
@click.argument("model")
@click.option("--reason", default="", help="Why, kept in the route history.")
@click.option("--json", "as_json", is_flag=True, help="Print the new route revision as JSON.")
@pass_context
def rollback(ctx: Context, model: str, reason: str, as_json: bool) -> None:
    """Put MODEL's previous route revision back in force (as a new revision)."""
    project = ctx.project()
    print_change(model, project.routes.rollback(model, current_user(), reason), as_json)


COMMANDS = [deploy, route, promote, rollback]
