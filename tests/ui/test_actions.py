"""Console actions in-process: each planned as a diff, confirmed with a reason, audited."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from pointsman.auth.audit import read_audit
from pointsman.project import Project
from tests.ui.test_console import new_key, sign_in, wait_keys

pytestmark = pytest.mark.anyio


async def confirm_and_do(
    client: httpx.AsyncClient, csrf: str, model: str, query: str, reason: str = "test"
) -> httpx.Response:
    page = await client.get(f"/ui/models/{model}/actions/confirm?{query}")
    assert page.status_code == 200, page.text
    assert 'id="changes"' in page.text and 'class="diff"' in page.text
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', page.text))
    action = re.search(r'<form method="post" action="([^"]+)"', page.text)
    assert action is not None
    return await client.post(action.group(1), data={**fields, "csrf": csrf, "reason": reason})


async def test_canary_promote_weights_rollback_each_confirmed_with_a_reason(
    app_client, churn_files: list[tuple[Path, Path]]
) -> None:
    client, project = app_client
    project: Project
    key = new_key(project, "ds", ["deploy:churn", "read:churn"])
    await wait_keys(client)
    csrf = await sign_in(client, key)
    assert (await client.get("/ui/models/churn/actions")).status_code == 200
    # No reason: refused, nothing changes.
    refused = await confirm_and_do(client, csrf, "churn", "kind=canary&version=2", reason="")
    assert refused.status_code == 400 and "Say why" in refused.text
    assert project.routes.get("churn").revision == 1
    done = await confirm_and_do(client, csrf, "churn", "kind=canary&version=2&steps=10,50")
    assert done.status_code == 303, done.text
    route = project.routes.get("churn")
    assert route.policy.canary is not None and route.policy.canary.candidate == 2
    assert "canary" in (await client.get(done.headers["location"])).text
    done = await confirm_and_do(client, csrf, "churn", "kind=promote&version=2")
    assert done.status_code == 303 and project.routes.get("churn").primary == 2
    done = await confirm_and_do(client, csrf, "churn", "kind=weights&w1=70&w2=30")
    assert done.status_code == 303
    assert [(a.version, a.weight) for a in project.routes.get("churn").arms] == [(1, 70), (2, 30)]
    done = await confirm_and_do(client, csrf, "churn", "kind=rollback", reason="too slow")
    assert done.status_code == 303 and project.routes.get("churn").primary == 2
    entries = read_audit(project.engine, action="rollback")
    assert entries and entries[0].who.startswith("ds-")
    # A confirmation reviewed against a route that changed since is refused, nothing written.
    page = await client.get("/ui/models/churn/actions/confirm?kind=rollback")
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', page.text))
    assert fields["seen_revision"] == str(project.routes.get("churn").revision)
    moved = project.routes.deploy("churn", 1, "someone else", "meanwhile").after
    stale = await client.post(
        "/ui/models/churn/actions/rollback", data={**fields, "csrf": csrf, "reason": "late"}
    )
    assert stale.status_code == 409 and "changed meanwhile" in stale.text
    assert project.routes.get("churn") == moved
    # A hold that is not a number is explained, not a 500.
    page = await client.get("/ui/models/churn/actions/confirm?kind=canary&version=2&hold_s=soon")
    assert page.status_code == 400 and "a number of seconds" in page.text and "soon" in page.text
    # So are steps the RouteBook would refuse, and a canary of the primary itself.
    page = await client.get("/ui/models/churn/actions/confirm?kind=canary&version=2&steps=50,5")
    assert page.status_code == 422 and "rise strictly" in page.text
    page = await client.get("/ui/models/churn/actions/confirm?kind=canary&version=1")
    assert page.status_code == 409 and "already the primary" in page.text
    # A bad weight split is explained before anything is written.
    page = await client.get("/ui/models/churn/actions/confirm?kind=weights&w1=70&w2=20")
    assert page.status_code == 400 and "add up to 90" in page.text
    # Upload the same bytes as version 2: the registry says so.
    path, data = churn_files[1]
    uploaded = await client.post(
        "/ui/models/churn/upload",
        data={"csrf": csrf, "target": "churned", "reason": "same bytes again"},
        files={"artifact": (path.name, path.read_bytes()),
               "training_data": (data.name, data.read_bytes())},
    )  # fmt: skip
    assert uploaded.status_code == 303
    assert "version 2 already" in (await client.get(uploaded.headers["location"])).text


async def test_a_read_only_key_may_not_act(app_client) -> None:
    client, project = app_client
    key = new_key(project, "viewer", ["read:churn"])
    await wait_keys(client)
    csrf = await sign_in(client, key)
    before = project.routes.get("churn").revision
    page = await client.get("/ui/models/churn/actions/confirm?kind=deploy&version=2")
    assert page.status_code == 403 and "deploy:churn" in page.text
    posted = await client.post(
        "/ui/models/churn/actions/deploy", data={"csrf": csrf, "version": "2", "reason": "x"}
    )
    assert posted.status_code == 403 and project.routes.get("churn").revision == before
