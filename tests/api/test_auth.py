"""API keys on the request path: revocation, rotation, header forms, client names, secrecy."""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections.abc import AsyncIterator

import httpx
import pytest
import sqlalchemy as sa

from pointsman.api.app import build_app
from pointsman.auth import KeyBook
from pointsman.project import Project
from pointsman.settings import load_settings
from pointsman.store.tables import metadata
from tests.conftest import IRIS_COLUMNS

pytestmark = pytest.mark.anyio

ROW = dict(zip(IRIS_COLUMNS, [5.1, 3.5, 1.4, 0.2], strict=True))
PREDICT = "/v1/models/iris/predict"


@pytest.fixture
async def app_client(served: Project) -> AsyncIterator[httpx.AsyncClient]:
    """The app with no default key: each test sends its own."""
    app = build_app(served.settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://a") as c:
            yield c


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def wait_for_status(
    client: httpx.AsyncClient, headers: dict[str, str], status: int, within_s: float
) -> float:
    """Seconds until a predict with `headers` answers `status` (fails past `within_s`)."""
    start = time.monotonic()
    while True:
        r = await client.post(PREDICT, json={"rows": [ROW]}, headers=headers)
        elapsed = time.monotonic() - start
        if r.status_code == status:
            return elapsed
        assert elapsed < within_s, f"still {r.status_code} after {elapsed:.2f} s: {r.text}"
        await asyncio.sleep(0.05)


async def test_a_revoked_key_is_refused_within_a_second(
    app_client: httpx.AsyncClient, served: Project
) -> None:
    book = KeyBook(served.engine)
    key, _ = book.create("app", ["predict:iris"], "t")
    await wait_for_status(app_client, bearer(key), 200, within_s=2)  # picked up by the poll
    book.revoke("app", "t")
    took = await wait_for_status(app_client, bearer(key), 401, within_s=1.5)
    assert took <= 1.5
    r = await app_client.post(PREDICT, json={"rows": [ROW]}, headers=bearer(key))
    assert "'app' was revoked" in r.json()["error"]


async def test_rotation_retires_the_old_key_and_keeps_the_name(
    app_client: httpx.AsyncClient, served: Project
) -> None:
    book = KeyBook(served.engine)
    old, _ = book.create("app", ["predict:iris"], "t")
    new, record = book.rotate("app", "t")
    assert record.name == "app" and record.scopes == ("predict:iris",)
    await wait_for_status(app_client, bearer(new), 200, within_s=2)
    r = await app_client.post(PREDICT, json={"rows": [ROW]}, headers=bearer(old))
    assert r.status_code == 401


async def test_every_header_form_is_accepted(
    app_client: httpx.AsyncClient, served: Project
) -> None:
    key, _ = KeyBook(served.engine).create("app", ["predict:iris"], "t")
    await wait_for_status(app_client, bearer(key), 200, within_s=2)
    basic = base64.b64encode(f"anyone:{key}".encode()).decode()
    for headers in (
        {"Authorization": f"bearer {key}"},
        {"X-API-Key": key},
        {"Authorization": f"Basic {basic}"},
    ):
        r = await app_client.post(PREDICT, json={"rows": [ROW]}, headers=headers)
        assert r.status_code == 200, (headers.keys(), r.text)


async def test_past_its_rate_a_key_gets_429_with_retry_after(
    app_client: httpx.AsyncClient, served: Project
) -> None:
    key, _ = KeyBook(served.engine).create("slow", ["predict:iris"], "t", rate="20/min")
    await wait_for_status(app_client, bearer(key), 200, within_s=2)
    statuses = []
    for _ in range(5):
        r = await app_client.post(PREDICT, json={"rows": [ROW]}, headers=bearer(key))
        statuses.append(r.status_code)
    # 20/min: a burst of 1 (spent above), then one token every 3 s.
    assert statuses == [429] * 5, statuses
    assert 1 <= int(r.headers["retry-after"]) <= 3
    assert r.json()["code"] == "rate_limited" and "20/min" in r.json()["error"]


async def test_the_client_name_is_in_every_prediction_record_and_the_audit_log(
    app_client: httpx.AsyncClient, served: Project
) -> None:
    book = KeyBook(served.engine)
    key, _ = book.create("billing-service", ["predict:iris", "read:iris"], "t")
    admin, _ = book.create("ops", ["admin"], "t")
    await wait_for_status(app_client, bearer(key), 200, within_s=2)
    r = await app_client.post(PREDICT, json={"rows": [ROW]}, headers=bearer(key))
    request_id = r.headers["x-request-id"]
    r = await app_client.post(
        "/v1/admin/models/iris/deploy", json={"version": 1}, headers=bearer(admin)
    )
    assert r.status_code == 200 and r.json()["created_by"] == "ops"
    deadline = time.monotonic() + 10
    while True:  # records reach the store when the shipper's next batch lands
        r = await app_client.get(
            "/v1/predictions",
            params={"model": "iris", "request_id": request_id},
            headers=bearer(key),
        )
        assert r.status_code == 200, r.text
        if r.json()["predictions"]:
            break
        assert time.monotonic() < deadline, "the record never reached the store"
        await asyncio.sleep(0.2)
    assert r.json()["predictions"][0]["client"] == "billing-service"
    audit = await app_client.get(
        "/v1/admin/audit", params={"action": "deploy"}, headers=bearer(admin)
    )
    entry = audit.json()[-1]
    assert (entry["who"], entry["target"], entry["before"]["revision"]) == ("ops", "model:iris", 1)
    assert entry["after"]["revision"] == 2 and entry["after"]["arms"] == [
        {"version": 1, "weight": 100}
    ]


async def test_keys_appear_in_no_log_response_record_or_table(
    app_client: httpx.AsyncClient, served: Project, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    book = KeyBook(served.engine)
    key, _ = book.create("app", ["predict:iris"], "t")
    admin, _ = book.create("ops", ["admin"], "t")
    await wait_for_status(app_client, bearer(key), 200, within_s=2)
    answers: list[httpx.Response] = [
        await app_client.post(PREDICT, json={"rows": [ROW]}, headers=bearer(key)),
        await app_client.post(PREDICT, content=b"{not json", headers=bearer(key)),
        await app_client.post("/v1/models/churn/predict", json={"rows": []}, headers=bearer(key)),
        await app_client.post(PREDICT, json={"rows": [ROW]}, headers=bearer(key + "x")),
        await app_client.post(PREDICT, json={"rows": [ROW]}, headers={"X-API-Key": key[:-1]}),
        await app_client.post(
            "/v1/admin/keys", json={"name": "n", "scopes": ["read:*"]}, headers=bearer(admin)
        ),
        await app_client.get("/v1/admin/audit", headers=bearer(admin)),
    ]
    created = answers[5].json()["key"]  # the one place a key is shown: its creation
    book.rotate("app", "t")
    book.revoke("ops", "t")
    await asyncio.sleep(1.5)  # let the log shipper store the records
    secrets = [key, admin, created, key[3:], admin[3:]]
    for answer in answers[:5] + answers[6:]:
        assert not any(s in answer.text for s in secrets), answer.text
    assert not any(s in caplog.text for s in secrets)
    with served.engine.connect() as conn:
        for table in metadata.sorted_tables:
            dump = repr(conn.execute(sa.select(table)).all())
            assert not any(s in dump for s in secrets), table.name


async def test_auth_off_serves_anyone_and_says_so_loudly(
    served: Project, caplog: pytest.LogCaptureFixture
) -> None:
    settings = load_settings(served.settings.project_path(), auth=False)
    app = build_app(settings)
    with caplog.at_level(logging.WARNING):
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://a") as c:
                r = await c.post(PREDICT, json={"rows": [ROW]})
    assert r.status_code == 200
    assert "AUTH IS OFF" in caplog.text


async def test_admin_api_creates_lists_and_revokes_keys(
    app_client: httpx.AsyncClient, served: Project
) -> None:
    admin, _ = KeyBook(served.engine).create("ops", ["admin"], "t")
    await asyncio.sleep(0.7)
    headers = bearer(admin)
    made = await app_client.post(
        "/v1/admin/keys",
        json={"name": "ci", "scopes": ["predict:iris"], "rate": "5/s", "expires": "1d"},
        headers=headers,
    )
    assert made.status_code == 201 and made.json()["key"].startswith("pk_")
    listed = (await app_client.get("/v1/admin/keys", headers=headers)).json()
    assert {k["name"] for k in listed} == {"ops", "ci"}
    assert all("key" not in k for k in listed)
    bad = await app_client.post(
        "/v1/admin/keys", json={"name": "x", "scopes": ["predict"]}, headers=headers
    )
    assert bad.status_code == 400 and "'predict' is not understood" in bad.json()["error"]
    gone = await app_client.delete("/v1/admin/keys/ci", headers=headers)
    assert gone.status_code == 200 and gone.json()["state"] == "revoked"
    again = await app_client.delete("/v1/admin/keys/ci", headers=headers)
    assert again.status_code == 404 and "pointsman keys list" in again.json()["error"]
    actions = [
        e["action"] for e in (await app_client.get("/v1/admin/audit", headers=headers)).json()
    ]
    assert actions[-2:] == ["key.create", "key.revoke"]
