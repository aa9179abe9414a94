"""Two servers on one PostgreSQL: route and key changes reach the other one pushed, not polled.

Both poll only every 60 s here, so anything in force within a second came by LISTEN/NOTIFY.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from pointsman.alerts import RuleBook
from pointsman.alerts.rules import build_rule
from pointsman.api.app import build_app
from pointsman.auth import KeyBook
from pointsman.monitoring import metrics
from pointsman.project import Project
from pointsman.routing.policy import Arm, Policy
from pointsman.settings import write_settings_file
from tests.api.conftest import register_churn
from tests.conftest import (
    PG_ADMIN_URL,
    Server,
    admin_headers,
    churn_rows,
    free_port,
    fresh_postgres_database,
)

POLL_S = 60.0
SETTLED = 10  # answers in a row, each on a new connection, that show a change in force
PATH = "/v1/models/churn/predict"


@pytest.fixture
def database_url(request: pytest.FixtureRequest) -> str:
    """PostgreSQL only: SQLite has nothing to push with."""
    return fresh_postgres_database(request)


def slow_polls(folder: Path) -> None:
    with (folder / "pointsman.toml").open("a") as toml:
        toml.write(f"refresh_interval_s = {POLL_S}\nlisten_poll_interval_s = {POLL_S}\n")


def second_replica(project: Project, folder: Path) -> Path:
    """Another project folder on the same store and artifacts: another machine's replica."""
    folder.mkdir()
    settings = project.settings
    write_settings_file(
        folder,
        {
            "database_url": settings.database_url,
            "artifact_dir": str(settings.artifact_path()),
            "startup_wait_s": 30,
        },
    )
    slow_polls(folder)
    return folder


def settled_after(holds: Callable[[], bool], limit_s: float) -> float:
    """Seconds until `holds()` is true from then on: the start of SETTLED true answers in a
    row (asked on new connections, so every worker of the server had to agree)."""
    start = time.monotonic()
    in_a_row, since = 0, start
    while in_a_row < SETTLED:
        asked = time.monotonic()
        if not holds():
            in_a_row = 0
        elif in_a_row == 0:
            in_a_row, since = 1, asked
        else:
            in_a_row += 1
        assert time.monotonic() - start < limit_s, f"not settled after {limit_s} s"
    return since - start


def wait_for_revision(
    client: httpx.Client, headers: dict[str, str], body: object, revision: int, limit_s: float
) -> float:
    """Seconds until `client`'s server answers with route `revision` from then on."""

    def holds() -> bool:
        r = client.post(PATH, json=body, headers=headers)
        assert r.status_code == 200, r.text
        return int(r.headers["X-Route-Revision"]) == revision

    return settled_after(holds, limit_s)


def until_status(client: httpx.Client, headers: dict[str, str], body: object, status: int) -> float:
    """Seconds until `client`'s server answers `status` from then on."""
    return settled_after(
        lambda: client.post(PATH, json=body, headers=headers).status_code == status, 5.0
    )


@pytest.mark.postgres
def test_route_and_key_changes_reach_the_other_server_within_a_second(
    project: Project, churn_files: list[tuple[Path, Path]], tmp_path: Path
) -> None:
    register_churn(project, churn_files)
    project.routes.deploy("churn", 1, "t")
    headers = admin_headers(project)
    slow_polls(project.settings.project_path())
    a = Server(project.settings.project_path())
    try:  # B runs two workers and a supervisor process: three listeners
        b = Server(second_replica(project, tmp_path / "replica-b"), workers=2)
    except BaseException:
        a.stop()
        raise
    body = {"rows": churn_rows(1)}
    delays: list[float] = []
    try:
        with (
            httpx.Client(base_url=a.url, timeout=10) as to_a,
            # A new connection per request to B, so that both its workers answer.
            httpx.Client(base_url=b.url, timeout=10, headers={"Connection": "close"}) as to_b,
        ):
            # A version B does not run yet: its supervisor loads it, then B takes the route.
            arms = [{"version": 1, "weight": 90}, {"version": 2, "weight": 10}]
            r = to_a.put("/v1/admin/models/churn/route", json={"arms": arms}, headers=headers)
            assert r.status_code == 200, r.text
            loaded_s = wait_for_revision(to_b, headers, body, r.json()["revision"], 20.0)
            # Weights only: both versions are warm everywhere, so only the push is timed.
            for i in range(10):
                weight = 80 if i % 2 == 0 else 90
                arms = [{"version": 1, "weight": weight}, {"version": 2, "weight": 100 - weight}]
                r = to_a.put("/v1/admin/models/churn/route", json={"arms": arms}, headers=headers)
                assert r.status_code == 200, r.text  # committed: timed from here
                delays.append(wait_for_revision(to_b, headers, body, r.json()["revision"], 5.0))
            # A key made elsewhere (the CLI's path) works on B at once; revoked, it stops.
            key, _ = KeyBook(project.engine).create("pushed", ["predict:churn"], "t")
            pushed = {"Authorization": f"Bearer {key}"}
            key_s = until_status(to_b, pushed, body, 200)
            KeyBook(project.engine).revoke("pushed", "t")
            revoke_s = until_status(to_b, pushed, body, 401)
    finally:
        a.stop()
        b.stop()
    print(f"new version on B in {loaded_s:.2f} s; weight changes: {sorted(delays)}")
    assert max(delays) < 1.0, delays
    assert loaded_s < POLL_S / 4, loaded_s  # the supervisor heard it too (it polls every 30 s)
    assert key_s < 1.0 and revoke_s < 1.0, (key_s, revoke_s)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.postgres
