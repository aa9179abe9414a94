"""Inference POSTs bypass FastAPI's middleware stack, keeping the key check and error shapes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import ClassVar

import httpx
import pytest
from starlette.types import ASGIApp, Receive, Scope, Send

from pointsman.api.app import build_app
from pointsman.api.fastpath import ServingApp
from pointsman.project import Project
from pointsman.protocols import CODECS
from tests.conftest import admin_headers

pytestmark = pytest.mark.anyio

ROW = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}


class Seen:
    """A middleware noting every path that went through FastAPI's stack."""

    paths: ClassVar[list[str]] = []

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            Seen.paths.append(f"{scope['method']} {scope['path']}")
        await self.app(scope, receive, send)


@pytest.fixture
async def app_and_client(served: Project) -> AsyncIterator[tuple[ServingApp, httpx.AsyncClient]]:
    app = build_app(served.settings)
    assert isinstance(app, ServingApp)
    app.add_middleware(Seen)
    Seen.paths = []
    headers = admin_headers(served)  # before the lifespan loads the keys
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://pointsman", headers=headers
        ) as client:
            yield app, client


async def test_every_inference_path_is_matched_first(
    app_and_client: tuple[ServingApp, httpx.AsyncClient],
) -> None:
    app, client = app_and_client
    fast = {route.path for route in app.fast_routes}
    assert fast == {path for codec in CODECS for path in codec.paths}
    r = await client.post("/v1/models/iris/predict", json={"rows": [ROW]})
    assert r.status_code == 200, r.text
    pinned = await client.post("/v1/models/iris/versions/1/predict", json={"rows": [ROW]})
    assert pinned.status_code == 200, pinned.text
    assert (await client.get("/v1/models/iris")).status_code == 200
    # Only the GET went through the middleware stack.
    assert Seen.paths == ["GET /v1/models/iris"]


async def test_the_fast_path_keeps_the_key_check_and_error_shapes(
    app_and_client: tuple[ServingApp, httpx.AsyncClient],
) -> None:
    _, client = app_and_client
    no_key = await client.post(
        "/v1/models/iris/predict", json={"rows": [ROW]}, headers={"Authorization": ""}
    )
    assert no_key.status_code == 401 and no_key.headers["WWW-Authenticate"].startswith("Bearer")
    assert no_key.json()["code"] == "unauthorized"
    bad = await client.post("/v1/models/iris/predict", content=b"{not json")
    assert bad.status_code == 400 and bad.json()["code"] and bad.headers["x-request-id"]
    unknown = await client.post("/v1/models/nope/predict", json={"rows": [ROW]})
    assert unknown.status_code == 404 and "known models" in unknown.json()["error"]
    # An inference path under another method goes through FastAPI: 405, as before.
    assert (await client.get("/v1/models/iris/predict")).status_code == 405
    assert Seen.paths == ["GET /v1/models/iris/predict"]


async def test_an_error_the_endpoint_does_not_answer_is_a_json_500(
    app_and_client: tuple[ServingApp, httpx.AsyncClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    app, client = app_and_client
    keys = app.state.worker.keys  # the gate's key cache, refreshed by the Worker

    def broken(*_: object) -> None:
        raise RuntimeError("the key table is gone")

    monkeypatch.setattr(keys, "authenticate", broken)
    r = await client.post("/v1/models/iris/predict", json={"rows": [ROW]})
    assert r.status_code == 500
    assert r.json()["code"] == "internal_error" and r.headers["x-request-id"] in r.json()["error"]
    assert "Traceback" not in r.text
