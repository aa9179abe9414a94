"""GET /v1/predictions over the in-process app: records of real requests, filters, pages, 4xx."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from pointsman.api.app import build_app
from pointsman.pipeline import Pipeline
from pointsman.project import Project
from pointsman.settings import Settings
from tests.conftest import churn_rows

pytestmark = pytest.mark.anyio


@pytest.fixture
async def client(served: Project) -> AsyncIterator[httpx.AsyncClient]:
    """The app with API keys off: this file is about the log, tests/api covers access."""
    off = {"auth": False} if "auth" in Settings.model_fields else {}
    app = build_app(served.settings.model_copy(update=off))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://pointsman") as c:
            yield c


def ship(client: httpx.AsyncClient) -> None:
    transport = client._transport
    assert isinstance(transport, httpx.ASGITransport) and isinstance(transport.app, FastAPI)
    pipeline: Pipeline = transport.app.state.pipeline
    assert pipeline.log is not None
    pipeline.log.ship()


async def test_requests_are_listed_newest_first_with_inputs_and_outputs(
    client: httpx.AsyncClient,
) -> None:
    rows = churn_rows(3)
    for i in range(5):
        r = await client.post(
            "/v1/models/churn/predict", json={"rows": rows}, headers={"X-Request-ID": f"q{i}"}
        )
        assert r.status_code == 200
    answer = r.json()
    await client.post("/v1/models/iris/predict", json={"rows": [[5.1, 3.5, 1.4, 0.2]]})
    ship(client)
    r = await client.get("/v1/predictions", params={"model": "churn"})
    assert r.status_code == 200
    records = r.json()["predictions"]
    assert [x["request_id"] for x in records] == ["q4", "q3", "q2", "q1", "q0"]
    newest = records[0]
    assert newest["outputs"]["predictions"] == answer["predictions"]
    assert newest["inputs"]["tenure_months"] == [row["tenure_months"] for row in rows]
    assert newest["n_rows"] == 3 and newest["version"] == 1 and newest["role"] == "primary"
    assert r.json()["cursor"] is None


async def test_cursor_pages_and_filters(client: httpx.AsyncClient) -> None:
    for _ in range(7):
        await client.post("/v1/models/churn/predict", json={"rows": churn_rows(1)})
    ship(client)
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, str | int] = {
            "model": "churn",
            "limit": 3,
            "since": "1h",
            **({"cursor": cursor} if cursor else {}),
        }
        body = (await client.get("/v1/predictions", params=params)).json()
        seen += [x["request_id"] for x in body["predictions"]]
        cursor = body["cursor"]
        if not cursor:
            break
    assert len(seen) == 7 == len(set(seen))
    one = (await client.get("/v1/predictions", params={"request_id": seen[2]})).json()
    assert [x["request_id"] for x in one["predictions"]] == [seen[2]]
    none = await client.get("/v1/predictions", params={"model": "churn", "until": "1h"})
    assert none.json() == {"predictions": [], "cursor": None}
    errors = await client.get("/v1/predictions", params={"model": "churn", "has_error": "true"})
    assert errors.json()["predictions"] == []


@pytest.mark.parametrize(
    ("params", "status", "words"),
    [
        ({"since": "yesterday"}, 400, "since 'yesterday' cannot be read"),
        ({"until": "3 moons"}, 400, "until '3 moons'"),
        ({"role": "canary"}, 400, "primary, fallback, pinned, shadow"),
        ({"cursor": "garbage!"}, 400, "cursor"),
        ({"limit": "0"}, 422, "limit"),
        ({"version": "two"}, 422, "version"),
    ],
)
async def test_bad_parameters_are_clear_4xx(
    client: httpx.AsyncClient, params: dict[str, str], status: int, words: str
) -> None:
    r = await client.get("/v1/predictions", params=params)
    assert r.status_code == status
    assert words in r.json()["error"]


@pytest.mark.parametrize(("policy", "status"), [("refuse", 503), ("drop", 200)])
async def test_past_the_spool_budget_the_policy_decides(
    served: Project, policy: str, status: int
) -> None:
    off = {"auth": False} if "auth" in Settings.model_fields else {}
    settings = served.settings.model_copy(
        update={
            **off,
            "log_spool_budget_bytes": 4096,
            "log_spool_full_policy": policy,
            "log_ship_interval_s": 3600.0,  # the store never drains it during the test
        }
    )
    app = build_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://p") as client:
            answers = [
                await client.post("/v1/models/churn/predict", json={"rows": churn_rows(2)})
                for _ in range(20)
            ]
            pipeline: Pipeline = app.state.pipeline
            assert pipeline.log is not None
            spool = pipeline.log.spool
    assert answers[0].status_code == 200
    assert answers[-1].status_code == status
    if policy == "refuse":
        assert answers[-1].json()["code"] == "log_spool_full"
        assert "log_spool_budget_bytes" in answers[-1].json()["error"]
    else:
        assert spool.dropped > 0 and spool.appended + spool.dropped == 20


def v2_body(rows: list[dict[str, object]], request_id: str | None) -> dict[str, object]:
    """A V2 infer body with one [n, 1] input per column (the churn signature's)."""
    inputs = []
    for name in rows[0]:
        values = [row[name] for row in rows]
        kind = "BYTES" if isinstance(values[0], str) else "FP64"
        inputs.append({"name": name, "shape": [len(rows), 1], "datatype": kind, "data": values})
    body: dict[str, object] = {"inputs": inputs}
    if request_id is not None:
        body["id"] = request_id
    return body


async def test_a_v2_body_id_is_the_request_id_in_header_body_and_record(
    client: httpx.AsyncClient,
) -> None:
    url = "/v2/models/churn/infer"
    r = await client.post(url, json=v2_body(churn_rows(1), "body-1"))
    assert r.status_code == 200, r.text
    assert r.headers["x-request-id"] == r.json()["id"] == "body-1"
    # Both sent and different: the caller's X-Request-ID wins in the header and the record,
    # the body's id is echoed in the body (docs/prediction-log.md, "One request id").
    r = await client.post(
        url, json=v2_body(churn_rows(1), "body-2"), headers={"X-Request-ID": "hdr-2"}
    )
    assert (r.headers["x-request-id"], r.json()["id"]) == ("hdr-2", "body-2")
    r = await client.post(url, json=v2_body(churn_rows(1), None))  # no id at all: ours
    made = r.headers["x-request-id"]
    assert r.json()["id"] == made
    ship(client)
    for rid in ("body-1", "hdr-2", made):
        r = await client.get("/v1/predictions", params={"request_id": rid})
        assert [x["request_id"] for x in r.json()["predictions"]] == [rid]
    r = await client.get("/v1/predictions", params={"request_id": "body-2"})
    assert r.json()["predictions"] == []
