"""What a route does with each validation finding: reject the request, flag it, or allow it.

Part of the route's traffic policy, so a change is a new, audited revision that every worker
picks up without a restart. Schema errors (missing, unexpected, unreadable fields) are not
here: a model cannot take them, so they are always refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pointsman.types import Finding

MODES = ("reject", "flag", "allow")

# Each rule, what it means, and what it does unless the route says otherwise.
RULES: dict[str, tuple[str, str]] = {
    "coerced": ('a mistyped value read as the column\'s type, e.g. "3" for a long', "reject"),
    "unknown_category": ("a value outside the training category set", "flag"),
    "near_miss_category": ("a training category but for case or spaces, e.g. 'Premium '", "flag"),
    "out_of_range": ("outside the training range widened by the tolerance", "flag"),
    "not_finite": ("infinity (or NaN sent as a number) in a numeric feature", "reject"),
    "unexpected_null": ("null where the training data had none", "flag"),
    "default_row": ("every feature 0, empty or null", "flag"),
    "constant_row": ("every feature the same value", "flag"),
}
ROW_FEATURE = "(row)"  # the feature name row rules are reported under


@dataclass(frozen=True)
class ValidationPolicy:
    """`mode` for every profile rule (None: each rule's default), `coerce` for coercions,
    per-feature overrides, and the range tolerance as a fraction of the training range."""

    mode: str | None = None
    coerce: str | None = None
    features: tuple[tuple[str, str], ...] = ()
    tolerance: float = 0.1

    def action(self, feature: str, rule: str) -> str:
        for name, mode in self.features:
            if name == feature:
                return mode
        chosen = self.coerce if rule == "coerced" else self.mode
        return chosen or RULES[rule][1]

    def judge(self, findings: list[Finding]) -> tuple[list[Finding], list[Finding]]:
        """(refused, flagged) findings; allowed ones are dropped."""
        refused: list[Finding] = []
        flagged: list[Finding] = []
        for f in findings:
            action = self.action(f.feature, f.rule)
            if action == "reject":
                refused.append(f)
            elif action == "flag":
                flagged.append(f)
        return refused, flagged

    @property
    def checks_profile(self) -> bool:
        """False when every profile finding would be allowed: the checks can be skipped."""
        if self.mode != "allow":
            return True
        return any(mode != "allow" for _, mode in self.features)

    def problems(self, features: list[str] | None = None) -> list[str]:
        """What is wrong with this policy, as sentences saying what to change."""
        out = []
        for what, mode in (("validation", self.mode), ("coerce", self.coerce)):
            if mode is not None and mode not in MODES:
                out.append(f"{what} mode must be one of {', '.join(MODES)}, got {mode!r}")
        for name, mode in self.features:
            if mode not in MODES:
                out.append(
                    f"validation of feature {name!r} must be one of {', '.join(MODES)}, "
                    f"got {mode!r}"
                )
            if features is not None and name not in features and name != ROW_FEATURE:
                out.append(
                    f"feature {name!r} is not an input of the routed versions "
                    f"({', '.join(features)})"
                )
        if not 0 <= self.tolerance <= 10:
            out.append(f"range tolerance must be between 0 and 10, got {self.tolerance}")
        return out

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"tolerance": self.tolerance}
        if self.mode is not None:
            out["mode"] = self.mode
        if self.coerce is not None:
            out["coerce"] = self.coerce
        if self.features:
            out["features"] = dict(self.features)
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> ValidationPolicy:
        if not data:
            return cls()
        return cls(
            mode=data.get("mode"),
            coerce=data.get("coerce"),
            features=tuple(sorted((str(k), str(v)) for k, v in data.get("features", {}).items())),
            tolerance=float(data.get("tolerance", 0.1)),
        )

    def describe(self) -> str:
        """One line: `flag (coerce: reject; plan=allow; tolerance 10%)`."""
        parts = [f"coerce: {self.coerce or RULES['coerced'][1]}"]
        parts += [f"{name}={mode}" for name, mode in self.features]
        parts.append(f"tolerance {self.tolerance:.0%}")
        return f"{self.mode or 'defaults'} ({'; '.join(parts)})"
