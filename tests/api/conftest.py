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
