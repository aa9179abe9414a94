"""A SQLite project with churn version 1 deployed, its route refusing every finding."""

from __future__ import annotations

from pathlib import Path

import pytest

from pointsman.demo.churn import TARGET
from tests.cli.test_routes_cli import run


@pytest.fixture(scope="module")
def churn_project(
    tmp_path_factory: pytest.TempPathFactory, churn_files: list[tuple[Path, Path]]
) -> list[str]:
    """`--project DIR` of a SQLite project with churn version 1 deployed, refusing findings."""
    folder = tmp_path_factory.mktemp("batch") / "proj"
    run("init", str(folder))
    args = ["--project", str(folder)]
    model, data = churn_files[0]
    run(*args, "register", "churn", str(model), "--training-data", str(data), "--target", TARGET)
    run(*args, "deploy", "churn", "1")
    run(*args, "route", "churn", "--validation", "reject")
    return args
