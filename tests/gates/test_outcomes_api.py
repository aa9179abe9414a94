"""POST /v1/models/{m}/outcomes over the real app: scope, idempotence, clear 4xx."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI

from pointsman.auth import KeyBook
from pointsman.pipeline import Pipeline
from pointsman.project import Project
from tests.conftest import churn_rows

pytestmark = pytest.mark.anyio


def ship(client: httpx.AsyncClient) -> None:
    transport = client._transport
    assert isinstance(transport, httpx.ASGITransport) and isinstance(transport.app, FastAPI)
    pipeline: Pipeline = transport.app.state.pipeline
    assert pipeline.log is not None
    pipeline.log.ship()


@pytest.fixture
def labeller(served: Project) -> dict[str, str]:
    """Headers of a key that may only post outcomes of churn (made before the app starts)."""
    key, _ = KeyBook(served.engine).create("labeller", ["outcome:churn"], "test")
    return {"Authorization": f"Bearer {key}"}


async def test_a_labelling_key_posts_outcomes_once_and_again_without_effect(
    labeller: dict[str, str], client: httpx.AsyncClient
) -> None:
    for i in range(3):
        r = await client.post(
            "/v1/models/churn/predict", json={"rows": churn_rows(2, seed=i)},
            headers={"X-Request-ID": f"o{i}"},
        )  # fmt: skip
        assert r.status_code == 200
    ship(client)
    auth = labeller
    body = {
        "outcomes": [
            {"request_id": "o0", "row": 0, "outcome": 1},
            {"request_id": "o0", "row": 1, "outcome": 0},
            {"request_id": "later", "outcome": 1},
        ]
    }
    r = await client.post("/v1/models/churn/outcomes", json=body, headers=auth)
    assert r.status_code == 200, r.text
    assert r.json() | {"model": "churn"} == {
        "model": "churn", "stored": 3, "updated": 0, "unchanged": 0, "matched": 2,
        "waiting": 1, "by_key": 0,
    }  # fmt: skip
    again = await client.post("/v1/models/churn/outcomes", json=body, headers=auth)
    assert again.json()["unchanged"] == 3
    logged = (await client.get("/v1/predictions", params={"model": "churn"})).json()
    by_id = {r["request_id"]: r.get("outcomes") for r in logged["predictions"]}
    assert by_id == {"o0": {"0": 1, "1": 0}, "o1": None, "o2": None}
    other = await client.post("/v1/models/iris/outcomes", json=body, headers=auth)
    assert other.status_code == 403
    refused = await client.post(
        "/v1/models/churn/outcomes", json={"outcomes": [{"customer": 1, "outcome": 1}]},
        headers=auth,
    )  # fmt: skip
    assert refused.status_code == 400 and "--outcome-key" in refused.json()["error"]
    unknown = await client.post("/v1/models/nope/outcomes", json=body)
    assert unknown.status_code == 404
    quality = await client.get("/v1/admin/models/churn/quality", params={"since": "1h"})
    assert quality.status_code == 200, quality.text
    (group,) = quality.json()["groups"]
    assert group["labelled"] == 2 and group["version"] == 1 and group["role"] == "primary"
    assert group["kind"] == "classification" and 0 <= group["accuracy"] <= 1
    scraped = (await client.get("/metrics")).text
    assert (
        'pointsman_quality_labelled{model_name="churn",model_version="1",role="primary"} 2.0'
        in (scraped)
    )
    bad = await client.get("/v1/admin/models/churn/quality", params={"window": "soon"})
    assert bad.status_code == 400 and "window" in bad.json()["error"]
