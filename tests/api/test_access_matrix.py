"""Every endpoint x every key state, generated from the app's own route table.

A route added without a decision in pointsman/api/access.py fails
`test_every_endpoint_has_an_access_decision`; every decided one is called here with no key,
a wrong, revoked and expired key, a key lacking its scope and a key holding it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from starlette.routing import Route

from pointsman.api.access import ACCESS, Access, decisions_of, undecided
from pointsman.api.app import build_app
from pointsman.auth import KeyBook
from pointsman.project import Project
from pointsman.settings import Settings, load_settings
from pointsman.store.tables import api_keys

pytestmark = pytest.mark.anyio

PARAMS = {"model": "iris", "version": "1", "name": "nobody", "job_id": "0123abcd"}
STATES = ["none", "wrong", "revoked", "expired", "without_scope", "with_scope"]


@dataclass(frozen=True)
class Call:
    method: str
    template: str
    access: Access

    @property
    def path(self) -> str:
        path = self.template
        for name, value in PARAMS.items():
            path = path.replace("{" + name + "}", value)
        return path

    def needed(self) -> tuple[str, ...]:
        scope = {"path_params": PARAMS, "query_string": b"", "app": None}
        if self.access.model_of.__name__ == "default_model":
            return ("predict:iris",)  # the matrix's app sets default_model = iris
        return self.access.needed(scope)

    def __str__(self) -> str:
        return f"{self.method} {self.template}"


def app_calls() -> list[Call]:
    """Each (method, route) the app serves, with its decision."""
    app = build_app(Settings())
    calls = []
    for route in app.router.routes:
        if not isinstance(route, Route):
            continue
        for method, access in sorted(decisions_of(route, ACCESS).items()):
            if method != "HEAD":
                calls.append(Call(method, route.path, access))
    return calls


CALLS = app_calls()


def test_every_endpoint_has_an_access_decision() -> None:
    app = build_app(Settings())
    missing = undecided(app.router.routes, ACCESS)
    assert missing == [], f"add these to ACCESS in pointsman/api/access.py: {missing}"
    assert len(CALLS) > 40


@dataclass
class Keys:
    by_state: dict[str, str]
    without_scope: dict[str, str]  # call → a key lacking only what that call needs
    with_scope: dict[str, str]


def build_keys(project: Project) -> Keys:
    book = KeyBook(project.engine)
    wrong = "pk_" + "x" * 43
    revoked, _ = book.create("revoked", ["admin"], "t")
    book.revoke("revoked", "t")
    expired, _ = book.create("expired", ["admin"], "t", expires="1d")
    past = datetime.now(UTC) - timedelta(seconds=5)
    with project.engine.begin() as conn:  # as if a day had gone by
        conn.execute(
            api_keys.update()
            .where(api_keys.c.name == "expired")
            .values(expires_at=past, updated_at=past)
        )
    other, _ = book.create("other", ["predict:churn", "read:churn"], "t")
    keys = Keys({"wrong": wrong, "revoked": revoked, "expired": expired}, {}, {})
    made: dict[tuple[str, ...], str] = {}
    for i, call in enumerate(CALLS):
        needed = call.needed()
        if needed not in made:
            made[needed], _ = book.create(f"k{i}", list(needed or ("read:nothing",)), "t")
        keys.with_scope[str(call)] = made[needed]
        keys.without_scope[str(call)] = other
    return keys


@pytest.fixture
async def matrix(served: Project) -> AsyncIterator[tuple[httpx.AsyncClient, Keys]]:
    keys = build_keys(served)
    app = build_app(load_settings(served.settings.project_path(), default_model="iris"))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://m") as client:
            yield client, keys


def expected(call: Call, state: str) -> set[int] | None:
    """The statuses allowed, or None for 'anything but 401/403' (the endpoint's own answer)."""
    kind = call.access.kind
    if kind == "open" or state == "with_scope":
        return None
    if state == "without_scope":
        return None if kind == "client" else {403}
    return {401}


async def test_every_endpoint_answers_each_key_state_as_decided(
    matrix: tuple[httpx.AsyncClient, Keys], served: Project
) -> None:
    client, keys = matrix
    wrong: list[str] = []
    for call in CALLS:
        for state in STATES:
            headers = {}
            if state in keys.by_state:
                headers["Authorization"] = f"Bearer {keys.by_state[state]}"
            elif state == "with_scope":
                headers["Authorization"] = f"Bearer {keys.with_scope[str(call)]}"
            elif state == "without_scope":
                headers["X-API-Key"] = keys.without_scope[str(call)]
            body = {} if call.method in ("POST", "PUT") else None
            r = await client.request(call.method, call.path, json=body, headers=headers)
            allowed = expected(call, state)
            ok = r.status_code not in (401, 403) if allowed is None else r.status_code in allowed
            if not ok:
                wrong.append(f"{call} [{state}] → {r.status_code} {r.text[:120]}")
                continue
            check_refusal(call, state, r)
    assert wrong == [], "\n".join(wrong)


def check_refusal(call: Call, state: str, r: httpx.Response) -> None:
    """401s say how to authenticate, 403s name the scope; bodies in the endpoint's shape."""
    if r.status_code not in (401, 403):
        return
    body = r.json()
    assert body["error"], body
    if call.access.codec is not None and call.access.codec.name == "mlflow":
        assert body["error_code"] in ("UNAUTHENTICATED", "PERMISSION_DENIED"), body
    if r.status_code == 401:
        assert r.headers["www-authenticate"].startswith("Bearer"), r.headers
        assert body["reason"] == {"none": "missing", "wrong": "invalid"}.get(state, state), body
    else:
        assert body["missing_scope"] == call.needed()[0], body
        assert call.needed()[0] in body["error"], body


def test_predict_with_the_wrong_scope_names_it(tmp_path: Path) -> None:
    scope = {"path_params": {"model": "churn"}, "query_string": b"", "app": None}
    assert ACCESS[("POST", "/v1/models/{model}/predict")].needed(scope) == ("predict:churn",)
    assert ACCESS[("GET", "/v2/models/{model}")].needed(scope) == ("read:churn", "predict:churn")
    log = {"path_params": {}, "query_string": b"model=churn&limit=5", "app": None}
    assert ACCESS[("GET", "/v1/predictions")].needed(log) == ("read:churn",)
    log_all = {"path_params": {}, "query_string": b"limit=5", "app": None}
    assert ACCESS[("GET", "/v1/predictions")].needed(log_all) == ("read:*",)
