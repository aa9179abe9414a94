"""The request path's own values: arm failures, payload decoding per signature, stats per run."""

from __future__ import annotations

from collections.abc import AsyncIterator

import orjson
import pytest

from pointsman.errors import (
    InputNotComputable,
    InputRejected,
    ModelFailed,
    ModelNotReady,
    ModelTimeout,
    RunnerFailed,
    RunnerTimeout,
)
from pointsman.pipeline import ArmFailure
from pointsman.project import Project
from pointsman.protocols import Payload, native
from pointsman.registry import VersionRecord
from pointsman.routing import Arm, Policy
from pointsman.runners import RunnerSpec
from pointsman.runners.client import RunnerFault
from pointsman.types import ColumnSpec, Outcome, Signature
from pointsman.validation.policy import ValidationPolicy
from tests.routing.test_traffic import family, frame_of
from tests.serving import Serving, serving

__all__ = ["family"]
pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def served(family: Project) -> AsyncIterator[Serving]:
    async with serving(family) as served:
        yield served


SPEC = RunnerSpec(timeout_s=2.0)


@pytest.mark.parametrize(
    ("exc", "timeout_ms", "reason", "detail", "error", "says"),
    [
        (RunnerFault("timeout", "late"), 200, "timeout", "timed out after 200 ms", ModelTimeout,
         "200 ms"),
        (RunnerFault("timeout", "late"), None, "timeout", "ran past its runner time limit of 2 s",
         RunnerTimeout, "time limit of 2 s"),
        (RunnerFault("model_error", "boom", "ValueError"), None, "error", "raised ValueError",
         ModelFailed, "raised ValueError"),
        (RunnerFault("memory", "ran out of memory (limit 1 GiB)"), None, "limit",
         "ran out of memory (limit 1 GiB)", RunnerFailed, "limit 1 GiB"),
        (RunnerFault("crashed", "gone"), None, "crashed", "its runner crashed", RunnerFailed,
         "crashed"),
        (RunnerFault("not_ready", "no runner is up yet"), None, "not_ready",
         "not ready: no runner is up yet", ModelNotReady, "no runner is up yet"),
        (ModelNotReady("m", "3", "gone"), None, "not_ready", "not ready: gone", ModelNotReady,
         "gone"),
    ],
)  # fmt: skip
def test_an_arm_failure_is_a_value_and_becomes_the_callers_error(
    exc: Exception,
    timeout_ms: int | None,
    reason: str,
    detail: str,
    error: type[Exception],
    says: str,
) -> None:
    failure = ArmFailure.of(exc, timeout_ms, SPEC)
    assert (failure.reason, failure.detail) == (reason, detail)
    version = VersionRecord.__new__(VersionRecord)
    object.__setattr__(version, "model", "m")
    object.__setattr__(version, "number", 3)
    raised = failure.to_error(version, "req-1", timeout_ms)
    assert isinstance(raised, error) and says in str(raised)
    assert str(raised).count("not ready") <= 1  # never "not ready: not ready: …"


def test_a_payload_is_decoded_once_per_distinct_signature() -> None:
    calls = []

    class Counting(type(native.CODEC)):  # type: ignore[misc]
        def decode(self, body, headers, signature):  # type: ignore[no-untyped-def]
            calls.append(signature.names)
            return super().decode(body, headers, signature)

    one = Signature((ColumnSpec("x", "double"),))
    same = Signature((ColumnSpec("x", "double"),), classes=(0, 1))  # other outputs, same inputs
    other = Signature((ColumnSpec("x", "long"),))
    payload = Payload(Counting(), orjson.dumps({"rows": [{"x": 3}]}), {})
    first = payload.frame_for(one)
    assert payload.frame_for(same) is first
    assert payload.frame_for(other).columns["x"].dtype.kind == "i"
    assert calls == [["x"], ["x"]]


async def test_the_outcome_says_what_ran(served: Serving) -> None:
    served.apply("m", Policy(arms=(Arm(3, 100),), fallback=1))
    outcome = Outcome("test")
    answer = await served.predict("m", frame_of(1007.0), "req-9", outcome=outcome)
    assert (answer.version, answer.role) == (1, "fallback")
    assert (outcome.model, outcome.version, outcome.role) == ("m", 1, "fallback")
    assert outcome.rows == 1 and outcome.model_s is not None and outcome.request_id == "req-9"
    assert outcome.route_revision == answer.route_revision


async def test_each_arm_run_is_booked_once(served: Serving) -> None:
    """A refused request, a flagged one, a failure that fell back: requests, invalid, errors."""
    rules = ValidationPolicy(mode="flag", coerce="reject")
    served.apply("m", Policy(arms=(Arm(3, 100),), fallback=1, validation=rules))
    stats = served.pipeline.stats
    revision = served.catalog.get_route("m").revision
    target = served.catalog.target("m")
    text = Payload(native.CODEC, orjson.dumps({"rows": [{"x": "5"}]}), {})
    with pytest.raises(InputRejected):  # a number sent as text: coerce=reject refuses it
        await served.pipeline.predict(target, text, Outcome("test"))
    await served.predict("m", frame_of(6000.0))  # out of range (flagged), answered
    await served.predict("m", frame_of(1007.0))  # v3 raises on clean input: v1 answers
    with pytest.raises(InputNotComputable):  # v3 raises on a flagged row: the caller's fault
        await served.predict("m", frame_of(9007.0))
    await served.predict("m", frame_of(12.0))
    primary = stats.cells[("m", revision, 3, "primary")]
    fallback = stats.cells[("m", revision, 1, "fallback")]
    assert (primary.requests, primary.invalid, primary.errors, primary.fallbacks) == (5, 3, 1, 1)
    assert (fallback.requests, fallback.errors) == (1, 0)
    assert sum(primary.latency) == 3  # neither the refused request nor the input's fault
