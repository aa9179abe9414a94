"""A model's traffic policy: primary arms, sticky key, shadows, fallback, timeout, canary.

One Policy is the content of one route revision. `check_policy` refuses a policy with a
message saying what to change; nothing here touches the store.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pointsman.errors import InvalidRoute
from pointsman.routing.agreement import Agreement
from pointsman.validation.policy import ValidationPolicy


@dataclass(frozen=True)
class Arm:
    """A primary version and its share of traffic in percent."""

    version: int
    weight: int = 100


@dataclass(frozen=True)
class Shadow:
    """A version that gets a copy of a sampled share of the traffic after the response."""

    version: int
    sample: float = 1.0


@dataclass(frozen=True)
class Gates:
    """How much worse than the baseline a canary candidate may be over one step's window."""

    max_error_rate_delta: float = 0.02
    max_p99_ratio: float = 2.0
    max_fallback_rate_delta: float = 0.02
    max_validation_rate_delta: float = 0.02
    min_agreement: float = 0.9
    quality: str | None = None  # e.g. "auc >= primary - 0.01", judged once outcomes suffice
    min_outcomes: int = 200  # per arm, before the quality gate may fail

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            k: float(v) for k, v in self.__dict__.items() if k not in ("quality", "min_outcomes")
        }
        if self.quality is not None:
            out["quality"] = self.quality
            out["min_outcomes"] = self.min_outcomes
        return out


@dataclass(frozen=True)
class Canary:
    """A candidate moving through traffic steps against a baseline arm."""

    candidate: int
    baseline: int
    steps: tuple[int, ...]
    step: int = 0  # index into steps
    hold_requests: int = 500
    hold_s: float = 120.0
    gates: Gates = field(default_factory=Gates)
    state: str = "running"  # running | promoted | rolled_back | aborted
    reason: str = ""
    shadow_agreement: float | None = None  # label agreement while it was a shadow, if it was

    @property
    def is_running(self) -> bool:
        return self.state == "running"

    @property
    def weight(self) -> int:
        return self.steps[self.step]

    def to_json(self) -> dict[str, Any]:
        return {
            "candidate": self.candidate,
            "baseline": self.baseline,
            "steps": list(self.steps),
            "step": self.step,
            "hold_requests": self.hold_requests,
            "hold_s": self.hold_s,
            "gates": self.gates.to_json(),
            "state": self.state,
            "reason": self.reason,
            "shadow_agreement": self.shadow_agreement,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Canary:
        return cls(
            candidate=int(data["candidate"]),
            baseline=int(data["baseline"]),
            steps=tuple(int(s) for s in data["steps"]),
            step=int(data.get("step", 0)),
            hold_requests=int(data.get("hold_requests", 500)),
            hold_s=float(data.get("hold_s", 120.0)),
            gates=Gates(**data.get("gates", {})),
            state=str(data.get("state", "running")),
            reason=str(data.get("reason", "")),
            shadow_agreement=data.get("shadow_agreement"),
        )


@dataclass(frozen=True)
class Policy:
    """Everything one route revision says about a model's traffic."""

    arms: tuple[Arm, ...]
    key: str | None = None  # payload field whose value makes assignment sticky
    shadows: tuple[Shadow, ...] = ()
    fallback: int | None = None
    timeout_ms: int | None = None
    breaker_failures: int = 5
    breaker_pause_s: float = 30.0
    canary: Canary | None = None
    validation: ValidationPolicy = field(default_factory=ValidationPolicy)
    outcome_key: str | None = None  # payload field outcomes may name instead of a request id
    agreement: Agreement = field(default_factory=Agreement)

    @property
    def versions(self) -> list[int]:
        """Versions that must be loaded for this policy (arms, shadows, fallback)."""
        out = [a.version for a in self.arms]
        out += [s.version for s in self.shadows if s.version not in out]
        if self.fallback is not None and self.fallback not in out:
            out.append(self.fallback)
        return out

    @property
    def primary(self) -> int:
        """The heaviest arm (the version answering when there is one arm)."""
        return max(self.arms, key=lambda a: (a.weight, -a.version)).version

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "arms": [{"version": a.version, "weight": a.weight} for a in self.arms]
        }
        if self.key:
            out["key"] = self.key
        if self.shadows:
            out["shadows"] = [{"version": s.version, "sample": s.sample} for s in self.shadows]
        if self.fallback is not None:
            out["fallback"] = self.fallback
        if self.timeout_ms is not None:
            out["timeout_ms"] = self.timeout_ms
        out["breaker_failures"] = self.breaker_failures
        out["breaker_pause_s"] = self.breaker_pause_s
        if self.canary is not None:
            out["canary"] = self.canary.to_json()
        if self.validation != ValidationPolicy():
            out["validation"] = self.validation.to_json()
        if self.outcome_key:
            out["outcome_key"] = self.outcome_key
        if self.agreement != Agreement():
            out["agreement"] = self.agreement.to_json()
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Policy:
        canary = data.get("canary")
        timeout = data.get("timeout_ms")
        fallback = data.get("fallback")
        return cls(
            arms=tuple(Arm(int(a["version"]), int(a.get("weight", 100))) for a in data["arms"]),
            key=data.get("key") or None,
            shadows=tuple(
                Shadow(int(s["version"]), float(s.get("sample", 1.0)))
                for s in data.get("shadows", [])
            ),
            fallback=None if fallback is None else int(fallback),
            timeout_ms=None if timeout is None else int(timeout),
            breaker_failures=int(data.get("breaker_failures", 5)),
            breaker_pause_s=float(data.get("breaker_pause_s", 30.0)),
            canary=None if canary is None else Canary.from_json(canary),
            validation=ValidationPolicy.from_json(data.get("validation")),
            outcome_key=data.get("outcome_key") or None,
            agreement=Agreement.from_json(data.get("agreement")),
        )


