"""Whose fault a model's failure is: the caller's input (rows unlike the training data, a
422) or the version (clean rows, a 500)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pointsman.errors import InputNotComputable
from pointsman.types import Frame
from pointsman.validation.checks import ProfileChecks
from pointsman.validation.policy import ValidationPolicy

if TYPE_CHECKING:
    from pointsman.registry import VersionRecord


class InputFaults:
    """Tells the caller's input from the version when a model raises; holds each version's
    prepared profile checks (the request path's validation uses them too)."""

    def __init__(self) -> None:
        self._checks: dict[tuple[str, int, float], ProfileChecks] = {}

    def checks_of(self, version: VersionRecord, tolerance: float) -> ProfileChecks:
        key = (version.model, version.number, tolerance)
        checks = self._checks.get(key)
        if checks is None:
            checks = ProfileChecks.build(version.signature, version.profile, tolerance)
            self._checks[key] = checks
        return checks

    def of(
        self,
        version: VersionRecord,
        frame: Frame,
        rules: ValidationPolicy,
        raised: str | None,
        request_id: str,
    ) -> InputNotComputable | None:
        """The caller's 422 when the model raised (`raised`: what) on rows unlike its
        training data; None when it did not raise, or raised on clean rows (a 500).

        Whatever the policy (even `allow`), the rows are checked against the version's
        profile here: a finding on them means the input, not the version, made it fail.
        """
        if raised is None:
            return None
        findings = [*frame.findings, *self.checks_of(version, rules.tolerance).check(frame)]
        if not findings:
            return None
        return InputNotComputable(version.model, str(version.number), findings, raised, request_id)
