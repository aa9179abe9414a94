"""Any JSON in any field, through every protocol: a prediction or a 4xx, never a 5xx."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import anyio.from_thread
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pointsman.api.app import build_app
from pointsman.project import Project
from pointsman.validation.policy import ValidationPolicy
from tests.conftest import admin_headers, churn_rows

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
# Finite numbers past what float32 (or a scaler's arithmetic) can hold: the demo's gradient
# boosting version raises on them, which must be the caller's 4xx, never a 500. With them the
# smallest double and integers past int64 (which the JSON parser reads as floats, or not).
EXTREMES = (
    st.sampled_from(
        [1e308, -1e308, 1e300, -1e300, 1.7976931348623157e308, -1.7976931348623157e308, 3.5e38]
    )
    | st.sampled_from([5e-324, -5e-324, 2.2250738585072014e-308])
    | st.sampled_from([2**63, -(2**63) - 1, 2**64, -(2**64), 10**30, -(10**30), 2**70])
    | st.floats(min_value=1e38, max_value=1e308)
    | st.floats(min_value=-1e308, max_value=-1e38)
    | st.integers(min_value=2**63, max_value=2**100)
    | st.integers(min_value=-(2**100), max_value=-(2**63) - 1)
)
COLUMNS = list(churn_rows(1)[0])
FIELD = st.sampled_from(COLUMNS)
FUZZ = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


class SyncClient:
    """The app in-process on an event loop in a thread, called synchronously (for hypothesis)."""

    def __init__(
        self, portal: anyio.from_thread.BlockingPortal, client: httpx.AsyncClient, app: Any
    ) -> None:
        self.portal = portal
        self.client = client
        self.catalog = app.state.catalog

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        async def call() -> httpx.Response:
            return await self.client.post(path, **kwargs)

        return self.portal.call(call)


@pytest.fixture
def http(served: Project) -> Iterator[SyncClient]:
    """The app answering churn with the demo's v1 (logistic regression)."""
    yield from sync_client(served)


@pytest.fixture(params=[1, 2], ids=["logistic", "gbm"])
def demo_http(request: pytest.FixtureRequest, served: Project) -> Iterator[SyncClient]:
    """The app answering churn with each of the demo's versions: logistic regression, and
    gradient boosting (float32 inside); both answer clean input."""
    if request.param != served.routes.get("churn").primary:
        served.routes.deploy("churn", request.param, "fuzz")
    yield from sync_client(served)


def sync_client(served: Project) -> Iterator[SyncClient]:
    app = build_app(served.settings)
    headers = admin_headers(served)
    with (
        anyio.from_thread.start_blocking_portal() as portal,
        portal.wrap_async_context_manager(app.router.lifespan_context(app)),
    ):
        transport = httpx.ASGITransport(app=app)
        client = httpx.AsyncClient(transport=transport, base_url="http://fuzz", headers=headers)
        yield SyncClient(portal, client, app)
        portal.call(client.aclose)


def bodies(field: str, value: Any, more: dict[str, Any] | None = None) -> list[tuple[str, Any]]:
    """The same poisoned row (`field`, and `more` fields) in every protocol's shape."""
    row = {**churn_rows(1)[0], **(more or {}), field: value}
    values = [row[c] for c in COLUMNS]
    return [
        ("/v1/models/churn/predict", {"rows": [row]}),
        ("/v1/models/churn/predict", {"columns": COLUMNS, "data": [values]}),
        ("/v1/models/churn:predict", {"instances": [row]}),
        ("/v1/models/churn:predict", {"instances": [values]}),
        ("/v1/models/churn/invocations", {"dataframe_records": [row]}),
        (
            "/v1/models/churn/invocations",
            {"dataframe_split": {"columns": COLUMNS, "data": [values]}},
        ),
        (
            "/v2/models/churn/infer",
            {
                "inputs": [
                    {"name": c, "shape": [1], "datatype": "BYTES", "data": [row[c]]}
                    for c in COLUMNS
                ]
            },
        ),
        (
            "/v2/models/churn/infer",
            {"inputs": [{"name": field, "shape": [1], "datatype": "FP64", "data": [value]}]},
        ),
    ]


