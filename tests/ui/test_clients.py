"""Clients in the console: describe an application, request a key from the portal, an admin
approves it from another session, the developer collects it and calls the model with it;
usage per client; refusals and every step audited."""

from __future__ import annotations

import re

import anyio
import pytest

from pointsman.auth.audit import read_audit
from tests.ui.test_console import new_key, sign_in, wait_keys

pytestmark = pytest.mark.anyio


async def test_a_key_requested_approved_collected_and_used(app_client) -> None:
    client, project = app_client
    developer = new_key(project, "dev", ["read:churn"])
    admin = new_key(project, "ann", ["admin"])
    await wait_keys(client)
    csrf = await sign_in(client, developer)
    described = await client.post(
        "/ui/clients",
        data={
            "csrf": csrf,
            "name": "crm",
            "owner": "sales-tools",
            "contact": "crm@example.com",
            "purpose": "flag customers likely to leave",
        },
    )
    assert described.status_code == 303
    portal = await client.get("/ui/models/churn/portal")
    assert 'action="/ui/models/churn/keyrequest"' in portal.text
    asked = await client.post(
        "/ui/models/churn/keyrequest",
        data={"csrf": csrf, "client": "crm", "predict": "1", "note": "for the nightly job"},
    )
    assert asked.status_code == 303
    page = await client.get("/ui/requests")
    request_id = int(re.search(r'id="request-(\d+)"', page.text).group(1))  # type: ignore[union-attr]
    # Not the developer's to approve.
    denied = await client.post(
        f"/ui/requests/{request_id}/decide",
        data={"csrf": csrf, "decision": "approve", "reason": "me"},
    )
    assert denied.status_code == 403
    # The admin, in another session, approves it.
    admin_csrf = await sign_in(client, admin)
    approved = await client.post(
        f"/ui/requests/{request_id}/decide",
        data={"csrf": admin_csrf, "decision": "approve", "reason": "known team"},
    )
    assert approved.status_code == 303
    # The developer collects the key once and predicts with it.
    csrf = await sign_in(client, developer)
    collected = await client.post(f"/ui/requests/{request_id}/collect", data={"csrf": csrf})
    key = re.search(r'<code id="key-value">(pk_[^<]+)</code>', collected.text).group(1)  # type: ignore[union-attr]
    await wait_keys(client)
    row = {
        "tenure_months": 3,
        "monthly_charges": 99.5,
        "support_calls": 4,
        "age": 31,
        "plan": "premium",
        "contract": "monthly",
        "region": "north",
    }
    answer = await client.post(
        "/v1/models/churn/predict",
        json={"rows": [row]},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert answer.status_code == 200
    again = await client.post(f"/ui/requests/{request_id}/collect", data={"csrf": csrf})
    assert again.status_code == 409
    actions = [e.action for e in read_audit(project.engine)]
    for action in ("client.create", "key_request.create", "key_request.approve", "key.create"):
        assert action in actions
    # Its usage shows on the clients page once the record is shipped.
    for _ in range(50):
        page = await client.get("/ui/clients")
        if re.search(r"<th scope=\"row\">crm</th>.*?<td class=\"num\">1</td>", page.text, re.S):
            break
        await anyio.sleep(0.1)
    else:
        raise AssertionError("the client's request never showed in its usage")


async def test_a_refused_request_needs_a_reason_and_gives_no_key(app_client) -> None:
    client, project = app_client
    developer = new_key(project, "dev", ["read:churn"])
    admin = new_key(project, "ann", ["admin"])
    await wait_keys(client)
    csrf = await sign_in(client, developer)
    await client.post(
        "/ui/clients",
        data={"csrf": csrf, "name": "bi", "owner": "o", "contact": "c", "purpose": "p"},
    )
    await client.post(
        "/ui/models/churn/keyrequest", data={"csrf": csrf, "client": "bi", "read": "1"}
    )
    page = await client.get("/ui/requests")
    request_id = int(re.search(r'id="request-(\d+)"', page.text).group(1))  # type: ignore[union-attr]
    admin_csrf = await sign_in(client, admin)
    no_reason = await client.post(
        f"/ui/requests/{request_id}/decide",
        data={"csrf": admin_csrf, "decision": "refuse", "reason": ""},
    )
    assert no_reason.status_code == 400
    refused = await client.post(
        f"/ui/requests/{request_id}/decide",
        data={"csrf": admin_csrf, "decision": "refuse", "reason": "use the shared BI key"},
    )
    assert refused.status_code == 303
    csrf = await sign_in(client, developer)
    collected = await client.post(f"/ui/requests/{request_id}/collect", data={"csrf": csrf})
    assert collected.status_code == 409 and "refused" in collected.text
