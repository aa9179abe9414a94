"""What changed between two route revisions, as short phrases a person reads in the history."""

from __future__ import annotations

from pointsman.routing.policy import Arm, Canary, Policy, Shadow
from pointsman.validation.policy import ValidationPolicy


def arms_text(arms: tuple[Arm, ...]) -> str:
    """Arms as the CLI takes them: `3=90, 4=10`."""
    return ", ".join(f"{a.version}={a.weight}" for a in arms) or "none"


def shadow_text(shadow: Shadow) -> str:
    """A shadow as the CLI takes it: `5`, or `5@0.25` for a sampled share."""
    return str(shadow.version) if shadow.sample >= 1 else f"{shadow.version}@{shadow.sample:g}"


def describe_changes(before: Policy | None, after: Policy) -> list[str]:
    """Phrases such as `arms 3=100 → 3=90, 4=10` and `shadow +5`; `no change` when equal."""
    if before is None:
        return ["first revision", *_describe_new(after)]
    out: list[str] = []
    if before.arms != after.arms:
        out.append(f"arms {arms_text(before.arms)} → {arms_text(after.arms)}")
    out += _changed("key", before.key, after.key)
    out += _shadow_changes(before.shadows, after.shadows)
    out += _changed("fallback", before.fallback, after.fallback)
    out += _changed("timeout", _ms(before.timeout_ms), _ms(after.timeout_ms))
    old_breaker = _breaker(before)
    new_breaker = _breaker(after)
    if old_breaker != new_breaker:
        out.append(f"breaker {old_breaker} → {new_breaker}")
    out += _canary_changes(before.canary, after.canary)
    if before.validation != after.validation:
        out.append(f"validation {before.validation.describe()} → {after.validation.describe()}")
    out += _changed("outcome key", before.outcome_key, after.outcome_key)
    if before.agreement != after.agreement:
        out.append(f"agreement {before.agreement.describe()} → {after.agreement.describe()}")
    return out or ["no change"]


def _describe_new(policy: Policy) -> list[str]:
    out = [f"arms {arms_text(policy.arms)}"]
    out += _changed("key", None, policy.key)
    out += _shadow_changes((), policy.shadows)
    out += _changed("fallback", None, policy.fallback)
    out += _changed("timeout", None, _ms(policy.timeout_ms))
    out += _canary_changes(None, policy.canary)
    if policy.validation != ValidationPolicy():
        out.append(f"validation {policy.validation.describe()}")
    out += _changed("outcome key", None, policy.outcome_key)
    return out


def _changed(name: str, old: object, new: object) -> list[str]:
    if old == new:
        return []
    return [f"{name} {'none' if old is None else old} → {'none' if new is None else new}"]


def _ms(value: int | None) -> str | None:
    return None if value is None else f"{value} ms"


def _breaker(policy: Policy) -> str:
    return f"{policy.breaker_failures} failures/{policy.breaker_pause_s:g} s"


def _shadow_changes(old: tuple[Shadow, ...], new: tuple[Shadow, ...]) -> list[str]:
    was = {s.version: s for s in old}
    now = {s.version: s for s in new}
    out = [f"shadow -{shadow_text(s)}" for v, s in was.items() if v not in now]
    for version, shadow in now.items():
        if version not in was:
            out.append(f"shadow +{shadow_text(shadow)}")
        elif was[version].sample != shadow.sample:
            out.append(f"shadow {shadow_text(was[version])} → {shadow_text(shadow)}")
    return out


def _canary_changes(old: Canary | None, new: Canary | None) -> list[str]:
    if new is None or old == new:
        return []
    name = f"canary of {new.candidate}"
    fresh = old is None or old.candidate != new.candidate or not old.is_running
    if fresh and new.is_running:
        return [f"{name} started at {new.weight} % against {new.baseline}"]
    if old is not None and old.is_running and not new.is_running:
        return [f"{name} {new.state.replace('_', ' ')} at {old.weight} %"]
    if old is not None and old.step != new.step:
        return [f"{name} {old.weight} % → {new.weight} %"]
    return []
