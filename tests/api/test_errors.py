"""Every error path answers {"error", "code"} with the right status, and never a traceback."""

from __future__ import annotations

import struct
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
from tests.conftest import admin_headers, register_iris

pytestmark = pytest.mark.anyio

ROW = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}


async def test_unknown_model_lists_the_known_ones(client: httpx.AsyncClient) -> None:
    for method, path in [
        ("POST", "/v1/models/nope/predict"),
        ("POST", "/v1/models/nope:predict"),
        ("POST", "/v2/models/nope/infer"),
        ("GET", "/v2/models/nope"),
        ("GET", "/v2/models/nope/ready"),
        ("POST", "/v1/models/nope/invocations"),
    ]:
        r = await client.request(method, path, json={"rows": [ROW]})
        assert r.status_code == 404, (path, r.text)
        assert "known models: churn, iris" in r.json()["error"], path


async def test_unknown_version_lists_the_versions(client: httpx.AsyncClient) -> None:
    r = await client.post("/v1/models/churn/versions/9/predict", json={"rows": []})
    assert r.status_code == 404
    body = r.json()
    assert body["code"] == "version_not_found" and "versions: 1, 2" in body["error"]
    assert (await client.get("/v2/models/churn/versions/x")).status_code == 404


async def test_body_not_json_is_400_with_the_position(client: httpx.AsyncClient) -> None:
    r = await client.post("/v1/models/iris/predict", content=b'{"rows": [1,}')
    assert r.status_code == 400
    assert "line 1 column" in r.json()["error"] and r.json()["code"] == "bad_request"


async def test_wrong_columns_are_422_naming_each_field(client: httpx.AsyncClient) -> None:
    row = {**ROW, "sepal_length": "long", "extra": 1}
    del row["petal_width"]
    r = await client.post("/v1/models/iris/predict", json={"rows": [row]})
    assert r.status_code == 422
    fields = {f["field"]: f for f in r.json()["fields"]}
    assert fields["sepal_length"]["expected"] == "double"
    assert fields["sepal_length"]["received"] == "long"
    assert fields["petal_width"]["problem"] == "missing"
    assert fields["extra"]["problem"].startswith("unexpected column")
    for name in ("sepal_length", "petal_width", "extra"):
        assert name in r.json()["error"]


async def test_v1_and_v2_name_the_bad_field_too(client: httpx.AsyncClient) -> None:
    r = await client.post("/v1/models/churn:predict", json={"instances": [{"plan": 3}]})
    assert r.status_code == 422 and "plan" in r.json()["error"]
    r = await client.post(
        "/v2/models/churn/infer",
        json={"inputs": [{"name": "plan", "shape": [1], "datatype": "INT64", "data": [3]}]},
    )
    assert r.status_code in (400, 422) and "plan" in r.json()["error"]


async def test_mlflow_errors_keep_mlflow_shape(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/v1/models/iris/invocations",
        content=b"{}",
        headers={"Content-Type": "application/json; format=pandas-split"},
    )
    assert r.status_code == 415
    r = await client.post("/v1/models/iris/invocations", json={"dataframe_records": {"a": 1}})
    body = r.json()
    assert r.status_code == 400 and body["error_code"] == "BAD_REQUEST"
    assert body["message"] == body["error"]


async def test_body_over_the_limit_is_413(served: Project) -> None:
    settings = load_settings(served.settings.project_path(), max_body_bytes=2048)
    app = build_app(settings)
    headers = admin_headers(served)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://t", headers=headers
        ) as c:
            r = await c.post("/v1/models/iris/predict", json={"rows": [ROW] * 200})
    assert r.status_code == 413 and "2048" in r.json()["error"]


async def test_binary_input_not_matching_its_size_is_400(client: httpx.AsyncClient) -> None:
    header = (
        b'{"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP32", '
        b'"parameters": {"binary_data_size": 16}}]}'
    )
    body = header + struct.pack("<3f", 5.1, 3.5, 1.4)  # 12 bytes, 16 declared
    r = await client.post(
        "/v2/models/iris/infer",
        content=body,
        headers={"Inference-Header-Content-Length": str(len(header))},
    )
    assert r.status_code == 400 and "binary" in r.json()["error"].lower()


async def test_unknown_path_and_method_answer_json(client: httpx.AsyncClient) -> None:
    r = await client.get("/v3/whatever")
    assert r.status_code == 404 and "error" in r.json()
    r = await client.get("/v1/models/iris/predict")
    assert r.status_code == 405 and "error" in r.json()


@pytest.fixture
async def failing(project: Project, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """A model that raises on x == 3 (within its training range) and on x == 999 (outside
    it), and a model that is registered but not deployed."""
    data = tmp_path / "x.csv"
    pd.DataFrame({"x": [1.0, 2.0, 4.0, 5.0], "y": [0, 1, 0, 1]}).to_csv(data, index=False)
    source = tmp_path / "fragile.py"
    source.write_text(
        textwrap.dedent(
            """
            class Fragile:
                def predict(self, frame):
                    if frame["x"].isin([3, 999]).any():
                        raise ValueError("secret internal detail")
                    return frame["x"] * 2
            """
        )
    )
    for name in ("fragile", "idle"):
        project.registry.register(
            Submission(
                model=name, path=source, entrypoint="Fragile", training_data=data, target="y"
            )
        )
    project.routes.deploy("fragile", 1, "t")
    app = build_app(project.settings)
    headers = admin_headers(project)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://t", headers=headers
        ) as c:
            yield c


