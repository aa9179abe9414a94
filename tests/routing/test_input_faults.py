"""Garbage from a client is the client's error: never the breaker's, a canary's or the version's."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from pointsman.errors import InputNotComputable, ModelFailed
from pointsman.project import Project
from pointsman.routing import Arm, Gates, Policy
from pointsman.routing.stats import window
from pointsman.types import Frame, Prediction
from pointsman.validation.signature import build_frame, records_to_columns
from tests.api.conftest import register_churn, register_flaky_churn
from tests.conftest import churn_rows
from tests.serving import Serving, serving

pytestmark = pytest.mark.anyio

CLEAN = churn_rows(400, seed=5)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def served(project: Project, churn_files: list[tuple[Path, Path]]) -> AsyncIterator[Serving]:
    """churn v1 (logistic regression) and v2 (gradient boosting, raises on 1e308) registered."""
    register_churn(project, churn_files)
    project.routes.deploy("churn", 1, "test")
    async with serving(project) as served:
        yield served


def frame_of(served: Serving, row: dict[str, object]) -> Frame:
    signature = served.catalog.snapshot.versions["churn"][1].signature
    raw, n, problems = records_to_columns([row], signature)
    return build_frame(signature, raw, n, problems)


async def ask(served: Serving, i: int) -> Prediction | Exception:
    """Every other request is garbage: 1e308 in a double column (flagged, and v2 raises)."""
    row = CLEAN[i % len(CLEAN)]
    if i % 2:
        row = {**row, "monthly_charges": 1e308 if i % 4 == 1 else -1e308}
    try:
        return await served.predict("churn", frame_of(served, row))
    except (InputNotComputable, ModelFailed) as exc:
        return exc


async def flood(served: Serving, requests: int, at_once: int = 40) -> list[Prediction | Exception]:
    """`requests` requests, `at_once` in flight: the runner merges them into batches."""
    out: list[Prediction | Exception] = []
    for start in range(0, requests, at_once):
        out += await asyncio.gather(*(ask(served, i) for i in range(start, start + at_once)))
    return out


async def test_a_garbage_flood_neither_opens_the_breaker_nor_counts_as_errors(
    served: Serving,
) -> None:
    served.apply("churn", Policy(arms=(Arm(2, 100),), fallback=1, breaker_failures=3))
    answers = await flood(served, 400)
    refused = [a for a in answers if isinstance(a, InputNotComputable)]
    assert len(refused) == 200 and "'monthly_charges'" in refused[0].message
    assert all(isinstance(a, Prediction) and a.fallback is None for a in answers[::2])
    assert served.pipeline.breakers["churn", 2].state == "closed"
    served.pipeline.stats.flush(served.project.engine)
    revision = served.catalog.snapshot.routes["churn"].revision
    cell = window(served.project.engine, "churn", [revision])[2, "primary"]
    assert (cell.requests, cell.errors, cell.fallbacks, cell.invalid) == (400, 0, 0, 200)


async def test_a_garbage_flood_does_not_roll_back_a_running_canary(served: Serving) -> None:
    routes = served.project.routes
    # The gates garbage could trip by being booked against the version: errors, fallbacks,
    # validation. (Latency is real work: the candidate, unlike the baseline, fails on the
    # garbage and runs it alone, which a loaded test machine makes a noisy p99 ratio.)
    gates = Gates(max_p99_ratio=1000.0)
    routes.start_canary("churn", 2, [50, 100], "test", hold_requests=1000, hold_s=0, gates=gates)
    served.catalog.refresh()
    await flood(served, 400)
    served.pipeline.stats.flush(served.project.engine)
    # Judged (the candidate has past the 100 requests its gates need), not rolled back, and
    # not advanced (it holds for 1000).
    assert served.canary.tick() == []
    canary = routes.get("churn").policy.canary
    assert canary is not None and canary.is_running, canary
    cells = window(served.project.engine, "churn", [routes.get("churn").revision])
    assert cells[2, "primary"].requests >= 100 and cells[2, "primary"].errors == 0


async def test_a_model_raising_on_clean_input_is_still_a_500_and_opens_the_breaker(
    served: Serving, project: Project, churn_files: list[tuple[Path, Path]], tmp_path: Path
) -> None:
    switch = tmp_path / "fail"
    flaky = register_flaky_churn(project, churn_files, switch)
    served.apply("churn", Policy(arms=(Arm(flaky, 100),), breaker_failures=3))
    switch.touch()
    for i in range(3):
        with pytest.raises(ModelFailed, match="request id"):
            await served.predict("churn", frame_of(served, CLEAN[i]))
    assert served.pipeline.breakers["churn", flaky].state == "open"
