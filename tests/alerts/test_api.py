"""/v1/admin/alerts: rules, state, history and tests through the app, admin scope only."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from pointsman.api.app import build_app
from pointsman.auth import KeyBook
from pointsman.project import Project
from tests.conftest import admin_headers

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def admin(project: Project) -> AsyncIterator[httpx.AsyncClient]:
    headers = admin_headers(project)  # before the app starts: it loads keys at start
    app = build_app(project.settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://pointsman", headers=headers
        ) as c:
            yield c


async def test_add_get_list_test_history_remove(admin: httpx.AsyncClient, receivers: Any) -> None:
    hook = receivers()
    body = {
        "name": "slow", "model": "churn", "when": "p99_ms > 250", "for": "2m",
        "notify": [f"webhook={hook.url}"], "severity": "critical",
    }  # fmt: skip
    created = await admin.post("/v1/admin/alerts", json=body)
    assert created.status_code == 201, created.text
    assert created.json()["for"] == "2m" and created.json()["created_by"] == "tests"
    assert (await admin.post("/v1/admin/alerts", json=body)).status_code == 409
    listed = (await admin.get("/v1/admin/alerts")).json()
    assert [r["name"] for r in listed] == ["slow"] and listed[0]["states"] == []
    one = (await admin.get("/v1/admin/alerts/slow")).json()
    assert one["notify"] == ["webhook=" + hook.url.removesuffix("/hook") + "/…"]

    tested = await admin.post("/v1/admin/alerts/slow/test")
    assert tested.json() == [{"channel": one["notify"][0], "sent": True, "detail": "HTTP 200: ok"}]
    (sent,) = hook.bodies()
    assert sent["alerts"][0]["labels"]["alertname"] == "slow"
    (entry,) = (await admin.get("/v1/admin/alerts/history", params={"rule": "slow"})).json()
    assert entry["event"] == "test" and entry["deliveries"][0]["outcome"] == "sent"
    names = [m["name"] for m in (await admin.get("/v1/admin/alerts/metrics")).json()]
    assert "error_rate" in names and "canary_rolled_back" in names

    assert (await admin.delete("/v1/admin/alerts/slow")).status_code == 200
    missing = await admin.get("/v1/admin/alerts/slow")
    assert missing.status_code == 404 and "No alert rule named 'slow'" in missing.json()["error"]
    audit = (await admin.get("/v1/admin/audit", params={"action": "alert"})).json()
    assert sorted((a["action"], a["who"], a["target"]) for a in audit) == [
        ("alert.add", "tests", "alert:slow"), ("alert.remove", "tests", "alert:slow"),
    ]  # fmt: skip
    assert hook.url not in str(audit)  # redacted


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"name": "x", "when": "p95 > 1"}, "unknown metric 'p95'"),
        ({"name": "x", "when": "p99_ms > 1", "severity": "page"}, "'info', 'warn' or 'critical'"),
        ({"name": "x", "when": "p99_ms > 1", "cooldwn": "1h"}, "cooldwn"),
    ],
    ids=["unknown-metric", "bad-severity", "unknown-field"],
)
async def test_refused_rules_are_422_naming_the_problem(
    admin: httpx.AsyncClient, body: dict[str, Any], message: str
) -> None:
    refused = await admin.post("/v1/admin/alerts", json=body)
    assert refused.status_code == 422
    assert message in refused.json()["error"]


async def test_alert_endpoints_need_the_admin_scope(project: Project) -> None:
    key, _ = KeyBook(project.engine).create("reader", ["read:*"], "test")
    app = build_app(project.settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://pointsman") as c:
            for method, path in [("GET", "/v1/admin/alerts"), ("POST", "/v1/admin/alerts/x/test")]:
                refused = await c.request(method, path, headers={"Authorization": f"Bearer {key}"})
                assert refused.status_code == 403, (method, path)
                assert refused.json()["missing_scope"] == "admin"
