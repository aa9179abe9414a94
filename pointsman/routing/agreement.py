"""When two versions' answers for a row count as the same: fit for the kind of model.

Regressors agree within a tolerance (absolute and relative, as `numpy.isclose`): two
regression versions almost never give equal floats. Classifiers agree on the label and,
when `prob_tol` is set, on every class probability within it. The route carries the
tolerance; shadows, replay, the canary's agreement gate and `pointsman diff` use it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np


@dataclass(frozen=True)
class Agreement:
    """The tolerance within which two answers for one row agree."""

    abs_tol: float = 1e-6  # regressors: |a - b| <= abs_tol + rel_tol * |a|
    rel_tol: float = 0.01
    prob_tol: float | None = None  # classifiers: also every probability within this

    def to_json(self) -> dict[str, Any]:
        return {"abs_tol": self.abs_tol, "rel_tol": self.rel_tol, "prob_tol": self.prob_tol}

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> Agreement:
        if not data:
            return cls()
        prob = data.get("prob_tol")
        return cls(
            abs_tol=float(data.get("abs_tol", 1e-6)),
            rel_tol=float(data.get("rel_tol", 0.01)),
            prob_tol=None if prob is None else float(prob),
        )

    def describe(self) -> str:
        text = f"regressors within {self.abs_tol:g} + {self.rel_tol:.2%}"
        if self.prob_tol is not None:
            text += f"; classifiers: label and probabilities within {self.prob_tol:g}"
        return text

    def problems(self) -> list[str]:
        out = []
        if self.abs_tol < 0 or self.rel_tol < 0:
            out.append("agreement tolerances cannot be negative")
        if self.prob_tol is not None and not 0 <= self.prob_tol <= 1:
            out.append(f"probability tolerance must be in [0, 1], got {self.prob_tol}")
        return out


def rows_agree(
    old: Any,
    new: Any,
    agreement: Agreement,
    old_probs: Any = None,
    new_probs: Any = None,
    regression: bool | None = None,
) -> np.ndarray:
    """Per row, whether `new` agrees with `old` under `agreement` (booleans)."""
    # Here, not at the top: route policies (which hold an Agreement) are read by commands
    # that must start without numpy (`pointsman route MODEL`).
    import numpy as np

    a, b = np.asarray(old), np.asarray(new)
    if len(a) != len(b):
        return np.zeros(max(len(a), len(b)), dtype=bool)
    if regression is None:
        regression = a.dtype.kind == "f" and b.dtype.kind in "fiu" and old_probs is None
    if regression:
        x, y = a.astype(float), b.astype(float)
        return np.asarray(np.isclose(y, x, rtol=agreement.rel_tol, atol=agreement.abs_tol))
    same = np.array([str(p) == str(q) for p, q in zip(a.tolist(), b.tolist(), strict=True)])
    if agreement.prob_tol is not None and old_probs is not None and new_probs is not None:
        p, q = np.asarray(old_probs, dtype=float), np.asarray(new_probs, dtype=float)
        if p.shape == q.shape:
            same &= np.max(np.abs(p - q), axis=1) <= agreement.prob_tol + 1e-12
    return np.asarray(same, dtype=bool)
