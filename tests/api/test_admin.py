"""The admin API: models, versions, routes and canaries over JSON, with the one error shape."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from pointsman.project import Project
from pointsman.registry import Submission

pytestmark = pytest.mark.anyio

ADMIN = "/v1/admin/models"
AB = {"arms": [{"version": 1, "weight": 90}, {"version": 2, "weight": 10}]}


def refused(r: httpx.Response, status: int, code: str, *phrases: str) -> dict[str, Any]:
    """Check the error shape and that the sentence says what is wrong."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json"
    body: dict[str, Any] = r.json()
    assert body["code"] == code, body
    for phrase in phrases:
        assert phrase in body["error"], body
    return body


async def route_of(client: httpx.AsyncClient, model: str = "churn") -> dict[str, Any]:
    r = await client.get(f"{ADMIN}/{model}/route")
    assert r.status_code == 200, r.text
    data: dict[str, Any] = r.json()
    return data


async def test_models_and_versions_are_listed(client: httpx.AsyncClient, served: Project) -> None:
    r = await client.get(ADMIN)
    assert r.status_code == 200
    assert r.json() == [s.to_json() for s in served.registry.list_models()]
    assert [(m["name"], m["deployed"]) for m in r.json()] == [("churn", [1]), ("iris", [1])]
    r = await client.get(f"{ADMIN}/churn/versions")
    assert [v["version"] for v in r.json()] == [1, 2]
    assert "profile" not in r.json()[0] and r.json()[0]["sha256"]
    refused(await client.get(f"{ADMIN}/nope/versions"), 404, "model_not_found", "'nope'")


async def test_route_in_force_or_why_there_is_none(
    client: httpx.AsyncClient, served: Project, churn_files: list[tuple[Path, Path]]
) -> None:
    route = await route_of(client)
    assert (route["revision"], route["arms"]) == (1, [{"version": 1, "weight": 100}])
    assert route["reason"] == "deploy version 1"
    refused(await client.get(f"{ADMIN}/nope/route"), 404, "model_not_found", "known models")
    path, data = churn_files[0]
    served.registry.register(
        Submission(model="churn_b", path=path, training_data=data, target="churned", user="t")
    )
    r = await client.get(f"{ADMIN}/churn_b/route")
    refused(r, 503, "not_deployed", "pointsman deploy churn_b 1")
    refused(await client.get(f"{ADMIN}/churn_b/canary"), 503, "not_deployed")
    r = await client.put(f"{ADMIN}/churn_b/route", json={"arms": [{"version": 1}]})
    assert (r.json()["revision"], r.json()["changes"]) == (1, ["first revision", "arms 1=100"])


async def test_put_route_writes_a_revision_saying_who_and_what_changed(
    client: httpx.AsyncClient,
) -> None:
    body = {**AB, "key": "customer_id", "fallback": 2, "timeout_ms": 200, "reason": "a/b"}
    r = await client.put(f"{ADMIN}/churn/route", json=body, headers={"X-Pointsman-User": "ann"})
    assert r.status_code == 200, r.text
    new = r.json()
    # The key's name is who; the header says on whose behalf.
    assert (new["revision"], new["created_by"], new["reason"]) == (2, "tests (for ann)", "a/b")
    assert new["changes"] == [
        "arms 1=100 → 1=90, 2=10",
        "key none → customer_id",
        "fallback none → 2",
        "timeout none → 200 ms",
    ]
    route = await route_of(client)
    assert route["arms"] == AB["arms"] and route["key"] == "customer_id"
    assert (route["fallback"], route["timeout_ms"]) == (2, 200)

    # PUT replaces the whole policy: what is left out is cleared.
    body = {"arms": [{"version": 1}], "shadows": [{"version": 2, "sample": 0.5}]}
    r = await client.put(f"{ADMIN}/churn/route", json=body)
    assert r.json()["created_by"] == "tests"  # the key's name
    assert r.json()["changes"] == [
        "arms 1=90, 2=10 → 1=100",
        "key customer_id → none",
        "shadow +2@0.5",
        "fallback 2 → none",
        "timeout 200 ms → none",
    ]
    assert (await route_of(client))["shadows"] == [{"version": 2, "sample": 0.5}]


