"""Runners follow the routes: an unrouted version's runners finish what they hold and stop;
new limits roll out one runner at a time without a failed call."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pointsman.project import Project
from pointsman.registry import Submission
from pointsman.types import Frame
from pointsman.validation.signature import build_frame, records_to_columns
from tests.serving import Serving, serving

pytestmark = pytest.mark.anyio

SLOW = '''
import time


class Slow:
    """Answers 0 for every row; a row with x = 13 takes 1.5 s."""

    classes_ = [0, 1]

    def predict(self, frame):
        if (frame["x"] == 13).any():
            time.sleep(1.5)
        return [0] * len(frame)
'''


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def register_slow(project: Project, folder: Path) -> int:
    source, data = folder / "slow.py", folder / "slow.csv"
    source.write_text(SLOW + f"# {folder.name}\n")  # the same bytes would be the same version
    rng = np.random.default_rng(0)
    pd.DataFrame({"x": rng.random(40), "y": rng.integers(0, 2, 40)}).to_csv(data, index=False)
    record, _ = project.registry.register(
        Submission(model="slow", path=source, entrypoint="Slow", training_data=data,
                   target="y", user="t", note=str(time.time_ns()))
    )  # fmt: skip
    return record.number


def frame_of(served: Serving, x: float) -> Frame:
    signature = served.catalog.target("slow").signature
    columns, n, problems = records_to_columns([{"x": x}], signature)
    return build_frame(signature, columns, n, problems)


def runners_of(served: Serving, number: int) -> list[dict[str, object]]:
    state = served.catalog.run_dir.version_state("slow", number) or {}
    return list(state.get("runners") or [])


async def test_an_unrouted_version_finishes_its_call_then_stops(
    project: Project, tmp_path: Path
) -> None:
    first = register_slow(project, tmp_path)
    (tmp_path / "b").mkdir()
    second = register_slow(project, tmp_path / "b")
    assert second != first
    project.routes.deploy("slow", first, "t")
    project.settings = project.settings.model_copy(update={"runner_drain_s": 0.2})
    async with serving(project) as served:
        in_flight = asyncio.create_task(served.predict("slow", frame_of(served, 13.0)))
        await asyncio.sleep(0.3)  # the call is in v1's runner now
        await asyncio.to_thread(project.routes.deploy, "slow", second, "t")
        served.catalog.refresh()
        answer = await in_flight
        assert answer.version == first and list(answer.outputs.predictions) == [0]
        deadline = time.monotonic() + 10
        while runners_of(served, first):
            assert time.monotonic() < deadline, runners_of(served, first)
            await asyncio.sleep(0.05)
        assert (await served.predict("slow", frame_of(served, 0.5))).version == second


async def test_new_limits_roll_out_without_a_failed_call(project: Project, tmp_path: Path) -> None:
    number = register_slow(project, tmp_path)
    project.routes.deploy("slow", number, "t")
    project.runners.change("slow", None, {"replicas": 2}, "t")
    async with serving(project) as served:
        deadline = time.monotonic() + 30
        while sum(r["state"] == "ready" for r in runners_of(served, number)) < 2:
            assert time.monotonic() < deadline, runners_of(served, number)
            await asyncio.sleep(0.05)
        pids = {r["pid"] for r in runners_of(served, number)}
        await asyncio.to_thread(
            project.runners.change, "slow", None, {"memory_bytes": 1 << 30}, "t"
        )
        served.catalog.refresh()
        answered = 0
        deadline = time.monotonic() + 60
        while True:
            answer = await served.predict("slow", frame_of(served, 0.5))  # never fails
            answered += answer.version == number
            now = runners_of(served, number)
            fresh = [r for r in now if r["pid"] not in pids and r["state"] == "ready"]
            if len(now) == 2 and len(fresh) == 2:
                break
            assert time.monotonic() < deadline, now
            await asyncio.sleep(0.01)
        assert answered > 10
        spec = served.catalog.run_dir.version_state("slow", number)["spec"]  # type: ignore[index]
        assert spec["memory_bytes"] == 1 << 30


async def test_every_replica_is_linked_again_after_its_runner_restarts(
    project: Project, tmp_path: Path
) -> None:
    number = register_slow(project, tmp_path)
    project.routes.deploy("slow", number, "t")
    project.runners.change("slow", None, {"replicas": 2}, "t")
    async with serving(project) as served:
        pool = await served.catalog.pool_of(served.catalog.get_version("slow"))

        async def linked(pids: set[object]) -> None:
            """Both runners up with PIDs not in `pids`, and both linked by the link job (the
            surge runner's socket, for rollouts, stays unused)."""
            deadline = time.monotonic() + 30
            while True:
                now = runners_of(served, number)
                fresh = [r for r in now if r["state"] == "ready" and r["pid"] not in pids]
                await served.catalog.connect()  # what the worker's link job runs every 0.1 s
                links = [r.is_connected for r in pool.replicas]
                if len(fresh) == 2 and links == [True, True, False]:  # the last: surge runner's
                    return
                assert time.monotonic() < deadline, (now, links)
                await asyncio.sleep(0.05)

        await linked(set())
        killed = runners_of(served, number)[0]["pid"]
        os.kill(int(killed), signal.SIGKILL)  # type: ignore[call-overload]
        await linked({killed})
        assert (await served.predict("slow", frame_of(served, 0.5))).version == number
