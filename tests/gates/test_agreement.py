"""Agreement fit for the model: regressors within a tolerance, classifiers on label and
probabilities; a regression canary that agreed within tolerance in shadow is not rolled back."""

from __future__ import annotations

import numpy as np
import pytest

from pointsman.routing.agreement import Agreement, rows_agree
from pointsman.routing.canary import judge
from pointsman.routing.policy import Canary
from pointsman.routing.shadow import compare
from pointsman.routing.stats import Counts
from pointsman.types import Outputs


@pytest.mark.parametrize(
    ("old", "new", "agreement", "expected"),
    [
        ([100.0, 10.0], [100.5, 10.5], Agreement(), [True, False]),  # 1 % of 100; not of 10
        ([100.0, 10.0], [100.5, 10.5], Agreement(abs_tol=0.5), [True, True]),
        ([1.0], [1.0 + 1e-9], Agreement(abs_tol=0, rel_tol=0), [False]),
        (["a", "b"], ["a", "a"], Agreement(), [True, False]),
        ([0, 1], [0, 1], Agreement(), [True, True]),
    ],
)
def test_rows_agree_by_kind(
    old: list[object], new: list[object], agreement: Agreement, expected: list[bool]
) -> None:
    assert rows_agree(old, new, agreement).tolist() == expected


def test_classifier_probabilities_count_only_with_a_probability_tolerance() -> None:
    old, new = np.array([[0.9, 0.1], [0.6, 0.4]]), np.array([[0.85, 0.15], [0.52, 0.48]])
    labels = ["a", "a"]
    assert rows_agree(labels, labels, Agreement(), old, new).tolist() == [True, True]
    tight = Agreement(prob_tol=0.05)
    assert rows_agree(labels, labels, tight, old, new).tolist() == [True, False]


def shadowed(agreement: Agreement) -> Counts:
    rng = np.random.default_rng(3)
    cell = Counts()
    for _ in range(50):
        primary = rng.normal(100, 20, size=4)
        shadow = primary * (1 + rng.uniform(-0.005, 0.005, size=4))  # within 0.5 %
        compare(Outputs(list(primary)), Outputs(list(shadow)), cell, agreement)
    return cell


def test_a_regression_canary_that_agreed_within_tolerance_in_shadow_is_not_rolled_back() -> None:
    exact = shadowed(Agreement(abs_tol=0, rel_tol=0)).agreement
    tolerant = shadowed(Agreement(rel_tol=0.01)).agreement
    assert exact == 0.0 and tolerant == 1.0
    for agreement, action in ((exact, "rollback"), (tolerant, "wait")):
        canary = Canary(candidate=2, baseline=1, steps=(5, 100), shadow_agreement=agreement)
        assert judge(canary, {}, held_s=0).action == action
