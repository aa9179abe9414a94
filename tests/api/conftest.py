"""An in-process app over a project with iris and churn deployed (driven through ASGI)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from pointsman.api.app import build_app
from pointsman.project import Project
from pointsman.registry import Submission
from tests.conftest import admin_headers, register_iris


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def register_churn(project: Project, files: list[tuple[Path, Path]]) -> list[int]:
    numbers = []
    for path, data in files:
        record, _ = project.registry.register(
            Submission(model="churn", path=path, training_data=data, target="churned", user="t")
        )
        numbers.append(record.number)
    return numbers


@pytest.fixture
def served(
    project: Project, iris_files: tuple[Path, Path], churn_files: list[tuple[Path, Path]]
) -> Project:
    """The project with iris v1 and churn v1 deployed (churn v2 registered, not routed)."""
    project.routes.deploy("iris", register_iris(project, iris_files), "test")
    project.routes.deploy("churn", register_churn(project, churn_files)[0], "test")
    return project


@pytest.fixture
async def client(served: Project) -> AsyncIterator[httpx.AsyncClient]:
    """An admin client of the app; its key's name, `tests`, is the client in every record."""
    app = build_app(served.settings)
    headers = admin_headers(served)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://pointsman", headers=headers
        ) as c:
            yield c