def check_answer(r: httpx.Response, path: str, body: Any, field: str, names_field: bool) -> None:
    """A prediction (whose warnings name real columns) or a 4xx that names the poisoned field."""
    assert r.status_code < 500, (path, body, r.text)
    if r.status_code >= 400:
        error = r.json()["error"]
        assert error, (path, r.text)
        if names_field:
            assert repr(field) in error or f"'{field}'" in error, (path, body, error)
    else:
        for warning in r.json().get("warnings", []):
            assert warning["feature"] in [*COLUMNS, "(row)"], warning


@FUZZ
@given(field=FIELD, value=JSON_VALUES)
def test_any_value_in_any_field_is_answered_or_refused_with_4xx(
    http: SyncClient, field: str, value: Any
) -> None:
    for i, (path, body) in enumerate(bodies(field, value)):
        # The V2 bodies are refused at their first bad tensor, which may be another one.
        check_answer(http.post(path, json=body), path, body, field, names_field=i < 6)


@FUZZ
@given(field=FIELD, value=JSON_VALUES, mode=st.sampled_from(["reject", "flag", "allow"]))
def test_any_value_under_any_validation_policy_is_answered_or_refused_naming_it(
    http: SyncClient, served: Project, field: str, value: Any, mode: str
) -> None:
    route = served.routes.get("churn")
    if route.policy.validation.mode != mode:
        rules = ValidationPolicy(mode=mode, coerce=mode)
        served.routes.apply("churn", replace(route.policy, validation=rules), "fuzz", "fuzz")
        http.catalog.refresh()
    for i, (path, body) in enumerate(bodies(field, value)):
        check_answer(http.post(path, json=body), path, body, field, names_field=i < 6)


@FUZZ
@given(
    field=FIELD,
    value=EXTREMES | JSON_VALUES,
    mode=st.sampled_from(["reject", "flag", "allow"]),
    more=st.lists(st.tuples(FIELD, EXTREMES), max_size=3),
)
def test_finite_extremes_under_any_policy_are_answered_or_refused_never_a_5xx(
    demo_http: SyncClient,
    served: Project,
    field: str,
    value: Any,
    mode: str,
    more: list[tuple[str, float]],
) -> None:
    route = served.routes.get("churn")
    if route.policy.validation.mode != mode:
        rules = ValidationPolicy(mode=mode, coerce=mode)
        served.routes.apply("churn", replace(route.policy, validation=rules), "fuzz", "fuzz")
        demo_http.catalog.refresh()
    for i, (path, body) in enumerate(bodies(field, value, dict(more))):
        check_answer(
            demo_http.post(path, json=body), path, body, field, names_field=i < 6 and not more
        )


@FUZZ
@given(
    body=JSON_VALUES,
    path=st.sampled_from(
        [
            "/v1/models/churn/predict",
            "/v1/models/churn:predict",
            "/v1/models/churn/invocations",
            "/v2/models/churn/infer",
        ]
    ),
)
def test_any_json_body_is_answered_or_refused_with_4xx(
    http: SyncClient, body: Any, path: str
) -> None:
    r = http.post(path, json=body)
    assert r.status_code < 500, (path, body, r.text)


@FUZZ
@given(raw=st.binary(max_size=200))
def test_any_bytes_are_refused_with_4xx(http: SyncClient, raw: bytes) -> None:
    for path in ("/v1/models/churn/predict", "/v2/models/churn/infer", "/invocations"):
        r = http.post(path, content=raw, headers={"Content-Type": "application/json"})
        assert 400 <= r.status_code < 500, (path, raw, r.text)
