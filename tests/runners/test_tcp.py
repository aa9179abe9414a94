"""Runners over TCP: `pointsman runner serve` processes on loopback, a front calling them with
the shared secret; a wrong secret is refused; a runner killed is a 503, or the fallback."""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from pointsman.api.app import build_app
from pointsman.project import Project, init_project, open_project
from pointsman.routing import Arm, Policy
from pointsman.runners import handshake
from pointsman.settings import Settings, load_settings
from tests.api.conftest import register_churn
from tests.conftest import RunnerProcess, admin_headers, churn_rows

SECRET = "tcp-test-secret-0123456789"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def churn_project(
    tmp_path_factory: pytest.TempPathFactory, churn_files: list[tuple[Path, Path]]
) -> Iterator[Project]:
    """churn v1 routed (v2 registered), on SQLite: the transport does not depend on the store.
    Shared by the module's tests (the one that changes the route runs last)."""
    tmp_path = tmp_path_factory.mktemp("tcp")
    folder, _ = init_project(tmp_path / "project", f"sqlite:///{tmp_path / 'pointsman.db'}")
    project = open_project(load_settings(folder))
    project.registry.compile_at_register = False
    project.routes.preflight = None  # servers load versions themselves: not this process
    register_churn(project, churn_files)
    project.routes.deploy("churn", 1, "t")
    yield project
    project.close()


def two_runners(churn_project: Project) -> Iterator[list[RunnerProcess]]:
    """Two runner processes of churn v1."""
    folder = churn_project.settings.project_path()
    started = [RunnerProcess(folder, "churn", 1, SECRET) for _ in range(2)]
    try:
        for runner in started:
            runner.wait_listening()
        yield started
    finally:
        for runner in started:
            runner.stop()


@pytest.fixture(scope="module")
def runners(churn_project: Project) -> Iterator[list[RunnerProcess]]:
    """Two runner processes of churn v1, shared by the tests that leave them up."""
    yield from two_runners(churn_project)


@pytest.fixture
def own_runners(churn_project: Project) -> Iterator[list[RunnerProcess]]:
    """Two runner processes of churn v1 for a test that kills them."""
    yield from two_runners(churn_project)


def front_settings(
    project: Project, addresses: str, secret: str = SECRET, wait_s: float = 10
) -> Settings:
    return load_settings(
        project.settings.project_path(),
        remote_runners={"churn:1": addresses},
        runner_secret=secret,
        startup_wait_s=wait_s,
    )


async def _front(settings: Settings, project: Project) -> AsyncIterator[httpx.AsyncClient]:
    headers = admin_headers(project, f"tcp-{uuid.uuid4().hex[:8]}")  # before the app reads keys
    app = build_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://front", headers=headers
        ) as client:
            client.app = app  # type: ignore[attr-defined]
            yield client


ROWS = {"rows": churn_rows(3)}


@pytest.mark.anyio
async def test_a_front_predicts_through_two_tcp_runners(
    churn_project: Project, runners: list[RunnerProcess]
) -> None:
    addresses = ",".join(r.address for r in runners)
    async for client in _front(front_settings(churn_project, addresses), churn_project):
        assert (await client.get("/readyz")).status_code == 200
        for _ in range(20):
            r = await client.post("/v1/models/churn/predict", json=ROWS)
            assert r.status_code == 200, r.text
            assert r.json()["version"] == 1
        catalog = client.app.state.catalog  # type: ignore[attr-defined]
        pool = catalog.pools["churn", 1]
        assert [str(a) for a in pool.addresses] == [r.address for r in runners]
        await catalog.connect()
        assert all(replica.is_connected for replica in pool.replicas)


@pytest.mark.anyio
async def test_a_front_with_another_secret_is_refused(
    churn_project: Project, runners: list[RunnerProcess]
) -> None:
    settings = front_settings(
        churn_project, runners[0].address, secret="not-the-same-secret!", wait_s=1
    )
    async for client in _front(settings, churn_project):
        r = await client.post("/v1/models/churn/predict", json=ROWS)
        assert r.status_code == 503, r.text
        ready = await client.get("/readyz")
        assert ready.status_code == 503
        assert "refused" in ready.text


def test_a_runner_drops_a_caller_that_cannot_prove_the_secret(
    runners: list[RunnerProcess],
) -> None:
    with socket.create_connection(("127.0.0.1", runners[0].port), timeout=5) as sock:
        hello = sock.recv(handshake.GREETING)
        assert hello.startswith(handshake.HELLO)
        sock.sendall(b"\0" * handshake.ANSWER)  # a wrong proof
        assert sock.recv(100) == b""  # closed without a word
    with socket.create_connection(("127.0.0.1", runners[0].port), timeout=5) as sock:
        sock.recv(handshake.GREETING)
        # The secret in clear is not a proof either.
        sock.sendall(SECRET.encode().ljust(handshake.ANSWER, b"\0"))
        assert sock.recv(100) == b""


@pytest.mark.anyio
async def test_tcp_runners_killed_mean_the_fallback_or_503(
    churn_project: Project, own_runners: list[RunnerProcess]
) -> None:
    runners = own_runners
    addresses = ",".join(r.address for r in runners)
    async for client in _front(front_settings(churn_project, addresses), churn_project):
        assert (await client.post("/v1/models/churn/predict", json=ROWS)).status_code == 200
        runners[0].kill()  # one of two: the other answers every call (once the front
        await asyncio.sleep(0.3)  # saw the connection close: what it held fails, as locally)
        for _ in range(10):
            r = await client.post("/v1/models/churn/predict", json=ROWS)
            assert r.status_code == 200, r.text
        # v2 (runners beside the front) as the fallback of v1
        churn_project.routes.apply("churn", Policy(arms=(Arm(1, 100),), fallback=2), "t", "")
        catalog = client.app.state.catalog  # type: ignore[attr-defined]
        deadline = time.monotonic() + 30
        while catalog.get_route("churn").policy.fallback != 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        runners[1].kill()  # none left: the fallback answers, as with local runners
        await asyncio.sleep(0.3)
        r = await client.post("/v1/models/churn/predict", json=ROWS)
        assert r.status_code == 200, r.text
        assert r.json()["version"] == 2
        r = await client.post("/v1/models/churn/versions/1/predict", json=ROWS)
        assert r.status_code == 503, r.text  # pinned to v1: no fallback
        assert r.json()["error"]