@pytest.mark.anyio
async def test_a_server_polls_while_its_listener_is_down_and_hears_every_kind_after(
    project: Project, churn_files: list[tuple[Path, Path]]
) -> None:
    register_churn(project, churn_files)
    project.routes.apply("churn", Policy(arms=(Arm(1, 50), Arm(2, 50))), "t", "both warm")
    with (project.settings.project_path() / "pointsman.toml").open("a") as toml:
        toml.write(f"refresh_interval_s = 0.2\nlisten_poll_interval_s = {POLL_S}\n")
    settings = project.settings.model_copy(
        update={
            "refresh_interval_s": 0.2,
            "listen_poll_interval_s": POLL_S,
            "alerts_interval_s": POLL_S,
        }
    )
    app = build_app(settings)
    async with app.router.lifespan_context(app):
        listener, catalog, worker = app.state.listener, app.state.catalog, app.state.worker
        route_poll = next(job for job in worker.jobs() if job.name == "route poll")
        assert await asyncio.to_thread(listener.wait_listening, 10.0)
        assert worker.interval_of(route_poll) == POLL_S
        # The link drops and cannot come back (nothing answers where it now reconnects).
        live_url = listener.url
        dead = sa.engine.make_url(live_url).set(port=free_port())
        listener.url = dead.render_as_string(hide_password=False)
        terminate(listener.backend_pid)
        await until(lambda: not listener.is_listening)
        assert worker.interval_of(route_poll) == 0.2
        worker.sample_metrics()
        assert metrics.REGISTRY.get_sample_value("pointsman_changes_listening") == 0
        revision = change_weights(project, 70)
        await until(lambda: catalog.snapshot.routes["churn"].revision == revision, 5.0)
        # Back: listening again, and the poll relaxes.
        listener.url = live_url
        await until(lambda: listener.is_listening, 15.0)
        assert worker.interval_of(route_poll) == POLL_S
        worker.sample_metrics()
        assert metrics.REGISTRY.get_sample_value("pointsman_changes_listening") == 1
        revision = change_weights(project, 60)
        await until(lambda: catalog.snapshot.routes["churn"].revision == revision, 1.0)
        # A new alert rule runs the alerts tick at once (not in 60 s): its first evaluation.
        assert worker.alerts._ticks == 0
        RuleBook(project.engine).add(build_rule("pushed", when="error_rate > 0.5"), "t")
        await until(lambda: worker.alerts._ticks == 1, 2.0)


def change_weights(project: Project, weight: int) -> int:
    policy = Policy(arms=(Arm(1, weight), Arm(2, 100 - weight)))
    return project.routes.apply("churn", policy, "t", "weights").after.revision


def terminate(pid: int | None) -> None:
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        assert conn.execute(sa.text("SELECT pg_terminate_backend(:p)"), {"p": pid}).scalar()
    admin.dispose()


async def until(condition: object, limit_s: float = 10.0) -> None:
    start = time.monotonic()
    while not condition():  # type: ignore[operator]
        assert time.monotonic() - start < limit_s, f"not so after {limit_s} s"
        await asyncio.sleep(0.01)
