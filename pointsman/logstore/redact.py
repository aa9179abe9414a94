"""Per-model redaction of inputs, applied before a record is written anywhere (spool included)."""

from __future__ import annotations

import hashlib
from typing import Any

from pointsman.settings import Redaction


class Redactor:
    """Drops, hashes (salted sha256) or truncates the input fields each model's rule names."""

    def __init__(self, rules: dict[str, Redaction], salt: str) -> None:
        self.rules = {model: rule for model, rule in rules.items() if _has_effect(rule)}
        self.salt = salt.encode()

    def apply(self, model: str, columns: dict[str, list[Any]]) -> dict[str, list[Any]]:
        """`columns` ({field: values}) as the log may keep them; unchanged when no rule."""
        rule = self.rules.get(model)
        if rule is None:
            return columns
        kept = {name: values for name, values in columns.items() if name not in rule.drop}
        for name in rule.hash:
            if name in kept:
                kept[name] = [self.hash(v) for v in kept[name]]
        for name, length in rule.truncate.items():
            if name in kept:
                kept[name] = [None if v is None else str(v)[:length] for v in kept[name]]
        return kept

    def changed_fields(self, model: str) -> list[str]:
        """The fields of `model` that the log does not keep as they came."""
        rule = self.rules.get(model)
        if rule is None:
            return []
        return sorted({*rule.drop, *rule.hash, *rule.truncate})

    def apply_findings(
        self, model: str, findings: list[dict[str, Any]] | None
    ) -> list[dict[str, Any]] | None:
        """Validation findings with the values of redacted fields redacted the same way."""
        rule = self.rules.get(model)
        if rule is None or not findings:
            return findings
        out = []
        for finding in findings:
            feature = finding.get("feature")
            if feature in rule.drop or feature in rule.hash or feature in rule.truncate:
                finding = dict(finding)
                finding.pop("hint", None)  # a near-miss hint would repeat the value
                if feature in rule.drop:
                    finding["value"] = None
                elif feature in rule.hash:
                    finding["value"] = self.hash(finding.get("value"))
                else:
                    value = finding.get("value")
                    finding["value"] = (
                        None if value is None else str(value)[: rule.truncate[feature]]
                    )
            out.append(finding)
        return out

    def hash(self, value: Any) -> str | None:
        """sha256 of salt + the value's text, as hex; None stays None."""
        if value is None:
            return None
        return hashlib.sha256(self.salt + str(value).encode()).hexdigest()


def _has_effect(rule: Redaction) -> bool:
    return bool(rule.drop or rule.hash or rule.truncate)
