"""Offline validation: a whole file through the same checks as a request, summed per feature.

A file is not a request: a missing column or an unreadable value is counted and reported,
and the rest of the file is still checked, instead of refusing it whole.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from pointsman.errors import InvalidInput
from pointsman.types import Finding, Signature
from pointsman.validation.checks import ProfileChecks
from pointsman.validation.policy import ROW_FEATURE, ValidationPolicy
from pointsman.validation.signature import build_frame

MAX_EXAMPLES = 3


@dataclass
class FeatureReport:
    """What one feature (or the row rules) showed over the file."""

    feature: str
    type: str
    rules: Counter[str] = field(default_factory=Counter)
    actions: dict[str, str] = field(default_factory=dict)  # rule → reject | flag | allow
    examples: list[str] = field(default_factory=list)

    def add(self, rule: str, action: str, value: str) -> None:
        self.rules[rule] += 1
        self.actions[rule] = action
        if value not in self.examples and len(self.examples) < MAX_EXAMPLES:
            self.examples.append(value)

    def to_json(self) -> dict[str, Any]:
        return {
            "feature": self.feature,
            "type": self.type,
            "findings": dict(self.rules),
            "actions": self.actions,
            "examples": self.examples,
        }


@dataclass
class Report:
    """A file checked against one version, under one validation policy."""

    model: str
    version: int
    rows: int
    features: list[FeatureReport]
    ignored_columns: list[str]
    refused_rows: int  # rows a server would refuse with 422 (schema errors included)
    flagged_rows: int

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "version": self.version,
            "rows": self.rows,
            "refused_rows": self.refused_rows,
            "flagged_rows": self.flagged_rows,
            "ignored_columns": self.ignored_columns,
            "features": [f.to_json() for f in self.features],
        }


def validate_table(
    model: str,
    version: int,
    table: pd.DataFrame,
    signature: Signature,
    profile: dict[str, Any] | None,
    policy: ValidationPolicy,
    text_source: bool = False,
) -> Report:
    """Check every row of `table` as a server with `policy` would check a request.

    `text_source`: the table was read from CSV, where "41" is how a number is written, so
    readings of text as numbers are not reported as coercions.
    """
    reports = {c.name: FeatureReport(c.name, c.type) for c in signature.inputs}
    reports[ROW_FEATURE] = FeatureReport(ROW_FEATURE, "row")
    refused: set[int] = set()
    flagged: set[int] = set()
    present = [c for c in signature.inputs if c.name in table.columns]
    for spec in signature.inputs:
        if spec.name not in table.columns:
            reports[spec.name].rules["missing_column"] = len(table)
            reports[spec.name].actions["missing_column"] = "reject"
            refused.update(range(len(table)))
    checked = Signature(inputs=tuple(present), outputs=signature.outputs)
    columns = {c.name: _values(table[c.name]) for c in present}
    rows = np.arange(len(table))
    frame = None
    while present:
        try:
            frame = build_frame(checked, columns, len(rows))
            break
        except InvalidInput as exc:  # count each unreadable value, then check the rest
            bad = set()
            for p in exc.problems:
                if p.row is None:
                    continue
                bad.add(p.row)
                report = reports.get(p.field)
                if report is not None:
                    report.add("schema: " + p.problem, "reject", repr(p.received))
            if not bad:
                raise
            refused.update(int(rows[i]) for i in bad)
            keep = [i for i in range(len(rows)) if i not in bad]
            rows = rows[keep]
            columns = {name: [values[i] for i in keep] for name, values in columns.items()}
    if frame is not None and len(rows):
        findings = [] if text_source else list(frame.findings)
        findings += ProfileChecks.build(checked, profile, policy.tolerance).check(frame)
        for f in findings:
            action = policy.action(f.feature, f.rule)
            row = int(rows[f.row])
            reports[f.feature].add(f.rule, action, _shown(f))
            if action == "reject":
                refused.add(row)
            elif action == "flag":
                flagged.add(row)
    ignored = [str(c) for c in table.columns if c not in reports]
    return Report(
        model,
        version,
        len(table),
        [reports[c.name] for c in signature.inputs] + [reports[ROW_FEATURE]],
        ignored,
        len(refused),
        len(flagged - refused),
    )


def _values(series: pd.Series) -> list[Any]:
    """A column as JSON-like values: nulls as None, numpy scalars as Python ones."""
    values = series.astype(object).where(series.notna(), None).tolist()
    return [v.item() if isinstance(v, np.generic) else v for v in values]


def _shown(finding: Finding) -> str:
    """An example as a person reads it: the value as sent, and the hint if any."""
    value = repr(finding.to_json()["value"])
    return f"{value} ({finding.hint})" if finding.hint else value
