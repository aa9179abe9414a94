"""The OpenAPI document asked with a key: each deployed model's predict paths in every
protocol, and each of its versions' pinned paths, with the request body its decoders check
and examples it answers."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import joblib
import jsonschema
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from pointsman.api.app import build_app
from pointsman.project import Project
from pointsman.registry import Submission
from tests.conftest import IRIS_COLUMNS, admin_headers, churn_rows

pytestmark = pytest.mark.anyio

CHURN = list(churn_rows(1)[0])
NARROW = IRIS_COLUMNS[:3]  # iris v2 reads three columns: a signature of its own
PINNED = ("/v1/models/{m}/versions/{v}/predict", "/v1/models/{m}/versions/{v}:predict",
          "/v2/models/{m}/versions/{v}/infer")  # fmt: skip
OWN = ("/v1/models/{m}/predict", "/v1/models/{m}:predict", "/v2/models/{m}/infer",
       "/v1/models/{m}/invocations")  # fmt: skip


@pytest.fixture
def narrow_iris(served: Project, iris_files: tuple[Path, Path], tmp_path: Path) -> int:
    """Iris v2, registered and not routed: fitted on three of iris's four columns."""
    data = pd.read_csv(iris_files[1])[[*NARROW, "species"]]
    path, csv = tmp_path / "narrow.joblib", tmp_path / "narrow.csv"
    joblib.dump(LogisticRegression(max_iter=500).fit(data[NARROW], data["species"]), path)
    data.to_csv(csv, index=False)
    record, _ = served.registry.register(
        Submission(model="iris", path=path, training_data=csv, target="species", user="t")
    )
    return record.number


def resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """`schema`, or the component its $ref names."""
    ref = schema.get("$ref")
    if ref is None:
        return schema
    return document["components"]["schemas"][ref.rsplit("/", 1)[1]]


