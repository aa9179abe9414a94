"""Route revisions on both stores."""

from __future__ import annotations

from pathlib import Path

import pytest

from pointsman.errors import ModelNotFound, VersionNotFound
from pointsman.project import Project
from pointsman.registry import read_change_counter
from tests.api.conftest import register_churn


def test_every_deploy_is_a_new_numbered_revision(
    project: Project, churn_files: list[tuple[Path, Path]]
) -> None:
    register_churn(project, churn_files)
    before = read_change_counter(project.engine)
    first = project.routes.deploy("churn", 1, "ann")
    second = project.routes.deploy("churn", "2", "bob", "challenger won")
    assert (first.revision, first.primary) == (1, 1)
    assert (second.revision, second.primary, second.created_by) == (2, 2, "bob")
    assert read_change_counter(project.engine) == before + 2
    history = project.routes.history("churn")
    assert [(r.revision, r.versions, r.reason) for r in history] == [
        (1, [1], "deploy version 1"),
        (2, [2], "challenger won"),
    ]
    assert project.routes.current("churn") == second
    assert project.registry.list_models()[0].deployed == [2]


def test_deploy_refuses_unknown_model_and_version(
    project: Project, churn_files: list[tuple[Path, Path]]
) -> None:
    register_churn(project, churn_files)
    with pytest.raises(ModelNotFound):
        project.routes.deploy("nope", 1, "ann")
    with pytest.raises(VersionNotFound, match="versions: 1, 2"):
        project.routes.deploy("churn", 9, "ann")
    assert project.routes.current("churn") is None