async def test_model_raising_is_500_with_request_id_and_no_traceback(
    failing: httpx.AsyncClient,
) -> None:
    ok = await failing.post("/v1/models/fragile/predict", json={"rows": [{"x": 2.0}]})
    assert ok.json()["predictions"] == [4.0]
    r = await failing.post(
        "/v1/models/fragile/predict", json={"rows": [{"x": 3.0}]}, headers={"X-Request-ID": "r9"}
    )
    assert r.status_code == 500
    body = r.json()
    assert body["code"] == "model_failed" and "r9" in body["error"]
    assert "secret internal detail" not in r.text and "Traceback" not in r.text
    assert r.headers["x-request-id"] == "r9"


async def test_model_raising_on_input_unlike_its_training_data_is_the_callers_422(
    failing: httpx.AsyncClient,
) -> None:
    r = await failing.post(
        "/v1/models/fragile/predict", json={"rows": [{"x": 999.0}]}, headers={"X-Request-ID": "r8"}
    )
    assert r.status_code == 422
    body = r.json()
    assert body["code"] == "input_not_computable" and body["request_id"] == "r8"
    assert "'x'" in body["error"] and "999" in body["error"] and "training 1 to 5" in body["error"]
    assert "secret internal detail" not in r.text and "Traceback" not in r.text


async def test_registered_but_not_deployed_is_503_saying_how(failing: httpx.AsyncClient) -> None:
    r = await failing.post("/v1/models/idle/predict", json={"rows": [{"x": 1.0}]})
    assert r.status_code == 503 and "pointsman deploy idle 1" in r.json()["error"]


async def test_tampered_artifact_makes_the_version_not_ready(
    project: Project, iris_files: tuple[Path, Path]
) -> None:
    project.routes.deploy("iris", register_iris(project, iris_files), "t")
    record = project.registry.get_version("iris", 1)
    stored = project.registry.artifacts.path_of(record.artifact)
    stored.write_bytes(stored.read_bytes()[:-1] + b"\1")
    app = build_app(project.settings)
    headers = admin_headers(project)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://t", headers=headers
        ) as c:
            ready = await c.get("/readyz")
            assert ready.status_code == 503
            assert "changed after registration" in ready.json()["error"]
            r = await c.post("/v1/models/iris/predict", json={"rows": [ROW]})
            assert r.status_code == 503 and "changed after registration" in r.json()["error"]
            assert (await c.get("/v2/health/ready")).status_code == 503
            assert (await c.get("/ping")).status_code == 503


BIG = 10**25  # past the store's integer columns
ALERT = {"when": "error_rate > 0.1"}
OUTCOME = {"request_id": "r", "outcome": 1}
# Inputs that once answered 500 (found by the Schemathesis run): each is the caller's 4xx.
PAST_THE_LIMITS = [
    ("POST", "/v1/admin/keys", {"name": "k1", "scopes": ["admin"], "expires": "99999999999d"}),
    ("GET", "/v1/predictions?since=99999999w", None),
    ("GET", f"/v1/predictions?version={BIG}", None),
    ("GET", "/v1/predictions?cursor=WyI5OTk5LTEyLTMxVDIzOjU5OjU5LTIzOjU5IiwgMV0", None),
    ("GET", f"/v1/admin/models/iris/quality?version={BIG}", None),
    ("POST", "/v1/admin/models/iris/deploy", {"version": BIG}),
    ("PUT", "/v1/admin/models/iris/runners", {"version": BIG}),
    ("PUT", "/v1/admin/models/iris/runners", {"memory": "9" * 400}),
    ("POST", "/v1/models/iris/jobs", {"input": "x.csv", "output": "y.csv", "version": BIG}),
    ("POST", "/v1/models/iris/outcomes", {"outcomes": [{**OUTCOME, "row": BIG}]}),
    ("POST", "/v1/models/iris/outcomes", {"outcomes": [{**OUTCOME, "time": "99999999w"}]}),
    ("POST", "/v1/admin/alerts", {"name": "a1", **ALERT, "notify": ["webhook=http://["]}),
    ("POST", "/v1/admin/alerts", {"name": "a2", **ALERT, "notify": ["webhook=http://x:99999/"]}),
]  # fmt: skip


@pytest.mark.parametrize(("method", "path", "body"), PAST_THE_LIMITS)
async def test_values_past_the_limits_are_the_callers_4xx_naming_them(
    client: httpx.AsyncClient, method: str, path: str, body: object
) -> None:
    r = await client.request(method, path, json=body)
    assert 400 <= r.status_code < 500, (path, body, r.text)
    assert r.json()["error"] and r.json()["code"] != "internal_error"