def inline(document: dict[str, Any], schema: Any) -> Any:
    """`schema` with each component it refers to written in place."""
    if isinstance(schema, list):
        return [inline(document, s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    if "$ref" in schema:
        return inline(document, resolve(document, schema))
    return {k: inline(document, v) for k, v in schema.items()}


def body(document: dict[str, Any], path: str, media: str = "application/json") -> Any:
    return document["paths"][path]["post"]["requestBody"]["content"][media]


def form(schema: dict[str, Any], key: str) -> dict[str, Any]:
    """The form of an anyOf body that carries `key`."""
    (found,) = [f for f in schema.get("anyOf", [schema]) if key in f.get("required", [])]
    return found["properties"][key]


async def test_each_model_has_its_predict_paths_with_its_inputs(client: httpx.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    rows = form(body(document, "/v1/models/churn/predict")["schema"], "rows")
    row = resolve(document, rows["items"])
    assert row["required"] == CHURN and row["additionalProperties"] is False
    assert row["properties"]["tenure_months"]["type"] == "integer"
    assert row["properties"]["tenure_months"]["maximum"] == 2**63 - 1
    assert row["properties"]["plan"]["type"] == "string" and rows["minItems"] == 1
    v1 = body(document, "/v1/models/churn:predict")["schema"]
    assert resolve(document, form(v1, "instances")["anyOf"][0]["items"]) == row
    assert form(v1, "inputs")["required"] == CHURN
    v2 = form(body(document, "/v2/models/churn/infer")["schema"], "inputs")
    for n, batch in zip((1, 2), v2["anyOf"], strict=True):
        tensors = batch["prefixItems"]
        assert [t["properties"]["name"]["const"] for t in tensors] == CHURN
        assert tensors[0]["properties"]["datatype"]["const"] == "INT64"
        assert tensors[0]["properties"]["shape"]["enum"] == [[n], [n, 1]]
        assert tensors[0]["properties"]["data"]["maxItems"] == n
    mlflow = body(document, "/v1/models/churn/invocations")["schema"]
    assert resolve(document, form(mlflow, "dataframe_records")["items"]) == row
    assert form(mlflow, "dataframe_split")["properties"]["columns"]["enum"] == [CHURN, None]
    assert form(mlflow, "inputs")["required"] == CHURN
    for code in ("401", "404", "405", "413", "422", "500"):
        assert code in document["paths"]["/v1/models/churn/predict"]["post"]["responses"]


async def test_mlflow_csv_is_documented_as_text_with_the_signature_as_header(
    client: httpx.AsyncClient,
) -> None:
    document = (await client.get("/openapi.json")).json()
    csv = body(document, "/v1/models/iris/invocations", "text/csv")
    assert csv["schema"]["type"] == "string"
    assert csv["example"].splitlines()[0] == ",".join(IRIS_COLUMNS)
    assert re.search(csv["schema"]["pattern"], csv["example"])
    assert not re.search(csv["schema"]["pattern"], "sepal_length\n5.1\n")


async def test_a_pinned_version_documents_its_own_signature(
    narrow_iris: int, client: httpx.AsyncClient
) -> None:
    document = (await client.get("/openapi.json")).json()
    paths = document["paths"]
    for template in PINNED:
        assert template.format(m="iris", v=1) in paths
        assert template.format(m="churn", v=2) in paths  # registered, not routed: pinnable
    own = form(body(document, "/v1/models/iris/predict")["schema"], "rows")
    pinned = form(
        body(document, f"/v1/models/iris/versions/{narrow_iris}/predict")["schema"], "rows"
    )
    assert resolve(document, own["items"])["required"] == IRIS_COLUMNS
    assert resolve(document, pinned["items"])["required"] == NARROW
    v2 = form(body(document, f"/v2/models/iris/versions/{narrow_iris}/infer")["schema"], "inputs")
    assert [t["properties"]["name"]["const"] for t in v2["anyOf"][0]["prefixItems"]] == NARROW
    v1 = body(document, f"/v1/models/iris/versions/{narrow_iris}:predict")["schema"]
    assert form(v1, "inputs")["required"] == NARROW


async def test_every_documented_example_is_valid_and_answered(
    narrow_iris: int, client: httpx.AsyncClient
) -> None:
    document = (await client.get("/openapi.json")).json()
    posted = 0
    for model, versions in (("churn", (1, 2)), ("iris", (1, narrow_iris))):
        paths = [p.format(m=model) for p in OWN]
        paths += [p.format(m=model, v=v) for p in PINNED for v in versions]
        for path in paths:
            content = document["paths"][path]["post"]["requestBody"]["content"]
            for example in content["application/json"]["examples"].values():
                schema = inline(document, content["application/json"]["schema"])
                jsonschema.Draft202012Validator(schema).validate(example["value"])
                r = await client.post(path, json=example["value"])
                assert r.status_code == 200, (path, example, r.text)
                posted += 1
            if "text/csv" in content:
                csv = content["text/csv"]
                assert re.search(csv["schema"]["pattern"], csv["example"])
                headers = {"content-type": "text/csv"}
                r = await client.post(path, content=csv["example"], headers=headers)
                assert r.status_code == 200, (path, csv["example"], r.text)
                posted += 1
    assert posted == 2 * (2 + 2 + 1 + 4 + 1) + 2 * 2 * (2 + 2 + 1)


async def test_templated_paths_name_none_of_the_models_with_paths_of_their_own(
    client: httpx.AsyncClient,
) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    for template in ("/v1/models/{model}/predict", "/v1/models/{model}/versions/{version}/predict"):
        (model, *_) = paths[template]["post"]["parameters"]
        assert model["schema"]["not"] == {"enum": ["churn", "iris"]}
    generic = paths["/v1/models/{model}/predict"]["post"]["requestBody"]["content"]
    assert len(generic["application/json"]["schema"]["anyOf"]) == 2  # rows, or columns + data
    # Two models and no default_model: bare /invocations keeps the generic MLflow body.
    bare = paths["/invocations"]["post"]["requestBody"]["content"]
    assert "anyOf" in bare["application/json"]["schema"] and "text/csv" in bare


async def test_without_a_key_the_document_names_no_model(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json", headers={"Authorization": ""})).json()["paths"]
    assert not [p for p in paths if "churn" in p or "iris" in p]


async def test_a_model_whose_versions_left_the_snapshot_is_left_out(served: Project) -> None:
    # The catalog as a refresh may leave it mid-undeploy: churn's route without its versions.
    headers = admin_headers(served)  # before the app: no store change once it runs
    app = build_app(served.settings)
    async with app.router.lifespan_context(app):
        catalog = app.state.catalog
        versions = {m: v for m, v in catalog.snapshot.versions.items() if m != "churn"}
        catalog.snapshot = replace(catalog.snapshot, versions=versions)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://p") as client:
            answer = await client.get("/openapi.json", headers=headers)
    assert answer.status_code == 200
    paths = answer.json()["paths"]
    assert "/v1/models/iris/versions/1/predict" in paths
    assert not [p for p in paths if "/churn" in p]
