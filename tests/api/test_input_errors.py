"""A model that raises on the caller's bad input answers the caller's 422, not a 500."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

from pointsman.api.app import build_app
from pointsman.project import Project
from pointsman.registry import Submission
from tests.conftest import admin_headers, churn_rows

pytestmark = pytest.mark.anyio

COLUMNS = list(churn_rows(1)[0])
# Finite numbers the demo's gradient-boosting version (v2) cannot compute: scikit-learn reads
# them as float32, which overflows to infinity, and raises.
EXTREMES = [1e308, -1e308, 1e300]


def bodies(row: dict[str, Any]) -> list[tuple[str, Any, int]]:
    """One row in every protocol's shape, routed and pinned, with the status a 4xx is."""
    values = [row[c] for c in COLUMNS]
    v2 = {
        "inputs": [
            {
                "name": c,
                "shape": [1],
                "datatype": "BYTES" if isinstance(row[c], str) else "FP64",
                "data": [row[c]],
            }
            for c in COLUMNS
        ]
    }
    return [
        ("/v1/models/churn/predict", {"rows": [row]}, 422),
        ("/v1/models/churn/versions/2/predict", {"rows": [row]}, 422),
        ("/v1/models/churn:predict", {"instances": [row]}, 422),
        ("/v1/models/churn/versions/2:predict", {"instances": [values]}, 422),
        ("/v2/models/churn/infer", v2, 422),
        ("/v2/models/churn/versions/2/infer", v2, 422),
        # MLflow answers every input error with 400 INVALID_PARAMETER_VALUE, not 422.
        ("/v1/models/churn/invocations", {"dataframe_records": [row]}, 400),
        (
            "/v1/models/churn/invocations",
            {"dataframe_split": {"columns": COLUMNS, "data": [values]}},
            400,
        ),
    ]


@pytest.fixture
def gbm(served: Project, churn_files: list[Any]) -> Project:
    """churn v2 (gradient boosting) deployed under the default `flag` policy."""
    served.routes.deploy("churn", 2, "test")
    return served


@pytest.mark.parametrize("value", EXTREMES)
async def test_a_value_the_model_cannot_compute_is_a_422_naming_field_value_and_range(
    gbm: Project, client: httpx.AsyncClient, value: float
) -> None:
    row = {**churn_rows(1)[0], "monthly_charges": value}
    for path, body, status in bodies(row):
        r = await client.post(path, json=body)
        assert r.status_code == status, (path, r.text)
        answer = r.json()
        assert answer["code"] == "input_not_computable", (path, answer)
        error = answer["error"]
        assert "'monthly_charges'" in error and repr(value) in error, (path, error)
        assert "training -1.08 to 119.14" in error, error  # the training range
        assert answer["request_id"] in error and "Traceback" not in r.text
        assert answer["findings"][0]["feature"] == "monthly_charges"
        assert answer["findings"][0]["rule"] == "out_of_range"


async def test_extreme_values_in_several_fields_name_each_field(
    gbm: Project, client: httpx.AsyncClient
) -> None:
    row = {**churn_rows(1)[0], "monthly_charges": 1e300, "age": 1e300, "tenure_months": -1e308}
    for path, body, status in bodies(row):
        r = await client.post(path, json=body)
        assert r.status_code == status, (path, r.text)
        error = r.json()["error"]
        # The long columns cannot hold 1e300 at all: refused by the signature, before the model.
        for field in ("age", "tenure_months"):
            assert f"'{field}'" in error, (path, error)


async def requests_by_status(client: httpx.AsyncClient) -> dict[str, float]:
    """churn v2's routed native requests so far, per status class (the metrics are global)."""
    out: dict[str, float] = {}
    for line in (await client.get("/metrics")).text.splitlines():
        if line.startswith("pointsman_inference_requests_total{") and (
            'model_name="churn",model_version="2",protocol="native",role="primary"' in line
        ):
            status = line.split('status="')[1][:3]
            out[status] = float(line.rsplit(" ", 1)[1])
    return out


async def test_the_422_is_a_client_error_in_the_metrics_and_not_the_versions(
    gbm: Project, client: httpx.AsyncClient
) -> None:
    before = await requests_by_status(client)
    row = {**churn_rows(1)[0], "monthly_charges": 1e308}
    for _ in range(3):
        assert (await client.post("/v1/models/churn/predict", json={"rows": [row]})).is_client_error
    after = await requests_by_status(client)
    assert after.get("4xx", 0) - before.get("4xx", 0) == 3
    assert after.get("5xx", 0) == before.get("5xx", 0)


MULTIPLIER = """
import numpy as np


class Multiplier:
    def predict(self, frame):
        product = frame["x"].to_numpy() * frame["y"].to_numpy()
        if not np.isfinite(product).all():
            raise ValueError("cannot use an infinite product")
        return product.tolist()
"""


async def test_infinity_computed_from_finite_values_in_range_is_a_422(
    project: Project, tmp_path: Path
) -> None:
    """Both values lie within the training range; their product overflows: the input's."""
    source, data = tmp_path / "multiplier.py", tmp_path / "xy.csv"
    source.write_text(MULTIPLIER)
    pd.DataFrame({"x": [1e200, 1.0, 3.0], "y": [1.0, 1e200, 2.0], "z": [0, 1, 0]}).to_csv(
        data, index=False
    )
    project.registry.register(
        Submission(model="mul", path=source, entrypoint="Multiplier", training_data=data,
                   target="z", user="t")
    )  # fmt: skip
    project.routes.deploy("mul", 1, "t")
    headers = admin_headers(project)
    app = build_app(project.settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://t", headers=headers
        ) as client,
    ):
        ok = await client.post("/v1/models/mul/predict", json={"rows": [{"x": 2.0, "y": 3.0}]})
        assert ok.json()["predictions"] == [6.0]
        r = await client.post("/v1/models/mul/predict", json={"rows": [{"x": 1e200, "y": 5e199}]})
        assert r.status_code == 422, r.text
        body = r.json()
        assert body["code"] == "input_not_computable" and "'x'" in body["error"], body
        assert body["findings"][0]["rule"] == "not_computable"
