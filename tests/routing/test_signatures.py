"""Versions whose inputs differ from the primary's are refused with a diff, unless allowed."""

from __future__ import annotations

import asyncio
import contextlib
import json
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import orjson
import pandas as pd
import pytest
from click.testing import CliRunner, Result

from pointsman.api.app import build_app
from pointsman.auth import read_audit
from pointsman.cli.main import cli
from pointsman.errors import IncompatibleSignature, InvalidInput
from pointsman.project import Project, open_project
from pointsman.protocols import Payload, native
from pointsman.registry import Submission
from pointsman.routing.compat import signature_diff
from pointsman.routing.stats import window
from pointsman.settings import load_settings
from pointsman.types import ColumnSpec, Outcome, Signature
from tests.conftest import admin_headers
from tests.serving import Serving, serving

MODEL = """
class Model:
    classes_ = [0, 1]

    def predict(self, frame):
        return (frame["x"] > 0.5).astype(int).tolist()
"""
# version → its training columns (besides the target y): each differs from v1 in one way
COLUMNS: dict[int, dict[str, list[object]]] = {
    1: {"x": [0.1, 0.9, 0.4, 0.7], "plan": ["a", "b", "a", "b"]},
    2: {"x": [0.2, 0.8, 0.3, 0.6], "plan": ["b", "a", "b", "a"]},  # a compatible twin
    3: {"x": [0.1, 0.9, 0.4, 0.7]},  # no plan
    4: {"x": [0.1, 0.9, 0.4, 0.7], "plan": [1, 2, 1, 2]},  # plan as a number
    5: {"x": [0.1, 0.9, 0.4, 0.7], "plan": ["a", "b", "a", "b"], "age": [30, 40, 50, 60]},
    6: {"plan": ["a", "b", "a", "b"], "x": [0.1, 0.9, 0.4, 0.7]},  # reordered
}
DIFFS = {
    3: ["- plan: string (missing in v3)"],
    4: ["~ plan: string → long"],
    5: ["+ age: long (new in v5; callers of v1 do not send it)"],
    6: [
        "↕ order: x, plan → plan, x (positional payloads, such as V1 instance lists, "
        "would be read into the wrong inputs)"
    ],
}


def sig(*columns: tuple[str, str]) -> Signature:
    return Signature(tuple(ColumnSpec(n, t) for n, t in columns))


@pytest.mark.parametrize(
    ("candidate", "diff"),
    [
        (sig(("tenure", "long"), ("plan", "string")), []),
        (sig(("plan", "string")), ["- tenure: long (missing in v3)"]),
        (sig(("tenure", "long"), ("plan", "long")), ["~ plan: string → long"]),
        (
            sig(("tenure", "double"), ("plan", "string"), ("age", "long")),
            ["+ age: long (new in v3; callers of v1 do not send it)", "~ tenure: long → double"],
        ),
    ],
)
def test_signature_diff_names_each_missing_new_and_retyped_input(
    candidate: Signature, diff: list[str]
) -> None:
    primary = sig(("tenure", "long"), ("plan", "string"))
    assert signature_diff(primary, candidate, 1, 3) == diff


def register_family(project: Project, folder: Path) -> None:
    for version, columns in COLUMNS.items():
        source = folder / f"model_v{version}.py"  # a file of its own: artifacts are by content
        source.write_text(f"# version {version}" + textwrap.dedent(MODEL))
        data = folder / f"v{version}.csv"
        pd.DataFrame({**columns, "y": [0, 1, 0, 1]}).to_csv(data, index=False)
        record, _ = project.registry.register(
            Submission(model="m", path=source, entrypoint="Model", training_data=data, target="y")
        )
        assert record.number == version


def run(*args: str, ok: bool = True) -> Result:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert (result.exit_code == 0) == ok, result.output
    return result


@pytest.fixture
def p(tmp_path: Path, database_url: str) -> list[str]:
    """`--project DIR` of a project with m v1..v6 registered and v1 deployed."""
    folder = tmp_path / "proj"
    run("init", str(folder), "--database-url", database_url)
    project = open_project(load_settings(folder))
    try:
        register_family(project, tmp_path)
    finally:
        project.close()
    args = ["--project", str(folder)]
    run(*args, "deploy", "m", "1")
    return args


def flat(text: str) -> str:
    return " ".join(text.split())


def audit_entries(p: list[str]) -> list[dict[str, object]]:
    entries: list[dict[str, object]] = json.loads(
        run(*p, "audit", "--action", "signature", "--json").output
    )
    return entries


@pytest.mark.parametrize(
    "command",
    [
        ["deploy", "m", "{v}"],
        ["promote", "m", "{v}"],
        ["route", "m", "--ab", "1=50,{v}=50"],
        ["route", "m", "--shadow", "{v}"],
        ["route", "m", "--fallback", "{v}"],
        ["canary", "m", "{v}"],
    ],
    ids=["deploy", "promote", "ab", "shadow", "fallback", "canary"],
)
def test_every_route_command_refuses_an_incompatible_version_with_the_diff(
    p: list[str], command: list[str]
) -> None:
    for version, diff in DIFFS.items():
        args = [part.format(v=version) for part in command]
        out = flat(run(*p, *args, ok=False).output)
        assert f"Version {version} of 'm' does not take the inputs of version 1" in out, out
        for line in diff:
            assert flat(line) in out, out
        assert "--allow-signature-change" in out
    assert json.loads(run(*p, "route", "m", "--json").output)["revision"] == 1  # nothing written
    run(*p, *[part.format(v=2) for part in command])  # the compatible twin goes in
    assert audit_entries(p) == []


