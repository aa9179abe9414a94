"""Route revisions on both stores."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pointsman.errors import ModelNotFound, NotDeployed, RouteConflict, VersionNotFound
from pointsman.project import Project
from pointsman.registry.models import read_change_counter
from pointsman.routing import Arm, Canary, Policy, Route, Shadow
from pointsman.routing.revisions import rollback_policy
from tests.api.conftest import register_churn


def test_every_deploy_is_a_new_numbered_revision(
    project: Project, churn_files: list[tuple[Path, Path]]
) -> None:
    register_churn(project, churn_files)
    before = read_change_counter(project.engine)
    first = project.routes.deploy("churn", 1, "ann").after
    second = project.routes.deploy("churn", "2", "bob", "challenger won").after
    assert (first.revision, first.primary) == (1, 1)
    assert (second.revision, second.primary, second.created_by) == (2, 2, "bob")
    assert read_change_counter(project.engine) == before + 2
    history = project.routes.history("churn")
    assert [(r.revision, r.versions, r.reason) for r in history] == [
        (1, [1], "deploy version 1"),
        (2, [2], "challenger won"),
    ]
    assert project.routes.find("churn") == second
    assert project.routes.get("churn") == second
    assert project.registry.list_models()[0].deployed == [2]


def test_deploy_refuses_unknown_model_and_version(
    project: Project, churn_files: list[tuple[Path, Path]]
) -> None:
    register_churn(project, churn_files)
    with pytest.raises(ModelNotFound):
        project.routes.deploy("nope", 1, "ann")
    with pytest.raises(VersionNotFound, match="versions: 1, 2"):
        project.routes.deploy("churn", 9, "ann")
    assert project.routes.find("churn") is None


def test_get_raises_what_find_answers_with_none(
    project: Project, churn_files: list[tuple[Path, Path]]
) -> None:
    with pytest.raises(ModelNotFound):
        project.routes.get("churn")  # no such model: that first, not "not deployed"
    assert project.routes.find("churn") is None
    register_churn(project, churn_files)
    with pytest.raises(NotDeployed, match="pointsman deploy churn 2"):
        project.routes.get("churn")
    assert project.routes.find("churn") is None


def test_every_write_returns_the_revision_it_replaced_and_what_changed(
    project: Project, churn_files: list[tuple[Path, Path]]
) -> None:
    register_churn(project, churn_files)
    first = project.routes.deploy("churn", 1, "ann")
    assert first.before is None
    assert first.changes == ["first revision", "arms 1=100"]
    canary = project.routes.start_canary("churn", 2, [10, 50], "ann")
    assert canary.before == first.after
    assert canary.changes[0] == "arms 1=100 → 1=90, 2=10"
    assert canary.to_json() == {**canary.after.to_json(), "changes": canary.changes}
    ended = project.routes.end_canary("churn", "aborted", "enough", "bob")
    assert ended.before == canary.after
    assert (ended.after.revision, ended.after.primary) == (3, 1)
    back = project.routes.rollback("churn", "bob")
    assert back.before == ended.after and back.after.revision == 4
    promoted = project.routes.promote("churn", 2, "bob")
    assert promoted.before == back.after and promoted.changes[0] == "arms 1=100 → 2=100"
    assert project.routes.find("churn") == promoted.after


V1 = Policy(arms=(Arm(1, 100),), shadows=(Shadow(3),), fallback=3)
RUNNING = Canary(candidate=2, baseline=1, steps=(5, 100))
AT_5 = Policy(arms=(Arm(1, 95), Arm(2, 5)), shadows=(Shadow(3),), fallback=3, canary=RUNNING)
PROMOTED = replace(AT_5, arms=(Arm(2, 100),), canary=replace(RUNNING, state="promoted"))
AB = Policy(arms=(Arm(1, 70), Arm(2, 30)))


@pytest.mark.parametrize(
    ("policies", "target"),
    [
        ([V1, AB], V1),  # the revision before, as it was
        ([V1, AT_5, PROMOTED], replace(PROMOTED, arms=(Arm(1, 100),), canary=None)),
        ([V1, AT_5, replace(AT_5, canary=replace(RUNNING, step=1))],  # no half-done canary
         replace(AT_5, arms=(Arm(1, 100),), canary=None)),
        ([AB, PROMOTED, V1], PROMOTED),  # a finished canary is not running: kept as it was
    ],
)  # fmt: skip
def test_rollback_policy_never_resurrects_a_running_canary(
    policies: list[Policy], target: Policy
) -> None:
    now = datetime.now(UTC)
    history = [Route("churn", i + 1, p, now, "t") for i, p in enumerate(policies)]
    assert rollback_policy("churn", history) == target


def test_rollback_policy_needs_an_earlier_revision() -> None:
    history = [Route("churn", 1, V1, datetime.now(UTC), "t")]
    with pytest.raises(RouteConflict, match="no earlier route revision"):
        rollback_policy("churn", history)
