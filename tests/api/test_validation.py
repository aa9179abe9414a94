"""Validation against the reference profile through the server: reject, flag, allow, per route."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from pointsman.errors import InvalidRoute
from pointsman.project import Project
from pointsman.routing.changes import describe_changes
from pointsman.routing.stats import window
from pointsman.validation.policy import ValidationPolicy
from tests.conftest import churn_rows

pytestmark = pytest.mark.anyio

GOOD = churn_rows(3)


def with_validation(project: Project, **changes: Any) -> None:
    """A new route revision for churn with this validation policy, taken by the app at once."""
    route = project.routes.get("churn")
    policy = route.policy.__class__(
        **{**route.policy.__dict__, "validation": ValidationPolicy(**changes)}
    )
    project.routes.apply("churn", policy, "test", "validation change")


async def refresh(client: httpx.AsyncClient) -> None:
    transport = client._transport
    assert isinstance(transport, httpx.ASGITransport)
    transport.app.state.catalog.refresh()  # type: ignore[attr-defined]


async def predict(client: httpx.AsyncClient, rows: list[dict[str, Any]]) -> httpx.Response:
    return await client.post("/v1/models/churn/predict", json={"rows": rows})


async def test_clean_rows_get_no_warnings(client: httpx.AsyncClient) -> None:
    r = await predict(client, GOOD)
    assert r.status_code == 200
    assert "warnings" not in r.json() and "x-validation-warnings" not in r.headers


async def test_by_default_unknown_categories_and_ranges_are_flagged_not_refused(
    client: httpx.AsyncClient,
) -> None:
    rows = [GOOD[0], {**GOOD[1], "plan": "Premium "}, {**GOOD[2], "tenure_months": 400}]
    r = await predict(client, rows)
    assert r.status_code == 200, r.text
    body = r.json()
    assert len(body["predictions"]) == 3  # a bad row never refuses the batch in flag mode
    assert r.headers["x-validation-warnings"] == "2"
    assert [(w["row"], w["feature"], w["rule"]) for w in body["warnings"]] == [
        (2, "tenure_months", "out_of_range"),
        (1, "plan", "near_miss_category"),
    ]
    near = body["warnings"][1]
    assert near["value"] == "Premium " and near["hint"] == "did you mean 'premium'?"
    assert near["allowed"].startswith("one of 'basic'")


async def test_a_coerced_value_is_refused_by_default_naming_row_feature_and_fix(
    client: httpx.AsyncClient,
) -> None:
    r = await predict(client, [GOOD[0], {**GOOD[1], "age": "41"}])
    assert r.status_code == 422
    body = r.json()
    assert body["code"] == "input_rejected" and body["rows"] == [1]
    assert body["findings"] == [
        {
            "row": 1,
            "feature": "age",
            "value": "41",
            "rule": "coerced",
            "allowed": "long (coerced to 41)",
        }
    ]
    assert "rows 1" in body["error"] and "--validation-feature age=flag" in body["error"]


async def test_coerce_flag_serves_the_converted_value_with_a_warning(
    client: httpx.AsyncClient, served: Project
) -> None:
    with_validation(served, coerce="flag")
    await refresh(client)
    r = await predict(client, [{**GOOD[0], "age": "41"}])
    plain = await predict(client, [{**GOOD[0], "age": 41}])
    assert r.status_code == 200, r.text
    assert r.json()["probabilities"] == plain.json()["probabilities"]
    assert r.json()["warnings"][0]["rule"] == "coerced"


async def test_reject_mode_lists_every_bad_row(client: httpx.AsyncClient, served: Project) -> None:
    with_validation(served, mode="reject")
    await refresh(client)
    rows = [GOOD[0], {**GOOD[1], "region": "atlantis"}, GOOD[2], {**GOOD[0], "age": 300}]
    r = await predict(client, rows)
    assert r.status_code == 422
    body = r.json()
    assert body["rows"] == [1, 3]
    assert {(f["feature"], f["rule"]) for f in body["findings"]} == {
        ("region", "unknown_category"),
        ("age", "out_of_range"),
    }
    assert (await predict(client, GOOD)).status_code == 200


async def test_a_feature_override_beats_the_mode(
    client: httpx.AsyncClient, served: Project
) -> None:
    with_validation(served, mode="reject", features=(("region", "allow"),))
    await refresh(client)
    r = await predict(client, [{**GOOD[0], "region": "atlantis"}])
    assert r.status_code == 200 and "warnings" not in r.json()
    r = await predict(client, [{**GOOD[0], "plan": "gold"}])
    assert r.status_code == 422


async def test_allow_everything_skips_the_checks(
    client: httpx.AsyncClient, served: Project
) -> None:
    with_validation(served, mode="allow")
    await refresh(client)
    r = await predict(client, [{**GOOD[0], "region": "atlantis", "age": 900}])
    assert r.status_code == 200 and "warnings" not in r.json()


async def test_a_pinned_version_is_checked_with_the_routes_policy(
    client: httpx.AsyncClient, served: Project
) -> None:
    with_validation(served, mode="reject")
    await refresh(client)
    r = await client.post(
        "/v1/models/churn/versions/2/predict", json={"rows": [{**GOOD[0], "plan": "gold"}]}
    )
    assert r.status_code == 422 and r.json()["rows"] == [0]


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/models/churn:predict", {"instances": [{**GOOD[0], "plan": "gold"}]}),
        ("/v1/models/churn/invocations", {"dataframe_records": [{**GOOD[0], "plan": "gold"}]}),
    ],
)
async def test_every_protocol_reports_the_count_in_a_header(
    client: httpx.AsyncClient, path: str, body: dict[str, Any]
) -> None:
    r = await client.post(path, json=body)
    assert r.status_code == 200 and r.headers["x-validation-warnings"] == "1"


async def test_flagged_and_refused_requests_are_counted_for_the_canary_gate(
    client: httpx.AsyncClient, served: Project
) -> None:
    pipeline = client._transport.app.state.pipeline  # type: ignore[attr-defined]
    await predict(client, [{**GOOD[0], "plan": "gold"}])
    await predict(client, GOOD)
    await predict(client, [{**GOOD[0], "age": "x41"}])  # schema error: not a validation count
    await predict(client, [{**GOOD[0], "age": "41"}])  # coerced, refused
    pipeline.stats.flush(served.engine)
    route = served.routes.get("churn")
    cells = window(served.engine, "churn", [route.revision])
    counts = cells[(route.primary, "primary")]
    assert (counts.requests, counts.invalid) == (3, 2)


async def test_validation_changes_are_route_revisions_in_the_history(served: Project) -> None:
    with_validation(served, mode="reject", features=(("plan", "allow"),), tolerance=0.25)
    history = served.routes.history("churn")
    changes = describe_changes(history[-2].policy, history[-1].policy)
    assert changes == [
        "validation defaults (coerce: reject; tolerance 10%) → "
        "reject (coerce: reject; plan=allow; tolerance 25%)"
    ]


async def test_unknown_feature_overrides_are_refused(served: Project) -> None:
    with pytest.raises(InvalidRoute, match="feature 'plann' is not an input"):
        with_validation(served, features=(("plann", "allow"),))
    with pytest.raises(InvalidRoute, match="must be one of reject, flag, allow"):
        with_validation(served, mode="strict")
