"""Logged inputs run again on a version, and the answers compared (for explain and replay)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from pointsman.errors import CannotRerun
from pointsman.registry import VersionRecord
from pointsman.routing.agreement import Agreement, rows_agree
from pointsman.types import Frame, Outputs
from pointsman.validation.signature import build_frame


@dataclass
class Rerun:
    """A logged record's answer next to the answer the version gives now."""

    logged: dict[str, Any]
    outputs: Outputs
    model_ms: float

    @property
    def predictions(self) -> list[Any]:
        return [_plain(p) for p in self.outputs.predictions]

    @property
    def logged_predictions(self) -> list[Any]:
        return list((self.logged.get("outputs") or {}).get("predictions") or [])

    def changed_rows(self, agreement: Agreement | None = None) -> list[int]:
        """Rows whose answer does not agree with the logged one (exactly, without a tolerance)."""
        old, new = self.logged_predictions, self.predictions
        if len(old) != len(new):
            return list(range(max(len(old), len(new))))
        if agreement is None:
            return [i for i, (a, b) in enumerate(zip(old, new, strict=True)) if a != b]
        logged = self.logged.get("outputs") or {}
        same = rows_agree(
            old, new, agreement, logged.get("probabilities"), self.outputs.probabilities,
            regression=False if self.outputs.classes is not None else None,
        )  # fmt: skip
        return [i for i, ok in enumerate(same) if not ok]

    def probability_deltas(self) -> list[float]:
        """Per row, the largest change in any class's probability (classes both know)."""
        logged = self.logged.get("outputs") or {}
        old, old_classes = logged.get("probabilities"), logged.get("classes")
        new = self.outputs.probabilities
        if old is None or new is None or old_classes is None or self.outputs.classes is None:
            return []
        new_index = {str(c): i for i, c in enumerate(self.outputs.classes)}
        shared = [(i, new_index[str(c)]) for i, c in enumerate(old_classes) if str(c) in new_index]
        deltas = []
        for row_old, row_new in zip(old, new.tolist(), strict=False):
            deltas.append(max((abs(row_old[i] - row_new[j]) for i, j in shared), default=0.0))
        return deltas


class Runs(Protocol):
    """Where versions run (a runner session of the command): started once, then called."""

    def warm(self, version: VersionRecord) -> None: ...

    def predict(self, version: VersionRecord, frame: Frame) -> Outputs: ...


class Rerunner:
    """Runs logged inputs on versions, each in its own runner (loaded once)."""

    def __init__(self, runs: Runs) -> None:
        self.runs = runs

    def warm(self, version: VersionRecord) -> None:
        """Load `version` now (and fail now, before any progress bar, if it cannot)."""
        self.runs.warm(version)

    def run(self, version: VersionRecord, record: dict[str, Any]) -> Rerun:
        """Run `record`'s logged inputs on `version`; CannotRerun when they are not all there."""
        redacted = set((record.get("extra") or {}).get("redacted") or [])
        needed = set(version.signature.names)
        if needed & redacted:
            fields = ", ".join(sorted(needed & redacted))
            raise CannotRerun(
                f"Request {record['request_id']}: the log keeps {fields} "
                "redacted (log_redact), so its input cannot be run again."
            )
        inputs = record.get("inputs") or {}
        missing = sorted(needed - set(inputs))
        if missing:
            raise CannotRerun(
                f"Request {record['request_id']}: version {version.number} needs "
                f"{', '.join(missing)}, which the logged input does not have."
            )
        columns = {name: inputs[name] for name in version.signature.names}
        frame = build_frame(version.signature, columns, int(record["n_rows"]))
        start = time.perf_counter()
        outputs = self.runs.predict(version, frame)
        return Rerun(record, outputs, (time.perf_counter() - start) * 1000)


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value
