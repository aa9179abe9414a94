"""The console in-process (ASGI): sign-in, cookie flags, CSRF, catalogue, portal, OpenAPI."""

from __future__ import annotations

import itertools
import re
from datetime import UTC, datetime, timedelta

import anyio
import httpx
import pytest

from pointsman.auth import KeyBook
from pointsman.logstore.shipper import insert_records
from pointsman.project import Project
from pointsman.store.rollups import bucket_of
from pointsman.ui.dashboard import Span, read_window

pytestmark = pytest.mark.anyio


async def sign_in(client: httpx.AsyncClient, key: str) -> str:
    """Sign in (signed out first); the session's CSRF token (from the next page's forms)."""
    client.cookies.clear()
    form = await client.get("/ui/signin")
    token = re.search(r'name="token" value="([^"]+)"', form.text)
    assert token is not None
    answer = await client.post(
        "/ui/signin", data={"key": key, "token": token.group(1), "next": "/ui/models"}
    )
    assert answer.status_code == 303, answer.text
    page = await client.get("/ui/models")
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found is not None
    return found.group(1)


def new_key(project: Project, name: str, scopes: list[str]) -> str:
    """A new key; names get a suffix since tests of a module share one project."""
    key, _ = KeyBook(project.engine).create(f"{name}-{next(SERIAL)}", scopes, "test")
    return key


SERIAL = itertools.count()


async def wait_keys(client: httpx.AsyncClient) -> None:
    """Keys created after start reach the server's key table within a refresh interval."""
    app = client._transport.app  # type: ignore[attr-defined]
    app.state.console.keys.refresh(force=True)


async def test_sign_in_sets_a_strict_http_only_cookie_and_shows_the_catalogue(app_client) -> None:
    client, project = app_client
    key = new_key(project, "ann", ["admin"])
    await wait_keys(client)
    client.cookies.clear()
    assert (await client.get("/ui/models")).status_code == 303  # to the sign-in page
    form = await client.get("/ui/signin")
    token = re.search(r'name="token" value="([^"]+)"', form.text).group(1)  # type: ignore[union-attr]
    answer = await client.post("/ui/signin", data={"key": key, "token": token})
    cookie = next(v for k, v in answer.headers.multi_items() if k == "set-cookie"
                  and v.startswith("pointsman_session="))  # fmt: skip
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/ui" in cookie
    assert "Secure" not in cookie  # plain HTTP here; tests/ui/test_browser.py has no TLS either
    page = await client.get("/ui/models")
    assert page.status_code == 200 and "churn" in page.text and "iris" in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert key not in page.text


async def test_a_wrong_key_is_refused_with_the_reason(app_client) -> None:
    client, _ = app_client
    form = await client.get("/ui/signin")
    token = re.search(r'name="token" value="([^"]+)"', form.text).group(1)  # type: ignore[union-attr]
    answer = await client.post("/ui/signin", data={"key": "pk_nope", "token": token})
    assert answer.status_code == 401 and "not valid" in answer.text


async def test_changes_need_the_csrf_token_and_the_scope(app_client) -> None:
    client, project = app_client
    reader = new_key(project, "reader", ["read:churn", "predict:churn"])
    admin = new_key(project, "ann", ["admin"])
    await wait_keys(client)
    csrf = await sign_in(client, admin)
    body = {"description": "Who leaves", "owner": "team-a", "tags": "retention, tabular"}
    refused = await client.post("/ui/models/churn/about", data=body)
    assert refused.status_code == 403 and "CSRF" in refused.text
    saved = await client.post("/ui/models/churn/about", data={**body, "csrf": csrf})
    assert saved.status_code == 303
    page = await client.get("/ui/models/churn")
    assert "Who leaves" in page.text and "retention" in page.text and "team-a" in page.text
    # The catalogue finds it by tag; the audit log has the change.
    assert "churn" in (await client.get("/ui/models?q=retention")).text
    assert "iris" not in (await client.get("/ui/models?q=retention")).text
    out = await client.post("/ui/signout", data={"csrf": csrf})
    assert out.status_code == 303
    csrf = await sign_in(client, reader)
    refused = await client.post("/ui/models/churn/about", data={**body, "csrf": csrf})
    assert refused.status_code == 403 and "deploy:churn" in refused.text
    assert (await client.get("/ui/models/iris")).status_code == 404


async def test_model_page_shows_the_route_and_the_signature_with_training_ranges(
    app_client,
) -> None:
    client, project = app_client
    await wait_keys(client)
    await sign_in(client, new_key(project, "ann", ["admin"]))
    page = (await client.get("/ui/models/churn")).text
    assert "Version 1 answers every request." in page
    assert "tenure_months" in page and "premium" in page  # a range and a category
    assert "<svg" in page and "Route picture" in page


async def test_portal_calls_are_filled_and_try_it_answers_as_the_client(app_client) -> None:
    client, project = app_client
    await wait_keys(client)
    await sign_in(client, new_key(project, "app-dev", ["predict:churn", "read:churn"]))
    page = await client.get("/ui/models/churn/portal")
    assert page.status_code == 200
    for needle in ("/v1/models/churn/predict", "/v2/models/churn/infer", "tritonclient",
                   "/v1/models/churn:predict", "dataframe_split", "fetch("):  # fmt: skip
        assert needle in page.text
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    body = re.search(r'<textarea id="body" name="body"[^>]*>([^<]+)</textarea>', page.text)
    assert body is not None
    import html

    answered = await client.post(
        "/ui/models/churn/try", data={"csrf": csrf, "body": html.unescape(body.group(1))}
    )
    assert answered.status_code == 200
    assert "HTTP 200" in answered.text and "predictions" in answered.text
    bad = await client.post("/ui/models/churn/try", data={"csrf": csrf, "body": '{"rows": [{}]}'})
    assert "HTTP 422" in bad.text


