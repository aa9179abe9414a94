"""Traffic policies on the request path: A/B, keys, fallback, timeout, breaker, shadows, canary."""

from __future__ import annotations

import asyncio
import contextlib
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import pandas as pd
import pytest

from pointsman.errors import ModelFailed, ModelTimeout
from pointsman.project import Project
from pointsman.registry import Submission
from pointsman.routing import Arm, Policy, Shadow
from pointsman.routing.shadow import ShadowQueue
from pointsman.routing.stats import window
from pointsman.types import ColumnSpec, Fallback, Frame, Prediction, Signature
from pointsman.validation.signature import build_frame, records_to_columns
from tests.serving import Serving, serving

pytestmark = pytest.mark.anyio

# version → (delay seconds, fails on 10 % of request rows, flips the label)
FAMILY = {
    1: (0.003, False, False),  # baseline
    2: (0.003, False, False),  # a healthy twin
    3: (0.003, True, False),  # errors on 10 % of requests
    4: (0.025, False, False),  # 8x slower: p99 buckets stay apart despite one slow baseline call
    5: (0.3, False, False),  # sleeps past any sensible timeout
    6: (0.0, False, True),  # disagrees with everyone
}
SOURCE = """
import time
import numpy as np

class Model:
    classes_ = [0, 1]

    def predict(self, frame):
        time.sleep({delay})  # version {version}
        x = frame["x"].to_numpy()
        if {fails} and np.any((x >= 1000) & (x % 10 == 7)):
            raise ValueError("boom")
        label = (x % 2 == 0).astype(int)
        return 1 - label if {flips} else label
"""


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def family(project: Project, tmp_path: Path) -> Project:
    data = tmp_path / "x.csv"
    # The requests' x (1000 and up) lie within the training range: a version raising on them
    # fails on clean input, its own error (one raising on out-of-range rows is the caller's).
    xs = [float(i) for i in range(0, 5000, 50)]
    pd.DataFrame({"x": xs, "y": [i % 2 for i in range(100)]}).to_csv(data, index=False)
    for version, (delay, fails, flips) in FAMILY.items():
        source = tmp_path / f"m{version}.py"
        code = SOURCE.format(delay=delay, version=version, fails=fails, flips=flips)
        source.write_text(textwrap.dedent(code))
        record, _ = project.registry.register(
            Submission(model="m", path=source, entrypoint="Model", training_data=data, target="y")
        )
        assert record.number == version
    return project


@pytest.fixture
async def served(family: Project) -> AsyncIterator[Serving]:
    async with serving(family) as served:
        yield served


def frame_of(x: float, key: str | None = None) -> Frame:
    rows = [{"x": x} if key is None else {"x": x, "customer_id": key}]
    signature = Signature((ColumnSpec("x", "double"),), passthrough=("customer_id",))
    raw, n, problems = records_to_columns(rows, signature)
    return build_frame(signature, raw, n, problems)


def apply(served: Serving, policy: Policy) -> None:
    served.apply("m", policy)


async def ask(served: Serving, x: float, key: str | None = None) -> Prediction:
    return await served.predict("m", frame_of(x, key))


async def test_ab_split_sends_traffic_to_both_arms(served: Serving) -> None:
    apply(served, Policy(arms=(Arm(1, 70), Arm(2, 30))))
    answers = [(await ask(served, 1000.0 + i)).version for i in range(200)]
    assert set(answers) == {1, 2} and 0.15 < answers.count(2) / 200 < 0.45


async def test_routing_key_in_the_payload_is_sticky_and_not_a_model_input(
    served: Serving,
) -> None:
    apply(served, Policy(arms=(Arm(1, 50), Arm(2, 50)), key="customer_id"))
    seen = {}
    for round_ in range(3):
        for k in range(30):
            answer = await ask(served, float(1000 + round_), key=f"c{k}")
            assert seen.setdefault(k, answer.version) == answer.version
    assert set(seen.values()) == {1, 2}


async def test_fallback_answers_when_the_primary_raises(served: Serving) -> None:
    apply(served, Policy(arms=(Arm(3, 100),), fallback=1))
    answer = await ask(served, 1007.0)
    assert answer.version == 1 and answer.role == "fallback"
    assert answer.fallback == Fallback(3, "error", "raised ValueError")
    assert (await ask(served, 1008.0)).version == 3


async def test_fallback_answers_when_the_primary_sleeps_past_the_timeout(
    served: Serving,
) -> None:
    apply(served, Policy(arms=(Arm(5, 100),), fallback=1, timeout_ms=100))
    answer = await ask(served, 1000.0)
    assert answer.version == 1 and answer.fallback is not None
    assert answer.fallback.reason == "timeout"
    assert "timed out after 100 ms" in answer.fallback.detail
    assert answer.latency_s < 0.3