@pytest.mark.parametrize(
    ("body", "phrase"),
    [
        ({"arms": [{"version": 1, "weight": 90}]}, "arm weights must sum to 100, got 1=90 (= 90)"),
        ({"arms": [{"version": 7}]}, "version 7 does not exist (versions: 1, 2)"),
        (
            {**AB, "shadows": [{"version": 2}]},
            "version 2 is both a primary arm and a shadow",
        ),
        ({"arms": [{"version": 1}], "fallback": 1}, "fallback 1 is the only primary"),
        ({"arms": []}, "give at least one primary arm"),
    ],
)
async def test_put_route_refuses_a_policy_that_cannot_be_served(
    client: httpx.AsyncClient, body: dict[str, Any], phrase: str
) -> None:
    r = await client.put(f"{ADMIN}/churn/route", json=body)
    refused(r, 422, "invalid_route", "Route for 'churn' refused", phrase)
    assert (await route_of(client))["revision"] == 1


async def test_put_route_with_a_stale_revision_is_409(client: httpx.AsyncClient) -> None:
    r = await client.put(f"{ADMIN}/churn/route", json={**AB, "expect_revision": 1})
    assert r.status_code == 200
    r = await client.put(f"{ADMIN}/churn/route", json={**AB, "expect_revision": 1})
    refused(r, 409, "route_conflict", "changed meanwhile (revision 2, expected 1)")


@pytest.mark.parametrize(
    ("method", "path", "body", "phrases"),
    [
        (
            "PUT", "/churn/route", {"arms": [{"version": 1, "weight": "x"}]},
            ["'arms[0].weight' should be a valid integer", "(got 'x')"],
        ),
        ("PUT", "/churn/route", {"arm": [{"version": 1}]}, ["'arms' is missing", "'arm' is not"]),
        ("PUT", "/churn/route", [1, 2], ["'body' must be a JSON object"]),
        ("PUT", "/churn/route", None, ["'body' is empty"]),
        ("POST", "/churn/deploy", {}, ["'version' is missing"]),
        ("POST", "/churn/promote", {"version": "two"}, ["'version' should be a valid integer"]),
        ("POST", "/churn/canary", {"version": 2, "hold_s": -1}, ["'hold_s' should be greater"]),
        ("POST", "/churn/canary", {"version": 2, "steps": "5"}, ["'steps' should be a valid list"]),
        ("POST", "/churn/rollback", {"why": "x"}, ["'why' is not a field here"]),
    ],
)  # fmt: skip
async def test_bad_bodies_are_422_naming_the_field(
    client: httpx.AsyncClient, method: str, path: str, body: Any, phrases: list[str]
) -> None:
    r = await client.request(method, ADMIN + path, json=body)
    out = refused(r, 422, "invalid_request", *phrases, "/docs")
    assert out["fields"] and all("field" in f and "problem" in f for f in out["fields"])
    assert (await route_of(client))["revision"] == 1


async def test_a_body_that_is_not_json_is_422_with_the_position(
    client: httpx.AsyncClient,
) -> None:
    r = await client.put(
        f"{ADMIN}/churn/route",
        content=b'{"arms": [1,}',
        headers={"content-type": "application/json"},
    )
    refused(r, 422, "invalid_request", "is not valid JSON", "at character 12")


async def test_history_lists_every_revision_with_what_changed(client: httpx.AsyncClient) -> None:
    await client.put(f"{ADMIN}/churn/route", json={**AB, "reason": "a/b"})
    await client.post(f"{ADMIN}/churn/deploy", json={"version": 2, "reason": "gbm wins"})
    r = await client.get(f"{ADMIN}/churn/route/history")
    assert r.status_code == 200
    assert [(h["revision"], h["reason"], h["changes"]) for h in r.json()] == [
        (1, "deploy version 1", ["first revision", "arms 1=100"]),
        (2, "a/b", ["arms 1=100 → 1=90, 2=10"]),
        (3, "gbm wins", ["arms 1=90, 2=10 → 2=100"]),
    ]
    refused(await client.get(f"{ADMIN}/nope/route/history"), 404, "model_not_found")


