"""The catalog: what is routed and loaded, where a request goes, readiness."""

from __future__ import annotations

import asyncio
from pathlib import Path

import joblib
import pytest

from pointsman.catalog import Catalog, not_ready_message
from pointsman.errors import BadRequest, ModelNotFound, ModelNotReady, NotDeployed, VersionNotFound
from pointsman.project import Project
from pointsman.routing import Arm, Policy
from tests.conftest import register_iris


@pytest.fixture
def iris(project: Project, iris_files: tuple[Path, Path]) -> Project:
    """iris v1 deployed."""
    register_iris(project, iris_files)
    project.routes.deploy("iris", 1, "t")
    return project


def test_refresh_takes_the_route_once_its_versions_are_loaded(iris: Project) -> None:
    catalog = Catalog(iris)
    catalog.refresh()
    assert catalog.deployed_models() == ["iris"] and catalog.model_names() == ["iris"]
    assert catalog.readiness() == {"ready": True, "versions": {"iris:1": "ready"}}
    assert catalog.is_version_ready(catalog.get_version("iris")) and not catalog.is_stale()
    iris.routes.apply("iris", Policy(arms=(Arm(1),), timeout_ms=50), "t", "t")
    assert catalog.is_stale()
    catalog.refresh()
    assert catalog.get_route("iris").policy.timeout_ms == 50


def test_a_revision_whose_version_fails_to_load_is_not_taken(
    iris: Project, iris_files: tuple[Path, Path], tmp_path: Path
) -> None:
    failures: list[tuple[str, int, str]] = []
    catalog = Catalog(iris, on_load_failed=lambda *failure: failures.append(failure))
    catalog.refresh()
    in_force = catalog.get_route("iris").revision
    model_file, data = iris_files
    other = tmp_path / "iris-again.joblib"  # the same model, other bytes: a second version
    joblib.dump(joblib.load(model_file), other, compress=3)
    second = register_iris(iris, (other, data))
    iris.routes.apply("iris", Policy(arms=(Arm(second),)), "t", "to v2")
    stored = iris.registry.artifacts.path_of(iris.registry.get_version("iris", second).artifact)
    stored.write_bytes(stored.read_bytes()[:-1] + b"\1")  # changed on disk after the deploy
    catalog.refresh()
    assert catalog.get_route("iris").revision == in_force  # v1 still answers
    assert [(m, n) for m, n, _ in failures] == [("iris", second)]
    assert "sha256" in failures[0][2]
    with pytest.raises(ModelNotReady, match="sha256"):
        asyncio.run(catalog.runtime_of(iris.registry.get_version("iris", second)))


def test_lookups_say_what_is_missing(iris: Project) -> None:
    catalog = Catalog(iris)
    catalog.refresh(load_routed=False)
    with pytest.raises(ModelNotFound, match="iris"):
        catalog.get_route("nope")
    with pytest.raises(VersionNotFound, match="versions: 1"):
        catalog.get_version("iris", "7")
    pinned = catalog.target("iris", "1")
    routed = catalog.target("iris", None, header_key="k")
    assert pinned.route is None and routed.route is not None and routed.header_key == "k"
    assert catalog.default_model() == "iris" and catalog.default_model("other") == "other"


def test_an_undeployed_model_is_named_with_its_versions(
    project: Project, iris_files: tuple[Path, Path]
) -> None:
    register_iris(project, iris_files)
    catalog = Catalog(project)
    catalog.refresh()
    with pytest.raises(NotDeployed, match="pointsman deploy iris"):
        catalog.get_route("iris")
    with pytest.raises(NotDeployed):
        catalog.default_model()


def test_readiness_names_the_versions_that_are_not_ready(iris: Project) -> None:
    catalog = Catalog(iris)
    catalog.refresh(load_routed=False)  # nothing loaded yet
    report = catalog.readiness()
    assert report == {"ready": False, "versions": {"iris:1": "not loaded"}}
    assert not_ready_message(report) == "Not ready: iris:1 (not loaded)"


def test_default_model_is_refused_when_several_are_deployed(
    iris: Project, iris_files: tuple[Path, Path]
) -> None:
    register_iris(iris, iris_files, name="iris2")
    iris.routes.deploy("iris2", 1, "t")
    catalog = Catalog(iris)
    catalog.refresh(load_routed=False)
    with pytest.raises(BadRequest, match="2 are deployed"):
        catalog.default_model()