async def test_without_a_fallback_errors_and_timeouts_reach_the_caller(
    served: Serving,
) -> None:
    apply(served, Policy(arms=(Arm(3, 100),)))
    with pytest.raises(ModelFailed):
        await ask(served, 1017.0)
    apply(served, Policy(arms=(Arm(5, 100),), timeout_ms=50))
    with pytest.raises(ModelTimeout, match="50 ms"):
        await ask(served, 1000.0)


async def test_breaker_opens_after_failures_and_probes_after_the_pause(served: Serving) -> None:
    apply(served, Policy(arms=(Arm(3, 100),), fallback=1, breaker_failures=3, breaker_pause_s=0.2))
    for _ in range(3):
        fallback = (await ask(served, 1007.0)).fallback
        assert fallback is not None and fallback.detail == "raised ValueError"
    # Open: even a good input is not sent to version 3.
    open_ = (await ask(served, 1008.0)).fallback
    assert open_ is not None and open_.reason == "circuit_open"
    assert open_.detail == "circuit open (last failure: raised ValueError)"  # why, not only that
    await asyncio.sleep(0.25)
    probe = await ask(served, 1008.0)  # the probe succeeds and closes the breaker
    assert probe.version == 3 and probe.role == "primary"
    assert served.pipeline.breakers[("m", 3)].state == "closed"


async def test_a_shadow_changes_no_response_and_its_agreement_is_recorded(
    served: Serving,
) -> None:
    apply(served, Policy(arms=(Arm(1, 100),)))
    plain = [(await ask(served, float(1000 + i))).outputs.predictions for i in range(10)]
    apply(served, Policy(arms=(Arm(1, 100),), shadows=(Shadow(6), Shadow(5))))
    shadowed = [await ask(served, float(1000 + i)) for i in range(10)]
    assert [a.outputs.predictions for a in shadowed] == plain
    assert all(a.version == 1 and a.latency_s < 0.1 for a in shadowed)  # v5 sleeps 0.3 s
    shadows = served.pipeline.shadows
    assert shadows is not None
    while shadows.queue.qsize() or shadows.done + shadows.dropped < 20:
        await asyncio.sleep(0.05)
    served.pipeline.stats.flush(served.project.engine)
    route = served.catalog.snapshot.routes["m"]
    cells = window(served.project.engine, "m", [route.revision])
    assert cells[(6, "shadow")].compared == 10 and cells[(6, "shadow")].agreed == 0
    assert cells[(5, "shadow")].compared == 10 and cells[(5, "shadow")].agreement == 1.0


async def test_a_full_shadow_queue_drops_and_counts(family: Project) -> None:
    async with serving(family, shadow_drain=False) as served:  # nobody drains it
        served.pipeline.shadows = ShadowQueue(2)
        apply(served, Policy(arms=(Arm(1, 100),), shadows=(Shadow(5),)))
        for i in range(10):
            assert (await ask(served, float(1000 + i))).version == 1
        assert served.pipeline.shadows.dropped == 8


async def drive_canary(served: Serving, candidate: int, requests: int) -> str:
    routes = served.project.routes
    routes.start_canary("m", candidate, [20, 50, 100], "test", hold_requests=40, hold_s=0)
    served.catalog.refresh()
    for i in range(requests):
        with contextlib.suppress(ModelFailed):  # no fallback here: the caller sees errors
            await ask(served, float(1000 + i))
        if i % 25 == 24:
            served.pipeline.stats.flush(served.project.engine)
            if served.canary.tick():
                served.catalog.refresh()
            canary = served.catalog.snapshot.routes["m"].policy.canary
            if canary is None or not canary.is_running:
                break
    canary = served.catalog.snapshot.routes["m"].policy.canary
    assert canary is not None
    return f"{canary.state}: {canary.reason}"


async def test_canary_advances_a_healthy_candidate_to_sole_primary(served: Serving) -> None:
    apply(served, Policy(arms=(Arm(1, 100),), fallback=6))
    outcome = await drive_canary(served, 2, 2000)
    assert outcome.startswith("promoted"), outcome
    route = served.catalog.snapshot.routes["m"]
    assert route.policy.arms == (Arm(2, 100),) and route.policy.fallback == 6
    reasons = [r.reason for r in served.project.routes.history("m")]
    assert any("advanced to 50 %" in r for r in reasons)


async def test_canary_rolls_back_a_candidate_erroring_on_10_percent(served: Serving) -> None:
    apply(served, Policy(arms=(Arm(1, 100),)))
    outcome = await drive_canary(served, 3, 2000)
    assert outcome.startswith("rolled_back: error rate"), outcome
    assert served.catalog.snapshot.routes["m"].policy.arms == (Arm(1, 100),)


async def test_canary_rolls_back_a_candidate_8x_slower(served: Serving) -> None:
    apply(served, Policy(arms=(Arm(1, 100),)))
    outcome = await drive_canary(served, 4, 2000)
    assert outcome.startswith("rolled_back: p99"), outcome
