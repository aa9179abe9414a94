"""The OpenAPI document asked with a key: each deployed model's predict paths in every
protocol, with the request body its decoders check."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import churn_rows

pytestmark = pytest.mark.anyio

CHURN = list(churn_rows(1)[0])


async def test_each_model_has_its_predict_paths_with_its_inputs(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    body = paths["/v1/models/churn/predict"]["post"]["requestBody"]["content"]
    rows = body["application/json"]["schema"]["properties"]["rows"]
    row = rows["items"]
    assert row["required"] == CHURN and row["additionalProperties"] is False
    assert row["properties"]["tenure_months"]["type"] == "integer"
    assert row["properties"]["tenure_months"]["maximum"] == 2**63 - 1
    assert row["properties"]["plan"]["type"] == "string" and rows["minItems"] == 1
    v1 = paths["/v1/models/churn:predict"]["post"]["requestBody"]["content"]["application/json"]
    assert v1["schema"]["properties"]["instances"]["items"] == row
    v2 = paths["/v2/models/churn/infer"]["post"]["requestBody"]["content"]["application/json"]
    tensors = v2["schema"]["properties"]["inputs"]["prefixItems"]
    assert [t["properties"]["name"]["const"] for t in tensors] == CHURN
    assert tensors[0]["properties"]["datatype"]["const"] == "INT64"
    mlflow = paths["/v1/models/churn/invocations"]["post"]["requestBody"]["content"]
    assert mlflow["application/json"]["schema"]["properties"]["dataframe_records"]["items"] == row
    for code in ("401", "404", "405", "413", "422", "500"):
        assert code in paths["/v1/models/churn/predict"]["post"]["responses"]


async def test_templated_paths_name_none_of_the_models_with_paths_of_their_own(
    client: httpx.AsyncClient,
) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    (model,) = paths["/v1/models/{model}/predict"]["post"]["parameters"]
    assert model["schema"]["not"] == {"enum": ["churn", "iris"]}
    generic = paths["/v1/models/{model}/predict"]["post"]["requestBody"]["content"]
    assert len(generic["application/json"]["schema"]["anyOf"]) == 2  # rows, or columns + data
    # Two models and no default_model: bare /invocations keeps the generic MLflow body.
    bare = paths["/invocations"]["post"]["requestBody"]["content"]
    assert "anyOf" in bare["application/json"]["schema"] and "text/csv" in bare


async def test_the_documented_example_is_answered(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    content = paths["/v1/models/churn/predict"]["post"]["requestBody"]["content"]
    r = await client.post("/v1/models/churn/predict", json=content["application/json"]["example"])
    assert r.status_code == 200, r.text
