"""An in-process app over a project with iris and churn deployed (driven through ASGI)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from pointsman.api.app import build_app
from pointsman.project import Project
from pointsman.registry import Submission
from pointsman.settings import load_settings
from tests.conftest import (
    ProjectTemplates,
    admin_headers,
    init_test_project,
    new_database_url,
    open_test_project,
    register_iris,
)


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


# The copy of the prepared served project a test got from database_url, if it did.
SERVED_COPY = pytest.StashKey[Path]()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    migrated_stores: dict[str, str],
    project_templates: ProjectTemplates,
    iris_files: tuple[Path, Path],
    churn_files: list[tuple[Path, Path]],
) -> str:
    """The store URL, once per supported database, migrated to head; in a test that takes
    `served`, the store of its copy of a project prepared once per run (in tmp_path/proj) with
    iris v1 and churn v1 deployed and churn v2 registered."""
    if "served" not in request.fixturenames:
        return new_database_url(request, tmp_path, migrated_stores)

    def prepare(folder: Path, url: str) -> None:
        with init_test_project(folder, url) as prepared:
            prepared.routes.deploy("iris", register_iris(prepared, iris_files), "test")
            prepared.routes.deploy("churn", register_churn(prepared, churn_files)[0], "test")

    folder = project_templates.copy(request, "api-served", request.param, prepare, tmp_path)
    request.node.stash[SERVED_COPY] = folder
    return load_settings(folder).resolved_database_url()


@pytest.fixture
def project(request: pytest.FixtureRequest, tmp_path: Path, database_url: str) -> Iterator[Project]:
    """An empty project on each store; in a test that takes `served` (so that every fixture
    of the test has the same project), its copy of the prepared one (see database_url)."""
    copy = request.node.stash.get(SERVED_COPY, None)
    if copy is not None:
        opened = open_test_project(copy)
    else:
        opened = init_test_project(tmp_path / "project", database_url)
    yield opened
    opened.close()


@pytest.fixture
def served(
    request: pytest.FixtureRequest,
    project: Project,
    iris_files: tuple[Path, Path],
    churn_files: list[tuple[Path, Path]],
) -> Project:
    """The project with iris v1 and churn v1 deployed (churn v2 registered, not routed)."""
    if SERVED_COPY not in request.node.stash:  # a module's own database_url: made here
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


FLAKY = '''
import os
import joblib

class Flaky:
    """Churn v1's estimator, raising whenever the switch file exists."""

    def __init__(self):
        self.inner = joblib.load({model!r})
        self.classes_ = list(self.inner.classes_)

    def predict(self, frame):
        self._check()
        return self.inner.predict(frame)

    def predict_proba(self, frame):
        self._check()
        return self.inner.predict_proba(frame)

    def _check(self):
        if os.path.exists({switch!r}):
            raise RuntimeError("the model fell over")
'''


def register_flaky_churn(project: Project, files: list[tuple[Path, Path]], switch: Path) -> int:
    """A churn version that answers as v1 does, and raises while `switch` exists."""
    model, data = files[0]
    source = switch.parent / "flaky_churn.py"
    source.write_text(FLAKY.format(model=str(model), switch=str(switch)))
    record, _ = project.registry.register(
        Submission(
            model="churn", path=source, entrypoint="Flaky", training_data=data,
            target="churned", user="t",
        )
    )  # fmt: skip
    return record.number