async def test_deploy_promote_and_rollback(client: httpx.AsyncClient) -> None:
    r = await client.post(f"{ADMIN}/churn/deploy", json={"version": 2})
    assert r.status_code == 200
    assert (r.json()["arms"], r.json()["reason"]) == (
        [{"version": 2, "weight": 100}],
        "deploy version 2",
    )
    r = await client.post(f"{ADMIN}/churn/rollback")
    assert r.status_code == 200 and r.json()["changes"] == ["arms 2=100 → 1=100"]
    r = await client.post(f"{ADMIN}/churn/promote", json={"version": 2, "reason": "won"})
    assert r.json()["arms"] == [{"version": 2, "weight": 100}] and r.json()["reason"] == "won"
    r = await client.post(f"{ADMIN}/churn/rollback", json={"reason": "alerts"})
    assert r.json()["reason"] == "alerts" and r.json()["revision"] == 5
    refused(
        await client.post(f"{ADMIN}/churn/deploy", json={"version": 9}),
        404, "version_not_found", "versions: 1, 2",
    )  # fmt: skip
    refused(await client.post(f"{ADMIN}/nope/promote", json={"version": 1}), 404, "model_not_found")
    refused(
        await client.post(f"{ADMIN}/iris/rollback"),
        409, "route_conflict", "no earlier route revision to roll back to",
    )  # fmt: skip


async def test_canary_start_status_conflicts_and_abort(client: httpx.AsyncClient) -> None:
    assert (await client.get(f"{ADMIN}/churn/canary")).json()["state"] == "none"
    plan = {"version": 2, "steps": [5, 25, 50, 100], "hold_requests": 500, "hold_s": 120}
    r = await client.post(f"{ADMIN}/churn/canary", json=plan, headers={"X-Pointsman-User": "bo"})
    assert r.status_code == 200, r.text
    assert r.json()["arms"] == [{"version": 1, "weight": 95}, {"version": 2, "weight": 5}]
    assert r.json()["changes"][-1] == "canary of 2 started at 5 % against 1"
    assert r.json()["created_by"] == "tests (for bo)"
    status = (await client.get(f"{ADMIN}/churn/canary")).json()
    assert (status["state"], status["candidate"], status["weight"]) == ("running", 2, 5)
    assert status["model"] == "churn" and set(status["arms"]) == {"1", "2"}

    refused(
        await client.post(f"{ADMIN}/churn/canary", json=plan),
        409, "route_conflict", "already has a canary of version 2",
    )  # fmt: skip
    refused(
        await client.put(f"{ADMIN}/churn/route", json={"arms": [{"version": 1}]}),
        409, "route_conflict", "pointsman canary churn --abort",
    )  # fmt: skip

    r = await client.delete(f"{ADMIN}/churn/canary", params={"reason": "too slow"})
    assert r.status_code == 200 and r.json()["arms"] == [{"version": 1, "weight": 100}]
    assert r.json()["reason"] == "canary of version 2 aborted: too slow"
    status = (await client.get(f"{ADMIN}/churn/canary")).json()
    assert (status["state"], status["candidate"], status["weight"]) == ("aborted", 2, None)
    refused(
        await client.delete(f"{ADMIN}/churn/canary"), 409, "route_conflict", "no canary running"
    )


async def test_canary_refusals(client: httpx.AsyncClient) -> None:
    steps = {"version": 2, "steps": [50, 5]}
    refused(await client.post(f"{ADMIN}/churn/canary", json=steps), 422, "invalid_route", "rise")
    same = {"version": 1}
    refused(
        await client.post(f"{ADMIN}/churn/canary", json=same),
        409, "route_conflict", "already the primary",
    )  # fmt: skip
    refused(
        await client.post(f"{ADMIN}/churn/canary", json={"version": 9}), 404, "version_not_found"
    )
    assert (await route_of(client))["revision"] == 1


async def test_promote_ends_a_running_canary_as_promoted(client: httpx.AsyncClient) -> None:
    await client.post(f"{ADMIN}/churn/canary", json={"version": 2})
    r = await client.post(f"{ADMIN}/churn/promote", json={"version": 2})
    assert r.json()["changes"] == ["arms 1=95, 2=5 → 2=100", "canary of 2 promoted at 5 %"]
    status = (await client.get(f"{ADMIN}/churn/canary")).json()
    assert (status["state"], status["candidate"]) == ("promoted", 2)


async def test_admin_endpoints_are_in_the_openapi_schema(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert set(paths[f"{ADMIN}/{{model}}/canary"]) == {"get", "post", "delete"}
    assert set(paths[f"{ADMIN}/{{model}}/route"]) == {"get", "put"}
