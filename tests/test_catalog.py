"""The catalog: what is routed and loaded, where a request goes, readiness."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import joblib
import pytest

from pointsman import catalog as catalog_module
from pointsman.catalog import Catalog, not_ready_message
from pointsman.errors import BadRequest, ModelNotFound, NotDeployed, VersionNotFound
from pointsman.project import Project
from pointsman.routing import Arm, Policy
from pointsman.routing.revisions import RouteBook
from pointsman.runners import RunDir
from pointsman.runners.directory import new_run_dir
from pointsman.runners.serving import build_supervisor
from tests.conftest import register_iris


@pytest.fixture
def iris(project: Project, iris_files: tuple[Path, Path]) -> Project:
    """iris v1 deployed."""
    register_iris(project, iris_files)
    project.routes.deploy("iris", 1, "t")
    return project


@pytest.fixture
def runners(iris: Project) -> Iterator[tuple[RunDir, list[tuple[str, int, str, str]]]]:
    """A supervisor running what the store routes; the events it reported."""
    run_dir = RunDir(new_run_dir())
    supervisor = build_supervisor(iris, run_dir)
    events: list[tuple[str, int, str, str]] = []
    supervisor.on_event = lambda *event: events.append(event)
    supervisor.start()
    yield run_dir, events
    supervisor.stop()
    run_dir.remove()


def wait_for(check: Callable[[], bool], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_a_route_is_taken_at_start_and_ready_once_its_runner_is_warm(
    iris: Project, runners: tuple[RunDir, list[Any]]
) -> None:
    catalog = Catalog(iris, runners[0])
    catalog.refresh()  # nothing in force yet: taken at once, not ready until warm
    assert catalog.deployed_models() == ["iris"] and catalog.model_names() == ["iris"]
    wait_for(lambda: catalog.readiness()["ready"])
    report = catalog.readiness()
    assert report["versions"] == {"iris:1": "ready"}
    assert [r["state"] for r in report["runners"]["iris:1"]] == ["ready"]
    assert catalog.is_version_ready(catalog.get_version("iris")) and not catalog.is_stale()
    iris.routes.apply("iris", Policy(arms=(Arm(1),), timeout_ms=50), "t", "t")
    assert catalog.is_stale()
    catalog.refresh()
    assert catalog.get_route("iris").policy.timeout_ms == 50


def test_a_route_change_that_waited_for_its_runners_is_taken_at_the_next_refresh(
    iris: Project,
    runners: tuple[RunDir, list[Any]],
    iris_files: tuple[Path, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    run_dir = runners[0]
    catalog = Catalog(iris, run_dir)
    catalog.refresh()
    wait_for(lambda: catalog.readiness()["ready"])
    model_file, data = iris_files
    other = tmp_path / "iris-again.joblib"
    joblib.dump(joblib.load(model_file), other, compress=3)
    second = register_iris(iris, (other, data))
    # A loaded machine: the runners' state read just before v2 warmed is still "recent".
    # Longer than the machine has been up (monotonic time starts at boot), so that a refresh
    # reads the state afresh however recently the machine started.
    monkeypatch.setattr(catalog_module, "STATE_TTL_S", time.monotonic() + 3600.0)
    assert catalog.runner_state("iris", second) == {}
    routes = RouteBook(iris.engine, iris.registry, run_dir.preflight)
    routes.apply("iris", Policy(arms=(Arm(second),)), "t", "to v2")  # waits for v2 to warm
    catalog.refresh()
    assert catalog.get_route("iris").versions == [second] and not catalog.pending


def test_a_revision_whose_version_fails_to_load_is_not_taken(
    iris: Project,
    runners: tuple[RunDir, list[tuple[str, int, str, str]]],
    iris_files: tuple[Path, Path],
    tmp_path: Path,
) -> None:
    run_dir, events = runners
    catalog = Catalog(iris, run_dir)
    catalog.refresh()
    wait_for(lambda: catalog.readiness()["ready"])
    in_force = catalog.get_route("iris").revision
    model_file, data = iris_files
    other = tmp_path / "iris-again.joblib"  # the same model, other bytes: a second version
    joblib.dump(joblib.load(model_file), other, compress=3)
    second = register_iris(iris, (other, data))
    iris.routes.apply("iris", Policy(arms=(Arm(second),)), "t", "to v2")  # it loads here
    stored = iris.registry.artifacts.path_of(iris.registry.get_version("iris", second).artifact)
    stored.write_bytes(stored.read_bytes()[:-1] + b"\1")  # changed on disk after the deploy
    wait_for(lambda: any(e[2] == "load_failed" for e in events))
    catalog.refresh()
    assert catalog.get_route("iris").revision == in_force  # v1 still answers
    assert catalog.pending["iris"].revision == in_force + 1
    failed = next(e for e in events if e[2] == "load_failed")
    assert failed[:2] == ("iris", second) and "sha256" in failed[3]


def test_lookups_say_what_is_missing(iris: Project, tmp_path: Path) -> None:
    catalog = Catalog(iris, RunDir(tmp_path))
    catalog.refresh()
    with pytest.raises(ModelNotFound, match="iris"):
        catalog.get_route("nope")
    with pytest.raises(VersionNotFound, match="versions: 1"):
        catalog.get_version("iris", "7")
    pinned = catalog.target("iris", "1")
    routed = catalog.target("iris", None, header_key="k")
    assert pinned.route is None and routed.route is not None and routed.header_key == "k"
    assert catalog.default_model() == "iris" and catalog.default_model("other") == "other"


def test_an_undeployed_model_is_named_with_its_versions(
    project: Project, iris_files: tuple[Path, Path], tmp_path: Path
) -> None:
    register_iris(project, iris_files)
    catalog = Catalog(project, RunDir(tmp_path))
    catalog.refresh()
    with pytest.raises(NotDeployed, match="pointsman deploy iris"):
        catalog.get_route("iris")
    with pytest.raises(NotDeployed):
        catalog.default_model()


def test_readiness_names_the_versions_that_are_not_ready(iris: Project, tmp_path: Path) -> None:
    catalog = Catalog(iris, RunDir(tmp_path))
    catalog.refresh()  # nothing loaded yet
    report = catalog.readiness()  # no supervisor publishes anything in this folder
    assert (report["ready"], report["versions"]) == (False, {"iris:1": "no runner started yet"})
    assert not_ready_message(report) == "Not ready: iris:1 (no runner started yet)"


def test_default_model_is_refused_when_several_are_deployed(
    iris: Project, iris_files: tuple[Path, Path], tmp_path: Path
) -> None:
    register_iris(iris, iris_files, name="iris2")
    iris.routes.deploy("iris2", 1, "t")
    catalog = Catalog(iris, RunDir(tmp_path))
    catalog.refresh()
    with pytest.raises(BadRequest, match="2 are deployed"):
        catalog.default_model()
