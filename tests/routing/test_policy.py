"""Policies that cannot be served are refused with what to change."""

from __future__ import annotations

import pytest

from pointsman.errors import InvalidRoute
from pointsman.routing.policy import Arm, Canary, Policy, Shadow, check_policy


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        (Policy(arms=(Arm(1, 90), Arm(2, 20))), "must sum to 100, got 1=90, 2=20 (= 110)"),
        (Policy(arms=(Arm(9, 100),)), "version 9 does not exist (versions: 1, 2, 3)"),
        (Policy(arms=(Arm(1, 100),), shadows=(Shadow(1),)), "both a primary arm and a shadow"),
        (Policy(arms=(Arm(1, 100),), fallback=1), "fallback 1 is the only primary"),
        (Policy(arms=(Arm(1, 100),), shadows=(Shadow(2, 0),)), "must be in (0, 1]"),
        (Policy(arms=(Arm(1, 100),), timeout_ms=0), "timeout must be 1 ms"),
        (Policy(arms=()), "at least one primary arm"),
        (Policy(arms=(Arm(1, 50), Arm(1, 50))), "appears twice"),
    ],
)
def test_refusals_say_what_to_change(policy: Policy, message: str) -> None:
    with pytest.raises(InvalidRoute) as caught:
        check_policy(policy, "churn", [1, 2, 3])
    assert message in caught.value.message


def test_a_full_policy_round_trips_through_json() -> None:
    policy = Policy(
        arms=(Arm(1, 90), Arm(2, 10)),
        key="customer_id",
        shadows=(Shadow(3, 0.25),),
        fallback=3,
        timeout_ms=200,
        canary=Canary(candidate=2, baseline=1, steps=(10, 50, 100)),
    )
    check_policy(policy, "churn", [1, 2, 3])
    assert Policy.from_json(policy.to_json()) == policy
    assert policy.versions == [1, 2, 3]
