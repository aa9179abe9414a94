"""GET /v1/admin/models/{m} and GET/PUT /v1/admin/models/{m}/runners: specs, state, changes."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

pytestmark = pytest.mark.anyio

ADMIN = "/v1/admin/models"


async def test_a_model_shows_its_versions_route_and_warm_runners(
    client: httpx.AsyncClient,
) -> None:
    r = await client.get(f"{ADMIN}/churn")
    assert r.status_code == 200, r.text
    body = r.json()
    assert [v["version"] for v in body["versions"]] == [1, 2]
    assert body["route"]["arms"] == [{"version": 1, "weight": 100}]
    specs = body["runners"]["specs"]
    assert [s["version"] for s in specs] == [None, 1]
    (runner,) = specs[1]["runners"]
    assert runner["state"] == "ready" and runner["pid"] > 0
    assert "resource limits" in body["runners"]["enforcement"]


async def test_a_runner_change_is_stored_audited_and_applied(client: httpx.AsyncClient) -> None:
    r = await client.put(
        f"{ADMIN}/churn/runners",
        json={"replicas": 2, "memory": "1GiB", "timeout": "2s", "reason": "more"},
    )
    assert r.status_code == 200, r.text
    spec = r.json()["spec"]
    assert (spec["replicas"], spec["memory_bytes"], spec["timeout_s"]) == (2, 1 << 30, 2.0)
    (entry,) = (await client.get("/v1/admin/audit", params={"action": "runners"})).json()
    assert (entry["who"], entry["target"], entry["detail"]) == ("tests", "runners:churn", "more")
    assert entry["after"] == {"replicas": 2, "memory_bytes": 1 << 30, "timeout_s": 2.0}
    # The running server replaces churn v1's runners with two under the new spec.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        state = (await client.get(f"{ADMIN}/churn/runners")).json()["specs"][1]["runners"]
        if len(state) == 2 and all(s["state"] == "ready" for s in state):
            break
        await asyncio.sleep(0.1)
    else:
        pytest.fail(f"churn v1 did not get two ready runners: {state}")
    r = await client.post("/v1/models/churn/predict", json={"rows": [CHURN_ROW]})
    assert r.status_code == 200, r.text
    # null removes the memory limit again.
    r = await client.put(f"{ADMIN}/churn/runners", json={"memory": None, "version": 1})
    assert r.json()["spec"]["memory_bytes"] is None


CHURN_ROW = {
    "tenure_months": 3, "monthly_charges": 99.5, "support_calls": 4, "age": 31,
    "plan": "premium", "contract": "monthly", "region": "north",
}  # fmt: skip


@pytest.mark.parametrize(
    ("body", "status", "phrase"),
    [
        ({"replicas": 0}, 422, "replicas must be 1 to 64"),
        ({"memory": "lots"}, 422, "memory 'lots' is not a size"),
        ({"memory": "100MiB"}, 422, "memory must be at least 512 MiB"),
        ({"timeout": "soon"}, 422, "timeout 'soon' is not a duration"),
        ({"replicas": 1, "colour": "red"}, 422, "colour"),
        ({"version": 9, "replicas": 1}, 404, "9"),
    ],
)
async def test_a_bad_runner_change_is_refused_with_the_reason(
    client: httpx.AsyncClient, body: dict[str, object], status: int, phrase: str
) -> None:
    r = await client.put(f"{ADMIN}/churn/runners", json=body)
    assert r.status_code == status, r.text
    assert phrase in r.json()["error"], r.json()


async def test_an_unknown_model_is_a_404(client: httpx.AsyncClient) -> None:
    for r in [await client.get(f"{ADMIN}/nope"), await client.get(f"{ADMIN}/nope/runners")]:
        assert r.status_code == 404 and "churn" in r.json()["error"], r.text
