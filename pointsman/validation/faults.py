"""Whose fault a model's failure is: the caller's input (rows unlike the training data, a
422) or the version (clean rows, a 500)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pointsman.errors import InputNotComputable
from pointsman.types import Finding, Frame
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
        non_finite: bool = False,
    ) -> InputNotComputable | None:
        """The caller's 422 when the model raised (`raised`: what) on rows unlike its
        training data, or computing infinity or NaN from them (`non_finite`); None when it
        did not raise, or raised on clean rows (a 500).

        Whatever the policy (even `allow`), the rows are checked against the version's
        profile here: a finding on them means the input, not the version, made it fail.
        """
        if raised is None:
            return None
        findings = [*frame.findings, *self.checks_of(version, rules.tolerance).check(frame)]
        if not findings and non_finite:
            findings = _largest_numbers(frame)
        if not findings:
            return None
        return InputNotComputable(version.model, str(version.number), findings, raised, request_id)


def _largest_numbers(frame: Frame) -> list[Finding]:
    """The number of largest magnitude in each row: what most likely overflowed."""
    numeric = {n: c for n, c in frame.columns.items() if c.dtype.kind in "fiu"}
    if not numeric:
        return []
    findings = []
    for row in range(frame.n_rows):
        name = max(numeric, key=lambda n: abs(float(numeric[n][row])))
        findings.append(
            Finding(
                row,
                name,
                numeric[name][row].item(),
                "not_computable",
                "a number the model computes without overflowing to infinity or NaN",
            )
        )
    return findings
