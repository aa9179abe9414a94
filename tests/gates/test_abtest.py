"""A/B verdicts on simulated experiments (numpy, no HTTP): a truly better version is declared
better once the sample suffices; an identical one is declared different at most at the
stated rate, even looked at twenty times per experiment."""

from __future__ import annotations

import numpy as np
import pytest

from pointsman.errors import BadRequest
from pointsman.gates.abtest import compare, half_width
from pointsman.gates.verdicts import QualityGate

ALPHA = 0.05
LOOKS = range(250, 5001, 250)  # a dashboard refreshed twenty times per experiment


def experiment(p_a: float, p_b: float, seed: int) -> list[str]:
    """The verdict at each look of one experiment with accuracies p_a, p_b."""
    rng = np.random.default_rng(seed)
    a = (rng.random(LOOKS[-1]) < p_a).astype(float)
    b = (rng.random(LOOKS[-1]) < p_b).astype(float)
    return [compare(a[:n], b[:n], "accuracy", ALPHA, mde=0.03)["verdict"] for n in LOOKS]


def test_an_identical_version_is_declared_different_at_most_at_the_stated_rate() -> None:
    runs = [experiment(0.8, 0.8, seed) for seed in range(300)]
    ever = np.mean([any(v.startswith("candidate") for v in verdicts) for verdicts in runs])
    # Figures for the closing note: about 0.3 % of experiments ever declared different.
    assert ever <= ALPHA
    settled = np.mean([verdicts[-1] == "no difference as large as the MDE" for verdicts in runs])
    assert settled > 0.9  # by 5000 rows per arm the interval excludes a 3-point difference


def test_a_better_version_is_declared_better_once_the_sample_suffices() -> None:
    runs = [experiment(0.80, 0.85, 1000 + seed) for seed in range(100)]
    final = [verdicts[-1] for verdicts in runs]
    assert np.mean([v == "candidate better" for v in final]) >= 0.9
    assert not any("worse" in v for verdicts in runs for v in verdicts)
    first = [next(i for i, v in enumerate(verdicts) if v == "candidate better")
             for verdicts in runs if "candidate better" in verdicts]  # fmt: skip
    assert np.median(first) > 0  # not at the very first look: it takes sample


def test_the_sample_still_needed_shrinks_to_zero_as_rows_come_in() -> None:
    rng = np.random.default_rng(5)
    a, b = (rng.random(20000) < 0.8).astype(float), (rng.random(20000) < 0.8).astype(float)
    needs = [compare(a[:n], b[:n], "accuracy", ALPHA, mde=0.03)["needed_per_arm"]
             for n in (200, 1000, 5000, 20000)]  # fmt: skip
    assert needs[0] > needs[1] > needs[2] >= 0 and needs[3] == 0
    # The needed rows are enough: the half-width at that sample is below the MDE.
    var = 0.8 * 0.2
    n = 200 + needs[0]
    assert half_width(2 * var / n, 0.03**2, ALPHA) <= 0.03 * 1.05


def test_metrics_that_are_not_means_over_rows_are_refused() -> None:
    with pytest.raises(BadRequest, match="accuracy, log_loss"):
        compare(np.ones(3), np.ones(3), "auc")


def test_quality_gates_are_parsed_or_refused_with_the_form() -> None:
    assert QualityGate.parse("auc >= primary - 0.01") == QualityGate("auc", True, 0.01)
    assert QualityGate.parse("mae <= primary + 0.5") == QualityGate("mae", False, 0.5)
    with pytest.raises(BadRequest, match=r"auc >= primary - 0\.01"):
        QualityGate.parse("auc is good")
