"""The collector in serving processes: start-up frozen, young collections rarer."""

from __future__ import annotations

import gc
import subprocess
import sys
from pathlib import Path

import httpx
import pandas as pd
import pytest

from pointsman.api.app import build_app
from pointsman.project import Project
from pointsman.registry import Submission
from pointsman.runners.heap import YOUNG_THRESHOLD
from tests.conftest import admin_headers

pytestmark = pytest.mark.anyio

PROBE = """
import gc


class HeapProbe:
    # Answers, for each row, the runner's young threshold, or -1 if nothing is frozen.
    def predict(self, frame):
        value = gc.get_threshold()[0] if gc.get_freeze_count() > 0 else -1
        return [float(value)] * len(frame)
"""


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def test_settling_freezes_what_exists_and_raises_only_the_young_threshold() -> None:
    script = (
        "import gc; from pointsman.runners.heap import settle_heap\n"
        "gc.set_threshold(700, 11, 12); before = len(gc.get_objects()); settle_heap()\n"
        "print(gc.get_threshold(), gc.get_freeze_count() >= before)\n"
        "gc.set_threshold(50_000, 11, 12); settle_heap(); print(gc.get_threshold()[0])\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout.split("\n")
    assert out[0] == f"({YOUNG_THRESHOLD}, 11, 12) True"
    assert out[1] == "50000"  # a higher threshold someone chose is kept


async def test_a_served_runner_and_the_http_worker_settle_their_heaps(
    project: Project, tmp_path: Path
) -> None:
    source, data = tmp_path / "probe.py", tmp_path / "xy.csv"
    source.write_text(PROBE)
    pd.DataFrame({"x": [1.0, 2.0, 3.0], "y": [0.0, 1.0, 0.0]}).to_csv(data, index=False)
    project.registry.register(
        Submission(model="probe", path=source, entrypoint="HeapProbe", training_data=data,
                   target="y", user="t")
    )  # fmt: skip
    project.routes.deploy("probe", 1, "t")
    headers = admin_headers(project)
    gc.set_threshold(700)  # as a fresh interpreter starts
    app = build_app(project.settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://t",
            headers=headers,
        ) as client,
    ):
        assert gc.get_threshold()[0] == YOUNG_THRESHOLD  # this process serves HTTP
        r = await client.post("/v1/models/probe/predict", json={"rows": [{"x": 2.0}]})
        assert r.status_code == 200, r.text
        assert r.json()["predictions"] == [float(YOUNG_THRESHOLD)]  # the runner's