async def test_openapi_lists_the_predict_paths_of_the_models_the_key_may_use(
    app_client,
) -> None:
    client, project = app_client
    key = new_key(project, "app", ["predict:churn"])
    await wait_keys(client)
    anonymous = (await client.get("/openapi.json")).json()
    assert not any(p.startswith("/v1/models/churn/") for p in anonymous["paths"])
    assert "/v1/admin/models/{model}/about" in anonymous["paths"]
    headers = {"Authorization": f"Bearer {key}"}
    document = (await client.get("/openapi.json", headers=headers)).json()
    path = document["paths"]["/v1/models/churn/predict"]["post"]
    forms = path["requestBody"]["content"]["application/json"]["schema"]["anyOf"]
    (rows,) = [f["properties"]["rows"] for f in forms if "rows" in f["required"]]
    row = document["components"]["schemas"][rows["items"]["$ref"].rsplit("/", 1)[1]]
    assert row["properties"]["tenure_months"]["type"] in ("integer", "number")
    assert "/v1/models/iris/predict" not in document["paths"]


async def test_about_through_the_admin_api_needs_deploy_or_admin(app_client) -> None:
    client, project = app_client
    deployer = new_key(project, "ds", ["deploy:churn", "read:churn"])
    reader = new_key(project, "reader", ["read:churn"])
    await wait_keys(client)
    url = "/v1/admin/models/churn/about"
    body = {"description": "d", "owner": "o", "tags": ["a", "b"]}
    refused = await client.put(url, json=body, headers={"Authorization": f"Bearer {reader}"})
    assert refused.status_code == 403
    ok = await client.put(url, json=body, headers={"Authorization": f"Bearer {deployer}"})
    assert ok.status_code == 200 and ok.json()["tags"] == ["a", "b"]
    got = await client.get(url, headers={"Authorization": f"Bearer {reader}"})
    assert got.json()["owner"] == "o"
    bad = await client.put(
        url, json={"tags": ["no spaces"]}, headers={"Authorization": f"Bearer {deployer}"}
    )
    # The schema carries the tag's form; the refusal names the field and the value.
    assert bad.status_code == 422, bad.text
    assert "tags" in bad.json()["error"] and "no spaces" in bad.json()["error"]


async def test_dashboard_shows_the_window_with_charts_and_tables(app_client) -> None:
    client, project = app_client
    key = new_key(project, "ann", ["admin"])
    await wait_keys(client)
    row = {"tenure_months": 3, "monthly_charges": 99.5, "support_calls": 4, "age": 31}
    rows = {"rows": [{**row, "plan": "premium", "contract": "monthly", "region": "north"}]}
    answer = await client.post(
        "/v1/models/churn/predict", json=rows, headers={"Authorization": f"Bearer {key}"}
    )
    assert answer.status_code == 200, answer.text
    await sign_in(client, key)
    for _ in range(50):  # the record reaches the store within a ship interval
        page = await client.get("/ui/models/churn/dashboard?window=15m")
        assert page.status_code == 200, page.text
        total = re.search(r'<strong id="total-requests">(\d+)</strong>', page.text)
        if total is not None and int(total.group(1)) >= 1:
            break
        await anyio.sleep(0.1)
    else:
        raise AssertionError("the request never reached the dashboard")
    assert '"data": [' in page.text or '"data":[' in page.text
    for needle in ('id="chart-data"', "Latency percentiles", "Drift: tenure_months",
                   "Shadow agreement", "Alert history"):  # fmt: skip
        assert needle in page.text


async def test_the_cookie_is_secure_under_tls(app_client) -> None:
    client, project = app_client
    key = new_key(project, "ann", ["admin"])
    await wait_keys(client)
    transport = client._transport
    async with httpx.AsyncClient(transport=transport, base_url="https://pointsman") as tls:
        form = await tls.get("/ui/signin")
        token = re.search(r'name="token" value="([^"]+)"', form.text).group(1)  # type: ignore[union-attr]
        answer = await tls.post("/ui/signin", data={"key": key, "token": token})
    cookie = next(v for k, v in answer.headers.multi_items()
                  if k == "set-cookie" and v.startswith("pointsman_session="))  # fmt: skip
    assert "Secure" in cookie and "HttpOnly" in cookie


async def test_window_counts_fall_in_their_time_buckets(app_client) -> None:
    _, project = app_client
    now = datetime.now(UTC)
    records = [
        {"request_id": f"w{i}", "role": role, "version": 1, "model": "iris",
         "time": (now - timedelta(minutes=minutes)).timestamp(), "n_rows": 1, "inputs": {},
         "latency_ms": latency, "error_code": error,
         "findings": [{"feature": "petal_width", "rule": "range"}] if i == 0 else None}
        for i, (minutes, role, latency, error) in enumerate([
            (49, "primary", 5.0, None), (49, "primary", 7.0, "model_error"),
            (9, "fallback", 9.0, None), (9, "shadow", 1.0, None)])
    ]  # fmt: skip
    insert_records(project.engine, records)
    span = Span.ending_at(now, 3600)
    window = read_window(project.engine, "iris", None, span)
    # 30 buckets of 2 minutes, the last holding the current minute: 49 minutes back is
    # bucket 5, 9 minutes back bucket 25, whichever second of its minute `now` is.
    assert span.buckets == 30 and span.width == 2
    assert window.requests[5] == 2 and window.errors[5] == 1
    assert window.requests[25] == 1 and window.fallbacks[25] == 1  # the shadow is not counted
    assert sum(window.requests) == 3
    assert window.histograms[5][bucket_of(5.0)] == 1 and window.histograms[5][bucket_of(7.0)] == 1
    assert window.findings[("petal_width", "range")] == 1
