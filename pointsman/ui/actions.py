"""Changes a data scientist makes from the console (admin or `deploy:MODEL`): deploy, canary
start and abort, A/B weights, promote, roll back, upload and register. Each is planned first
(the route it would write, shown as a diff against the one in force, with a reason required)
and then carried out by the same RouteBook and Registry calls as the admin API, audited
under the key's name."""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from pointsman.errors import BadRequest, RouteConflict
from pointsman.project import Project
from pointsman.routing import RouteChange
from pointsman.routing.changes import describe_changes
from pointsman.routing.policy import Arm, Canary, Policy
from pointsman.routing.revisions import canary_policy, canary_steps, rollback_policy, sole_policy

KINDS = {
    "deploy": "Deploy a version (sole primary)",
    "canary": "Start a canary",
    "abort": "Abort the running canary",
    "weights": "Set A/B weights",
    "promote": "Promote a version",
    "rollback": "Roll back to the previous revision",
}


@dataclass(frozen=True)
class Plan:
    """What an action would do: the policy before and after, as phrases and as a diff."""

    kind: str
    params: dict[str, str]
    changes: list[str]
    diff: list[tuple[str, str]]  # (css class, line)


def _int(params: Mapping[str, Any], name: str) -> int:
    raw = str(params.get(name) or "").strip()
    if not raw.isdigit():
        raise BadRequest(f"Give {name} as a whole number, got {raw!r}.")
    return int(raw)


def _hold(params: Mapping[str, Any]) -> tuple[int, float]:
    """A canary step's hold: requests (whole number) and seconds, defaults 500 and 120."""
    requests = str(params.get("hold_requests") or "500").strip()
    seconds = str(params.get("hold_s") or "120").strip()
    try:
        hold_s = float(seconds)
    except ValueError:
        hold_s = -1.0
    if not requests.isdigit() or not 0 <= hold_s < float("inf"):
        raise BadRequest(
            f"Hold each step for a whole number of requests and a number of seconds, got "
            f"{requests!r} and {seconds!r}."
        )
    return int(requests), hold_s


def _steps(params: Mapping[str, Any]) -> list[int]:
    raw = str(params.get("steps") or "5,25,50,100")
    try:
        return [int(s) for s in raw.replace(" ", "").split(",") if s]
    except ValueError:
        raise BadRequest(
            f"Canary steps are percentages separated by commas, got {raw!r}."
        ) from None


def _weights(params: Mapping[str, Any]) -> tuple[Arm, ...]:
    arms = []
    for key, value in params.items():
        if key.startswith("w") and key[1:].isdigit() and str(value).strip() not in ("", "0"):
            if not str(value).strip().isdigit():
                raise BadRequest(f"Weight of version {key[1:]} must be a whole number.")
            arms.append(Arm(int(key[1:]), int(str(value).strip())))
    if sum(a.weight for a in arms) != 100:
        raise BadRequest(
            f"The weights add up to {sum(a.weight for a in arms)}; they must add up to 100."
        )
    return tuple(sorted(arms, key=lambda a: a.version))


def proposed(project: Project, model: str, kind: str, params: Mapping[str, Any]) -> Policy:
    """The policy the action would put in force (the RouteBook checks it again on write)."""
    current = project.routes.find(model)
    base = current.policy if current else Policy(arms=())
    if kind in ("deploy", "promote"):
        version = project.registry.get_version(model, _int(params, "version")).number
        canary = base.canary
        if kind == "promote" and canary is not None and canary.is_running:
            state = "promoted" if canary.candidate == version else "aborted"
            canary = replace(canary, state=state)
        return sole_policy(base, version, canary if kind == "promote" else None)
    if current is None:
        raise RouteConflict(f"{model!r} is not deployed: deploy a version first.")
    if kind == "canary":
        version = project.registry.get_version(model, _int(params, "version")).number
        if version == current.primary:
            raise RouteConflict(f"Version {version} is already the primary of {model!r}.")
        steps = canary_steps(model, _steps(params))
        hold_requests, hold_s = _hold(params)
        canary = Canary(
            version, current.primary, tuple(steps), hold_requests=hold_requests, hold_s=hold_s
        )
        return canary_policy(base, canary)
    if kind == "abort":
        if base.canary is None or not base.canary.is_running:
            raise RouteConflict(f"{model!r} has no canary running.")
        ended = replace(base.canary, state="aborted")
        # As RouteBook.end_canary: the baseline alone, no longer the fallback either.
        return sole_policy(base, base.canary.baseline, ended)
    if kind == "weights":
        return replace(base, arms=_weights(params))
    if kind == "rollback":
        # The same target as RouteBook.rollback (the CLI and admin API): what is shown is
        # what is written.
        return rollback_policy(model, project.routes.history(model))
    raise BadRequest(f"Unknown action {kind!r}; one of {', '.join(KINDS)}.")


def plan(project: Project, model: str, kind: str, params: Mapping[str, Any]) -> Plan:
    current = project.routes.find(model)
    after = proposed(project, model, kind, params)
    before = current.policy if current else None
    old = json.dumps(before.to_json() if before else {}, indent=2, sort_keys=True).splitlines()
    new = json.dumps(after.to_json(), indent=2, sort_keys=True).splitlines()
    diff = []
    for line in difflib.unified_diff(old, new, "in force", "after", lineterm="", n=2):
        css = "after" if line.startswith("+") else "before" if line.startswith("-") else ""
        diff.append((css, line))
    kept = {k: str(v) for k, v in params.items() if k not in ("csrf", "reason")}
    # What was reviewed is what is done: refused if the route changes before it is confirmed.
    kept["seen_revision"] = str(current.revision if current else 0)
    return Plan(kind, kept, describe_changes(before, after), diff)


def carry_out(
    project: Project, model: str, kind: str, params: Mapping[str, Any], who: str
) -> RouteChange:
    """Do it, through the RouteBook (checked, preflighted, audited) with the reason given."""
    reason = str(params.get("reason") or "").strip()
    if not reason:
        raise BadRequest("Say why (the reason is kept in the route history and the audit log).")
    routes = project.routes
    seen = _int(params, "seen_revision") if "seen_revision" in params else None
    if kind == "deploy":
        return routes.deploy(model, _int(params, "version"), who, reason, expect_revision=seen)
    if kind == "promote":
        return routes.promote(model, _int(params, "version"), who, reason, expect_revision=seen)
    if kind == "rollback":
        return routes.rollback(model, who, reason, expect_revision=seen)
    if kind == "abort":
        return routes.end_canary(model, "aborted", reason, who, expect_revision=seen)
    if kind == "canary":
        hold_requests, hold_s = _hold(params)
        return routes.start_canary(
            model, _int(params, "version"), _steps(params), who,
            hold_requests=hold_requests, hold_s=hold_s, reason=reason, expect_revision=seen,
        )  # fmt: skip
    if kind == "weights":
        current = routes.get(model)
        policy = replace(current.policy, arms=_weights(params))
        expected = current.revision if seen is None else seen
        return routes.apply(model, policy, who, reason, expect_revision=expected)
    raise BadRequest(f"Unknown action {kind!r}; one of {', '.join(KINDS)}.")
