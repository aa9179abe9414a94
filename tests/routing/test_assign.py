"""Sticky, weighted assignment (seeded, pure)."""

from __future__ import annotations

import random

import pytest

from pointsman.routing.assign import choose_arm
from pointsman.routing.policy import Arm


def test_an_80_20_split_over_10000_requests_lands_within_2_points() -> None:
    rng = random.Random(1234)
    arms = (Arm(3, 80), Arm(4, 20))
    picks = [choose_arm("churn", arms, None, rng) for _ in range(10_000)]
    assert abs(picks.count(4) / 10_000 - 0.20) <= 0.02


def test_keyed_split_follows_the_weights_too() -> None:
    arms = (Arm(3, 80), Arm(4, 20))
    picks = [choose_arm("churn", arms, f"customer-{i}", random.Random(0)) for i in range(10_000)]
    assert abs(picks.count(4) / 10_000 - 0.20) <= 0.02


def test_sticky_keys_never_change_arm_while_weights_are_unchanged() -> None:
    arms = (Arm(3, 50), Arm(4, 30), Arm(7, 20))
    first = {k: choose_arm("churn", arms, k, random.Random(1)) for k in map(str, range(2000))}
    for seed in range(5):
        again = {k: choose_arm("churn", arms, k, random.Random(seed)) for k in first}
        assert again == first


def test_going_from_90_10_to_80_20_moves_about_10_percent_of_keys() -> None:
    rng = random.Random(0)
    keys = [f"c{i}" for i in range(10_000)]
    before = {k: choose_arm("churn", (Arm(3, 90), Arm(4, 10)), k, rng) for k in keys}
    after = {k: choose_arm("churn", (Arm(3, 80), Arm(4, 20)), k, rng) for k in keys}
    moved = [k for k in keys if before[k] != after[k]]
    assert 0.08 <= len(moved) / len(keys) <= 0.12
    # Only keys moving towards the arm that grew: none leaves version 4.
    assert all(before[k] == 3 and after[k] == 4 for k in moved)


@pytest.mark.parametrize("weights", [(100, 0), (0, 100)])
def test_a_zero_weight_arm_gets_nothing(weights: tuple[int, int]) -> None:
    arms = (Arm(3, weights[0]), Arm(4, weights[1]))
    expected = 3 if weights[0] else 4
    rng = random.Random(5)
    assert {choose_arm("m", arms, None, rng) for _ in range(500)} == {expected}


def test_the_same_key_lands_differently_per_model() -> None:
    arms = (Arm(1, 50), Arm(2, 50))
    keys = [str(i) for i in range(400)]
    a = [choose_arm("churn", arms, k, random.Random(0)) for k in keys]
    b = [choose_arm("fraud", arms, k, random.Random(0)) for k in keys]
    assert a != b
