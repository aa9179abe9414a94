"""The console's fixtures: one served project per store and test module (iris and churn v1
deployed, churn v2 registered), driven in-process through ASGI."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from pointsman.api.app import build_app
from pointsman.project import Project, init_project, open_project
from pointsman.settings import load_settings
from tests.api.conftest import register_churn
from tests.conftest import fresh_postgres_database, register_iris


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
async def app_client(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    iris_files: tuple[Path, Path],
    churn_files: list[tuple[Path, Path]],
) -> AsyncIterator[tuple[httpx.AsyncClient, Project]]:
    """A client of the app (no key: tests sign in) and its project, shared by a module."""
    folder = tmp_path_factory.mktemp("console")
    if request.param == "sqlite":
        url = f"sqlite:///{folder / 'pointsman.db'}"
    else:
        url = fresh_postgres_database(request)
    project_dir, _ = init_project(folder / "project", url)
    with (project_dir / "pointsman.toml").open("a") as toml:
        toml.write("startup_wait_s = 30\n")
    project = open_project(load_settings(project_dir))
    project.registry.compile_at_register = False
    project.routes.deploy("iris", register_iris(project, iris_files), "test")
    project.routes.deploy("churn", register_churn(project, churn_files)[0], "test")
    app = build_app(project.settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://pointsman") as c:
            yield c, project
    project.close()