def test_allow_signature_change_lets_it_in_and_is_audited(p: list[str]) -> None:
    run(*p, "canary", "m", "3", "--allow-signature-change")
    run(*p, "promote", "m", "3")  # the candidate was let in when its canary started
    (entry,) = audit_entries(p)
    assert entry["action"] == "signature.allowed" and entry["target"] == "model:m"
    assert entry["before"] == {"version": 1}
    assert entry["after"] == {"version": 3, "diff": DIFFS[3]}
    assert "- plan: string (missing in v3)" in str(entry["detail"])


def test_rollback_is_never_refused_for_signatures(p: list[str]) -> None:
    run(*p, "deploy", "m", "4", "--allow-signature-change")
    run(*p, "rollback", "m")
    assert json.loads(run(*p, "route", "m", "--json").output)["arms"] == [
        {"version": 1, "weight": 100}
    ]


def test_the_route_book_refuses_with_409_and_the_diff_unless_allowed(
    tmp_path: Path, project: Project
) -> None:
    register_family(project, tmp_path)
    project.routes.deploy("m", 1, "t")
    with pytest.raises(IncompatibleSignature) as refused:
        project.routes.deploy("m", 5, "t")
    assert refused.value.status == 409 and refused.value.to_json()["diff"] == DIFFS[5]
    change = project.routes.deploy("m", 5, "t", allow_signature_change=True)
    assert change.after.primary == 5


async def test_the_admin_api_refuses_with_409_and_the_diff_unless_allowed(
    tmp_path: Path, project: Project
) -> None:
    register_family(project, tmp_path)
    project.routes.deploy("m", 1, "t")
    headers = admin_headers(project)  # before the app reads its keys
    app = build_app(project.settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://t",
            headers=headers,
        ) as client,
    ):  # fmt: skip
        for path, body in [
            ("deploy", {"version": 4}),
            ("promote", {"version": 4}),
            ("canary", {"version": 4, "steps": [50, 100]}),
        ]:
            r = await client.post(f"/v1/admin/models/m/{path}", json=body)
            assert r.status_code == 409, r.text
            assert r.json()["code"] == "incompatible_signature"
            assert r.json()["diff"] == DIFFS[4] and "plan" in r.json()["error"]
        route = {"arms": [{"version": 1, "weight": 50}, {"version": 6, "weight": 50}]}
        r = await client.put("/v1/admin/models/m/route", json=route)
        assert r.status_code == 409 and r.json()["diff"] == DIFFS[6], r.text
        allowed = {"version": 4, "allow_signature_change": True}
        r = await client.post("/v1/admin/models/m/deploy", json=allowed)
        assert r.status_code == 200, r.text
        (entry,) = read_audit(project.engine, action="signature")
        assert entry.after == {"version": 4, "diff": DIFFS[4]}


# -- an arm refusing by its signature is counted, and its canary rolled back ------------
pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def served(project: Project, tmp_path: Path) -> AsyncIterator[Serving]:
    register_family(project, tmp_path)
    project.routes.deploy("m", 1, "t")
    async with serving(project) as served:
        yield served


async def taken(served: Serving, revision: int) -> None:
    """Until the catalog serves `revision` (its versions' runners are warm)."""
    for _ in range(600):
        served.catalog.refresh()
        if served.catalog.snapshot.routes["m"].revision == revision:
            return
        await asyncio.sleep(0.1)
    pytest.fail(f"revision {revision} not taken: {served.catalog.pending}")


async def test_a_canary_whose_signature_refuses_callers_is_counted_and_rolled_back(
    served: Serving,
) -> None:
    routes = served.project.routes
    routes.start_canary(
        "m", 3, [50, 100], "t", hold_requests=200, hold_s=0, allow_signature_change=True
    )
    revision = routes.get("m").revision
    await taken(served, revision)
    refused = 0
    for i in range(200):
        body = orjson.dumps({"rows": [{"x": i / 200, "plan": "a"}]})  # what v1 takes
        target = served.catalog.target("m")
        with contextlib.suppress(InvalidInput):
            await served.pipeline.predict(target, Payload(native.CODEC, body, {}), Outcome("t"))
            continue
        refused += 1  # routed to v3, whose signature has no `plan`
    served.pipeline.stats.flush(served.project.engine)
    cell = window(served.project.engine, "m", [revision])[3, "primary"]
    assert refused > 40 and (cell.requests, cell.invalid) == (refused, refused)
    (change,) = served.canary.tick()
    assert change.policy.canary is not None
    assert change.policy.canary.state == "rolled_back", change.reason
    assert "validation-failure rate 100.0%" in change.reason
