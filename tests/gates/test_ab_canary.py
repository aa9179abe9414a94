"""`pointsman ab` on logged arms with outcomes, and the canary's quality gate rolling back a
candidate the outcomes show worse (and sparing one that is as good)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from pointsman.cli.main import cli
from pointsman.gates.verdicts import canary_quality_check
from pointsman.project import Project
from pointsman.routing import Arm, Gates, Policy
from pointsman.routing.canary import CanaryController
from tests.gates.synthetic import fit_classifier
from tests.gates.test_quality import log_classifier, register

# The store's part (outcomes joined to records) runs on both stores in test_outcomes.py and
# test_quality.py; the verdicts here run on SQLite only, to keep the suite quick.
pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.fixture
def arms(project: Project, tmp_path: Path) -> tuple[Path, Path]:
    """`m` v1 (good) and v2 (trained on 35 % flipped labels), both registered."""
    good, bad = fit_classifier(tmp_path, "good"), fit_classifier(tmp_path, "bad", 0.35, 5)
    assert (register(project, good), register(project, bad)) == (1, 2)
    return good, bad


def test_ab_declares_the_better_arm_with_intervals(
    project: Project, arms: tuple[Path, Path]
) -> None:
    good, bad = arms
    project.routes.apply("m", Policy(arms=(Arm(1, 50), Arm(2, 50))), "t", "a/b")
    now = datetime.now(UTC)
    log_classifier(project, good, 1, 600, 1, now)
    log_classifier(project, bad, 2, 600, 2, now)
    folder = str(project.settings.project)
    result = CliRunner().invoke(cli, ["--project", folder, "ab", "m", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    (arm,) = report["comparisons"]
    assert report["metric"] == "accuracy" and report["baseline"] == 1 and arm["version"] == 2
    assert arm["significant"] and arm["verdict"] == "candidate worse"
    assert arm["difference"]["high"] < 0 and arm["candidate"]["n"] == 600
    text = CliRunner().invoke(cli, ["--project", folder, "ab", "m", "--metric", "log_loss"])
    assert "candidate worse" in text.output


@pytest.mark.parametrize(
    ("gate", "worse_version", "action"),
    [
        ("accuracy >= primary - 0.01", 2, "rollback"),
        ("auc >= primary - 0.01", 2, "rollback"),
        ("accuracy >= primary - 0.01", 1, "wait"),  # the candidate is the baseline's twin
    ],
)
def test_the_canary_quality_gate_rolls_back_once_outcomes_show_it_worse(
    project: Project, arms: tuple[Path, Path], gate: str, worse_version: int, action: str
) -> None:
    good, bad = arms
    twin = fit_classifier(good.parent, "twin", seed=3)  # as good, fitted on other rows
    assert register(project, twin) == 3
    candidate = 2 if worse_version == 2 else 3
    project.routes.deploy("m", 1, "t")
    gates = Gates(quality=gate, min_outcomes=100)
    project.routes.start_canary("m", candidate, [50, 100], "t", gates=gates)
    now = datetime.now(UTC)
    log_classifier(project, good, 1, 400, 1, now)
    log_classifier(project, bad if candidate == 2 else twin, candidate, 400, 2, now)
    controller = CanaryController(
        project.engine, project.routes, "t",
        quality_check=canary_quality_check(project.engine, project.routes),
    )  # fmt: skip
    written = controller.tick()
    route = project.routes.get("m")
    canary = route.policy.canary
    assert canary is not None
    if action == "rollback":
        assert written and canary.state == "rolled_back"
        assert gate.split()[0] in canary.reason and "outcomes" in canary.reason
    else:
        assert canary.state == "running"
