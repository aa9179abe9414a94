"""Native, V1, V2 and MLflow predictions through the in-process app."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import IRIS_COLUMNS, churn_rows

pytestmark = pytest.mark.anyio

SETOSA = [5.1, 3.5, 1.4, 0.2]


async def test_native_rows_answer_with_labels_probabilities_and_version(
    client: httpx.AsyncClient,
) -> None:
    rows = churn_rows(3)
    r = await client.post("/v1/models/churn/predict", json={"rows": rows})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == "churn" and body["version"] == 1
    assert len(body["predictions"]) == 3 and set(body["predictions"]) <= {0, 1}
    assert all(abs(sum(p.values()) - 1) < 1e-9 for p in body["probabilities"])
    assert r.headers["x-request-id"] == body["request_id"]
    assert r.headers["x-model-version"] == "1"
    assert r.headers["content-type"] == "application/json"


async def test_native_columns_form_gives_the_same_answer_as_rows(client: httpx.AsyncClient) -> None:
    rows = churn_rows(4)
    columns = list(rows[0])
    by_rows = (await client.post("/v1/models/churn/predict", json={"rows": rows})).json()
    by_columns = (
        await client.post(
            "/v1/models/churn/predict",
            json={"columns": columns, "data": [[r[c] for c in columns] for r in rows]},
        )
    ).json()
    assert by_rows["predictions"] == by_columns["predictions"]
    assert by_rows["probabilities"] == by_columns["probabilities"]


async def test_caller_request_id_is_echoed(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/v1/models/iris/predict",
        json={"rows": [dict(zip(IRIS_COLUMNS, SETOSA, strict=True))]},
        headers={"X-Request-ID": "abc-123"},
    )
    assert r.headers["x-request-id"] == "abc-123"
    assert r.json()["request_id"] == "abc-123"
    assert r.json()["predictions"] == [0]


async def test_pinned_version_answers_although_not_routed(client: httpx.AsyncClient) -> None:
    rows = churn_rows(50)
    routed = (await client.post("/v1/models/churn/predict", json={"rows": rows})).json()
    pinned = (await client.post("/v1/models/churn/versions/2/predict", json={"rows": rows})).json()
    assert pinned["version"] == 2 and routed["version"] == 1
    # Two genuinely different models: their probabilities differ.
    assert routed["probabilities"] != pinned["probabilities"]


async def test_v1_instances_and_inputs(client: httpx.AsyncClient) -> None:
    r = await client.post("/v1/models/iris:predict", json={"instances": [SETOSA]})
    assert r.status_code == 200, r.text
    assert r.json() == {"predictions": [0]}
    r = await client.post(
        "/v1/models/iris:predict",
        json={"inputs": dict(zip(IRIS_COLUMNS, [[v] for v in SETOSA], strict=True))},
    )
    assert r.status_code == 200, r.text
    assert r.json()["outputs"] == [0]
    status = (await client.get("/v1/models/iris")).json()
    assert status["name"] == "iris" and status["ready"] is True
    assert (await client.get("/")).json() == {"status": "alive"}
    assert sorted((await client.get("/v1/models")).json()["models"]) == ["churn", "iris"]


async def test_v2_infer_with_one_2d_tensor_and_per_column_tensors(
    client: httpx.AsyncClient,
) -> None:
    one = {
        "id": "req-1",
        "inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP32", "data": SETOSA}],
    }
    r = await client.post("/v2/models/iris/infer", json=one)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["id"] == "req-1" and body["model_name"] == "iris"
    outputs = {o["name"]: o for o in body["outputs"]}
    assert outputs["predictions"]["data"] == [0]
    assert outputs["probabilities"]["shape"] == [1, 3]
    per_column = {
        "inputs": [
            {"name": c, "shape": [1, 1], "datatype": "FP64", "data": [v]}
            for c, v in zip(IRIS_COLUMNS, SETOSA, strict=True)
        ]
    }
    r = await client.post("/v2/models/iris/versions/1/infer", json=per_column)
    assert r.status_code == 200, r.text
    assert {o["name"]: o for o in r.json()["outputs"]}["predictions"]["data"] == [0]


@pytest.mark.parametrize("given", ["caf\u00e9 \U0001f600", "a\r\nX-Evil: 1", "x" * 129, " "])
async def test_a_v2_id_that_cannot_be_a_header_is_echoed_but_the_request_id_is_ours(
    client: httpx.AsyncClient, given: str
) -> None:
    body = {
        "id": given,
        "inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP64", "data": SETOSA}],
    }
    r = await client.post("/v2/models/iris/infer", json=body)
    assert r.status_code == 200, r.text
    assert r.json()["id"] == given
    ours = r.headers["x-request-id"]
    assert ours != given and len(ours) == 32


async def test_an_x_request_id_past_128_characters_is_replaced_by_ours(
    client: httpx.AsyncClient,
) -> None:
    kept = await client.post(
        "/v1/models/churn/predict", json={"rows": churn_rows(1)}, headers={"X-Request-ID": "r-1"}
    )
    assert kept.headers["x-request-id"] == "r-1" == kept.json()["request_id"]
    long = "r" * 129
    r = await client.post(
        "/v1/models/churn/predict", json={"rows": churn_rows(1)}, headers={"X-Request-ID": long}
    )
    assert r.status_code == 200, r.text
    assert r.headers["x-request-id"] == r.json()["request_id"] != long


async def test_v2_metadata_health_and_readiness(client: httpx.AsyncClient) -> None:
    assert (await client.get("/v2/health/live")).json() == {"live": True}
    assert (await client.get("/v2/health/ready")).json() == {"ready": True}
    meta = (await client.get("/v2")).json()
    assert meta["name"] == "pointsman" and "binary_tensor_data" in meta["extensions"]
    model = (await client.get("/v2/models/churn")).json()
    assert model["name"] == "churn" and model["versions"] == ["1", "2"]
    assert {i["name"]: i["datatype"] for i in model["inputs"]}["plan"] == "BYTES"
    assert (await client.get("/v2/models/churn/ready")).json() == {"name": "churn", "ready": True}
    assert (await client.get("/v2/models/churn/versions/2/ready")).status_code == 200


async def test_mlflow_invocations_every_format(client: httpx.AsyncClient) -> None:
    rows = churn_rows(2)
    columns = list(rows[0])
    expected = (await client.post("/v1/models/churn/predict", json={"rows": rows})).json()
    bodies = [
        {"dataframe_split": {"columns": columns, "data": [list(r.values()) for r in rows]}},
        {"dataframe_records": rows},
        {"instances": rows},
    ]
    for body in bodies:
        r = await client.post("/v1/models/churn/invocations", json=body)
        assert r.status_code == 200, (body, r.text)
        assert r.json() == {"predictions": expected["predictions"]}
    csv = ",".join(columns) + "\n" + "\n".join(",".join(str(r[c]) for c in columns) for r in rows)
    r = await client.post(
        "/v1/models/churn/invocations", content=csv, headers={"Content-Type": "text/csv"}
    )
    assert r.status_code == 200, r.text
    assert r.json() == {"predictions": expected["predictions"]}
    assert (await client.get("/ping")).status_code == 200
    assert (await client.get("/version")).text


async def test_bare_invocations_needs_one_model_or_the_setting(client: httpx.AsyncClient) -> None:
    r = await client.post("/invocations", json={"instances": [SETOSA]})
    assert r.status_code == 400
    assert "default_model" in r.json()["error"]


async def test_healthz_and_readyz(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = (await client.get("/readyz")).json()
    assert (ready["ready"], ready["versions"]) == (True, {"iris:1": "ready", "churn:1": "ready"})
    for name in ("iris:1", "churn:1"):  # each version's runners, as the supervisor sees them
        (runner,) = ready["runners"][name]
        assert runner["state"] == "ready" and runner["pid"] > 0 and runner["memory_bytes"] > 0
