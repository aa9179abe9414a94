"""`pointsman route --validation…`, `pointsman validate` and `pointsman profile`."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from pointsman.demo.churn import TARGET
from tests.cli.test_routes_cli import flat, run
from tests.conftest import ProjectTemplates


@pytest.fixture
def p(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    project_templates: ProjectTemplates,
    churn_files: list[tuple[Path, Path]],
) -> list[str]:
    """`--project DIR` of a SQLite project with churn version 1 deployed: a copy of its own
    of one prepared once per run."""

    def prepare(folder: Path, _: str) -> None:
        run("init", str(folder))  # the store is the default one, in the folder
        args = ["--project", str(folder)]
        model, data = churn_files[0]
        run(
            *args, "register", "churn", str(model), "--training-data", str(data), "--target", TARGET
        )
        run(*args, "deploy", "churn", "1")

    folder = project_templates.copy(request, "churn-1-deployed", "sqlite", prepare, tmp_path)
    return ["--project", str(folder)]


@pytest.fixture
def bad_csv(tmp_path: Path, churn_files: list[tuple[Path, Path]]) -> Path:
    frame = pd.read_csv(churn_files[0][1]).head(50)
    frame["age"] = frame["age"].astype(object)
    frame.loc[3, "plan"] = "PREMIUM"
    frame.loc[4, "plan"] = "gold"
    frame.loc[5, "tenure_months"] = 500
    frame.loc[6, "age"] = "old"
    path = tmp_path / "bad.csv"
    frame.to_csv(path, index=False)
    return path


def test_route_sets_validation_modes_overrides_and_tolerance(p: list[str]) -> None:
    run(
        *p,
        "route",
        "churn",
        "--validation",
        "reject",
        "--validation-feature",
        "plan=allow,age=flag",
    )
    run(*p, "route", "churn", "--coerce", "flag", "--validation-tolerance", "0.25")
    policy = json.loads(run(*p, "route", "churn", "--json").output)
    assert policy["validation"] == {
        "mode": "reject",
        "coerce": "flag",
        "features": {"age": "flag", "plan": "allow"},
        "tolerance": 0.25,
    }
    shown = flat(run(*p, "route", "churn").output)
    assert "reject (coerce: flag; age=flag; plan=allow; tolerance 25%)" in shown
    run(*p, "route", "churn", "--validation-feature", "plan=default", "--validation", "default")
    policy = json.loads(run(*p, "route", "churn", "--json").output)
    assert policy["validation"] == {
        "coerce": "flag",
        "features": {"age": "flag"},
        "tolerance": 0.25,
    }
    history = json.loads(run(*p, "route", "churn", "--history", "--json").output)
    assert history[1]["changes"] == [
        "validation defaults (coerce: reject; tolerance 10%) → "
        "reject (coerce: reject; age=flag; plan=allow; tolerance 10%)"
    ]


def test_deploying_another_version_keeps_the_validation_policy(
    p: list[str], churn_files: list[tuple[Path, Path]]
) -> None:
    model, data = churn_files[1]
    run(*p, "register", "churn", str(model), "--training-data", str(data), "--target", TARGET)
    run(*p, "route", "churn", "--validation", "reject")
    run(*p, "deploy", "churn", "2")
    policy = json.loads(run(*p, "route", "churn", "--json").output)
    assert policy["validation"]["mode"] == "reject"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--validation-feature", "plan"], "is not FEATURE=MODE"),
        (["--validation-feature", "plan=strict"], "is not FEATURE=MODE"),
        (["--validation", "strict"], "'strict' is not one of"),
        (["--validation-feature", "plann=allow"], "feature 'plann' is not an input"),
        (["--validation-tolerance", "-1"], "tolerance must be between 0 and 10"),
        (["--validation-feature", "plan=allow", "--no-validation-features"], "contradicts"),
    ],
)
def test_bad_validation_options_are_refused_saying_why(
    p: list[str], args: list[str], message: str
) -> None:
    result = run(*p, "route", "churn", *args, ok=False)
    assert result.exit_code != 0 and message in flat(result.output)


def test_validate_reports_each_feature_and_exits_1_when_rows_would_be_refused(
    p: list[str], bad_csv: Path
) -> None:
    result = run(*p, "validate", "churn", str(bad_csv), "--json", ok=False)
    assert result.exit_code == 1
    report = json.loads(result.output)
    assert (report["rows"], report["refused_rows"], report["flagged_rows"]) == (50, 1, 3)
    features = {f["feature"]: f for f in report["features"]}
    assert features["plan"]["findings"] == {"near_miss_category": 1, "unknown_category": 1}
    assert features["plan"]["examples"] == ["'PREMIUM' (did you mean 'premium'?)", "'gold'"]
    assert features["tenure_months"]["findings"] == {"out_of_range": 1}
    assert features["age"]["findings"] == {"schema: wrong type string": 1}
    assert report["ignored_columns"] == [TARGET]
    text = flat(run(*p, "validate", "churn", str(bad_csv), ok=False).output)
    assert "50 rows: 1 would be refused (422), 3 served with warnings" in text


def test_validate_passes_the_training_data_and_follows_the_route_policy(
    p: list[str], churn_files: list[tuple[Path, Path]], bad_csv: Path
) -> None:
    result = run(*p, "validate", "churn", str(churn_files[0][1]))
    assert "4000 rows: 0 would be refused (422), 0 served with warnings" in flat(result.output)
    run(*p, "route", "churn", "--validation", "reject")
    report = json.loads(run(*p, "validate", "churn", str(bad_csv), "--json", ok=False).output)
    assert report["refused_rows"] == 4


def test_validate_counts_a_missing_column_on_every_row(p: list[str], tmp_path: Path) -> None:
    path = tmp_path / "no_region.csv"
    pd.DataFrame({"age": [30, 40], "plan": ["basic", "basic"]}).to_csv(path, index=False)
    report = json.loads(run(*p, "validate", "churn", str(path), "--json", ok=False).output)
    features = {f["feature"]: f for f in report["features"]}
    assert features["region"]["findings"] == {"missing_column": 2}
    assert report["refused_rows"] == 2


def test_profile_shows_ranges_bars_and_categories(p: list[str]) -> None:
    text = run(*p, "profile", "churn").output
    assert "churn version 1: reference profile from 4000 training rows" in text
    assert "tenure_months (long): 1 to 72" in text
    assert "'monthly'" in text and "█" in text
    data = json.loads(run(*p, "profile", "churn", "1", "--json").output)
    assert data["profile"]["features"]["plan"]["kind"] == "categorical"


def test_profile_of_an_unknown_model_names_the_models(p: list[str]) -> None:
    result = run(*p, "profile", "chrun", ok=False)
    assert result.exit_code != 0 and "churn" in result.output