def check_policy(
    policy: Policy, model: str, known: list[int], features: list[str] | None = None
) -> None:
    """Refuse a policy that cannot be served, saying what to change.

    `features`: the routed versions' inputs, against which per-feature validation is checked.
    """
    listed = ", ".join(map(str, known)) or "none"
    problems: list[str] = policy.validation.problems(features) + policy.agreement.problems()
    if not policy.arms:
        problems.append("give at least one primary arm, e.g. --ab 3=100")
    weights = [a.weight for a in policy.arms]
    if policy.arms and sum(weights) != 100:
        shown = ", ".join(f"{a.version}={a.weight}" for a in policy.arms)
        problems.append(f"arm weights must sum to 100, got {shown} (= {sum(weights)})")
    if any(w < 0 for w in weights):
        problems.append("arm weights cannot be negative")
    primaries = [a.version for a in policy.arms]
    if len(set(primaries)) != len(primaries):
        problems.append("a version appears twice among the arms; give each version once")
    for v in policy.versions:
        if v not in known:
            problems.append(f"version {v} does not exist (versions: {listed})")
    for s in policy.shadows:
        if s.version in primaries:
            problems.append(
                f"version {s.version} is both a primary arm and a shadow; a shadow must be a "
                "version that does not answer"
            )
        if not 0 < s.sample <= 1:
            problems.append(
                f"shadow sample of version {s.version} must be in (0, 1], got {s.sample}"
            )
    live = [a.version for a in policy.arms if a.weight > 0]
    if policy.fallback is not None and live == [policy.fallback]:
        problems.append(
            f"fallback {policy.fallback} is the only primary; a fallback must be another version"
        )
    if policy.timeout_ms is not None and not 1 <= policy.timeout_ms <= 600_000:
        problems.append(f"timeout must be 1 ms to 600000 ms, got {policy.timeout_ms}")
    if policy.breaker_failures < 1:
        problems.append("breaker failures must be at least 1")
    if policy.key is not None and not policy.key.strip():
        problems.append("the routing key field name is empty")
    if policy.outcome_key is not None and not policy.outcome_key.strip():
        problems.append("the outcome key field name is empty")
    if problems:
        raise InvalidRoute(model, problems)
