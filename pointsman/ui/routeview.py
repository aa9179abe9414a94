"""The route in force, in words and as a picture (the bars and boxes the template draws)."""

from __future__ import annotations

from dataclasses import dataclass

from pointsman.routing.route import Route


@dataclass(frozen=True)
class Box:
    """One part of the picture: a version in a role, its share of traffic in percent."""

    version: int
    role: str  # arm | canary | shadow | fallback
    share: float
    label: str


def route_words(route: Route | None) -> list[str]:
    """The policy as sentences a person reads."""
    if route is None:
        return ["Not deployed: no version answers requests yet."]
    policy = route.policy
    out = []
    canary = policy.canary if policy.canary and policy.canary.is_running else None
    if len(policy.arms) == 1:
        out.append(f"Version {policy.arms[0].version} answers every request.")
    else:
        split = ", ".join(f"version {a.version} {a.weight} %" for a in policy.arms)
        out.append(f"Requests are split between {split}.")
    if policy.key:
        out.append(f"The same value of {policy.key!r} always goes to the same version.")
    if canary is not None:
        out.append(
            f"Canary: version {canary.candidate} takes {canary.weight} % (step {canary.step + 1} "
            f"of {len(canary.steps)}: {', '.join(f'{s} %' for s in canary.steps)}) against "
            f"version {canary.baseline}; each step holds {canary.hold_requests} requests and "
            f"{canary.hold_s:g} s."
        )
    for shadow in policy.shadows:
        out.append(
            f"Version {shadow.version} shadows {shadow.sample * 100:g} % of requests "
            "(runs after the answer; its answers are compared, never returned)."
        )
    if policy.fallback is not None:
        out.append(f"If a version fails or times out, version {policy.fallback} answers instead.")
    if policy.timeout_ms is not None:
        out.append(f"Timeout: {policy.timeout_ms} ms.")
    out.append(
        f"Revision {route.revision}, by {route.created_by}: {route.reason or 'no reason given'}."
    )
    return out


def route_boxes(route: Route | None) -> list[Box]:
    """Arms (a canary candidate marked), then shadows, then the fallback."""
    if route is None:
        return []
    policy = route.policy
    candidate = policy.canary.candidate if policy.canary and policy.canary.is_running else None
    boxes = [
        Box(a.version, "canary" if a.version == candidate else "arm", float(a.weight),
            f"v{a.version} {a.weight} %" + (" canary" if a.version == candidate else ""))
        for a in policy.arms
    ]  # fmt: skip
    boxes += [
        Box(s.version, "shadow", s.sample * 100, f"v{s.version} shadow {s.sample * 100:g} %")
        for s in policy.shadows
    ]
    if policy.fallback is not None:
        boxes.append(Box(policy.fallback, "fallback", 0.0, f"v{policy.fallback} fallback"))
    return boxes
