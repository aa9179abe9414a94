"""Rows per request (422) and request time (504), in every protocol's error shape."""

from __future__ import annotations

import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pandas as pd
import pytest

from pointsman.api.app import build_app
from pointsman.project import Project
from pointsman.registry import Submission
from pointsman.settings import load_settings
from tests.conftest import IRIS_COLUMNS, admin_headers

pytestmark = pytest.mark.anyio

ROW = dict(zip(IRIS_COLUMNS, [5.1, 3.5, 1.4, 0.2], strict=True))


@pytest.fixture
async def limited(served: Project, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """At most 3 rows per request and 0.3 s per request; `slow` sleeps 2 s per call."""
    data = tmp_path / "x.csv"
    pd.DataFrame({"x": [1.0, 2.0, 3.0], "y": [0, 1, 0]}).to_csv(data, index=False)
    source = tmp_path / "slow.py"
    source.write_text(
        textwrap.dedent(
            """
            import time

            class Slow:
                def predict(self, frame):
                    if (frame["x"] == 7).any():
                        time.sleep(2)
                    return frame["x"] * 2
            """
        )
    )
    served.registry.register(
        Submission(model="slow", path=source, entrypoint="Slow", training_data=data, target="y")
    )
    served.routes.deploy("slow", 1, "t")
    settings = load_settings(
        served.settings.project_path(),
        max_rows_per_request=3,
        request_timeout_s=0.3,
    )
    app = build_app(settings)
    headers = admin_headers(served)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://l", headers=headers
        ) as client:
            yield client


async def test_too_many_rows_is_422_naming_the_limit(limited: httpx.AsyncClient) -> None:
    r = await limited.post("/v1/models/iris/predict", json={"rows": [ROW] * 3})
    assert r.status_code == 200, r.text
    r = await limited.post("/v1/models/iris/predict", json={"rows": [ROW] * 4})
    assert r.status_code == 422 and r.json()["code"] == "too_many_rows"
    assert "4 rows, more than the 3" in r.json()["error"]
    r = await limited.post("/v1/models/iris:predict", json={"instances": [ROW] * 4})
    assert r.status_code == 422 and "max_rows_per_request" in r.json()["error"]
    inputs = [{"name": c, "shape": [4], "datatype": "FP64", "data": [1.0] * 4} for c in ROW]
    r = await limited.post("/v2/models/iris/infer", json={"inputs": inputs})
    assert r.status_code == 422 and r.json()["error"]
    r = await limited.post(
        "/v1/models/iris/invocations", json={"dataframe_records": [ROW] * 4}
    )  # in MLflow's error shape
    assert r.status_code == 422 and r.json()["error_code"] == "BAD_REQUEST"


async def test_past_the_request_time_the_caller_gets_504(limited: httpx.AsyncClient) -> None:
    r = await limited.post("/v1/models/slow/predict", json={"rows": [{"x": 1.0}]})
    assert r.status_code == 200, r.text
    r = await limited.post("/v1/models/slow/predict", json={"rows": [{"x": 7.0}]})
    assert r.status_code == 504 and r.json()["code"] == "request_timeout"
    assert "0.3 s (request_timeout_s)" in r.json()["error"]
    assert r.headers["x-request-id"] in r.json()["error"]
