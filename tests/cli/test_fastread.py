"""`pointsman models`, `versions MODEL` and `route MODEL [--history]` on SQLite read the
store without SQLAlchemy or pydantic (cli/fastread.py): the same bytes as the full path,
which they fall back to for anything they do not read exactly."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import joblib
import pandas as pd
import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from sklearn.linear_model import LogisticRegression

from pointsman.cli import fastread
from pointsman.cli.fastread import FastRead
from pointsman.cli.main import cli
from pointsman.project import Project, init_project, open_project
from pointsman.registry import Submission
from pointsman.routing import Arm, Gates, Policy, Shadow
from pointsman.routing.agreement import Agreement
from pointsman.settings import SETTINGS_FILE, Settings, load_settings
from pointsman.store import tables
from pointsman.validation.policy import ValidationPolicy
from tests.conftest import IRIS_COLUMNS, ProjectTemplates

# A setting fastread leaves to the full path: set, it makes a command take that path.
FULL_PATH = {"POINTSMAN_PORT": "8080"}
READS = (
    ["models"], ["models", "--json"], ["route", "iris"], ["route", "iris", "--json"],
    ["route", "iris", "--history"], ["route", "iris", "--history", "--json"],
    ["route", "setosa", "--history"], ["versions", "iris"], ["versions", "iris", "--json"],
    ["versions", "setosa"],
)  # fmt: skip
# Errors worded by the full path: a model registered but never deployed, an unknown one.
ERRORS = (
    ["route", "setosa"],
    ["versions", "nope"],
    ["route", "nope", "--history"],
    ["route", "nope"],
)


def output(folder: Path, args: list[str], env: dict[str, str] | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["--project", str(folder), *args], env=env)
    return result.exit_code, result.output


def assert_both_paths_agree(folder: Path) -> None:
    """Every read prints the same bytes (and exit code) either way, and both read the same."""
    assert FastRead.open(folder) is not None
    for args in (*READS, *ERRORS):
        fast, full = output(folder, args), output(folder, args, FULL_PATH)
        assert fast == full, args
    assert fast[0] == 1 and "not found" in fast[1]  # the unknown model: an error, not a crash
    reader = FastRead.open(folder)
    assert reader is not None
    with reader, open_project(load_settings(folder)) as project:
        assert reader.models() == project.registry.list_models()
        for model in ("iris", "setosa"):
            assert reader.route(model) == project.routes.find(model)
            assert reader.history(model) == project.routes.history(model)
            assert reader.versions(model) == project.registry.list_versions(model)
        assert reader.route("nope") is reader.history("nope") is reader.versions("nope") is None


@pytest.fixture
def iris(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    project_templates: ProjectTemplates,
    iris_files: tuple[Path, Path],
) -> Iterator[tuple[Path, Project]]:
    """A project keeping its SQLite store in its folder (as `pointsman init` makes one):
    iris versions 1, 2 and 3 and setosa version 1 registered, none deployed; a copy of its
    own of one prepared once per run, and the project open."""

    def prepare(folder: Path, _: str) -> None:
        init_project(folder)
        _, data = iris_files
        frame = pd.read_csv(data)
        with open_project(load_settings(folder)) as project:
            for model, c in (("iris", 1.0), ("iris", 0.5), ("iris", 0.2), ("setosa", 1.0)):
                path = folder.parent / f"{model}-{c}.joblib"
                fitted = LogisticRegression(C=c, max_iter=500)
                joblib.dump(fitted.fit(frame[IRIS_COLUMNS], frame["species"]), path)
                sub = Submission(
                    model, path, training_data=data, target="species", user="test",
                    metrics={"accuracy": 0.9 + c / 100}, note=f"C={c}",
                    compile=model == "iris" and c == 1.0,  # versions compiled and not
                )  # fmt: skip
                project.registry.register(sub)

    folder = project_templates.copy(request, "iris-1-2-3-setosa", "sqlite", prepare, tmp_path)
    with open_project(load_settings(folder)) as project:
        yield folder, project


def test_routes_of_every_kind_read_alike_either_way(iris: tuple[Path, Project]) -> None:
    folder, project = iris
    routes = project.routes
    assert_both_paths_agree(folder)  # nothing deployed
    routes.deploy("iris", 1, "test", "single")
    assert_both_paths_agree(folder)
    ab = (Arm(1, 90), Arm(2, 10))
    routes.apply("iris", Policy(arms=ab, key="customer_id"), "test", "a/b")
    assert_both_paths_agree(folder)
    routes.apply("iris", Policy(arms=ab, shadows=(Shadow(3, 0.25),)), "test", "shadow")
    assert_both_paths_agree(folder)
    everything = Policy(
        arms=ab,
        key="customer_id",
        shadows=(Shadow(3, 0.25),),
        fallback=2,
        timeout_ms=200,
        breaker_failures=3,
        breaker_pause_s=2.5,
        validation=ValidationPolicy(mode="flag", features=(("petal_width", "allow"),)),
        outcome_key="customer_id",
        agreement=Agreement(abs_tol=0.5, rel_tol=0.1, prob_tol=0.05),
    )
    routes.apply("iris", everything, "test", "fallback, timeout, validation, agreement")
    assert_both_paths_agree(folder)
    routes.deploy("iris", 1, "test")
    gates = Gates(max_error_rate_delta=0.05, quality="accuracy >= primary - 0.01")
    routes.start_canary("iris", 3, [10, 50], "test", hold_s=60, gates=gates, reason="canary")
    assert_both_paths_agree(folder)  # running
    routes.advance_canary("iris", "test", routes.get("iris").revision)
    routes.end_canary("iris", "rolled_back", "too many errors", "test")
    assert_both_paths_agree(folder)  # ended: its state shown
    routes.rollback("iris", "test")
    assert_both_paths_agree(folder)


def test_a_store_behind_the_code_or_without_a_revision_goes_the_full_way(
    iris: tuple[Path, Project],
) -> None:
    folder, _ = iris
    assert FastRead.open(folder) is not None
    with sqlite3.connect(folder / "pointsman.db") as db:
        db.execute("UPDATE alembic_version SET version_num = '0001'")
    assert FastRead.open(folder) is None  # the full path would migrate (or say why not)
    with sqlite3.connect(folder / "pointsman.db") as db:
        db.execute("DROP TABLE alembic_version")
    assert FastRead.open(folder) is None


@pytest.mark.parametrize(
    ("toml", "env", "fast"),
    [
        ("", {}, True),
        ('host = "0.0.0.0"\nauth = false\nsmtp_password = "x"\n', {}, True),
        ("", {"POINTSMAN_KEY": "pk_x", "pointsman_host": "h"}, True),  # not a setting; text
        ("port = 9000\n", {}, False),
        ("[runners.iris]\nreplicas = 2\n", {}, False),
        ("unknown = 1\n", {}, False),
        ("auth = 1\n", {}, False),  # pydantic would take 1 for true: left to it
        ("", {"POINTSMAN_AUTH": "false"}, False),
        ("", {"POINTSMAN_HOST": "a", "pointsman_host": "b"}, False),
        ('log_level = "info"\n', {}, False),  # deprecated: the full path warns
        ("this is not toml", {}, False),
        ('artifact_store = "s3://bucket/prefix"\n', {}, False),
        ('runner_cgroup = "/sys/fs/cgroup/x"\n', {}, False),
        ('artifact_dir = "elsewhere"\n', {}, False),  # missing: opening the project makes it
        ('database_url = "postgresql+psycopg://postgres@127.0.0.1:5432/db"\n', {}, False),
        ('database_url = "sqlite:///pointsman.db?timeout=5"\n', {}, False),
        ('database_url = "sqlite+aiosqlite:///pointsman.db"\n', {}, False),
        ('database_url = "sqlite://"\n', {}, False),
    ],
)
def test_settings_read_exactly_or_left_to_the_full_path(
    iris: tuple[Path, Project],
    monkeypatch: pytest.MonkeyPatch,
    toml: str,
    env: dict[str, str],
    fast: bool,
) -> None:
    folder, _ = iris
    for name in [k for k in os.environ if k.lower().startswith("pointsman_")]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with (folder / SETTINGS_FILE).open("a") as file:
        file.write(toml)
    reader = FastRead.open(folder)
    assert (reader is not None) is fast
    if reader is not None:
        reader.close()


def test_a_database_url_names_the_file_sqlalchemy_opens(
    iris: tuple[Path, Project], monkeypatch: pytest.MonkeyPatch
) -> None:
    folder, _ = iris
    moved = folder.parent / "elsewhere.db"
    (folder / "pointsman.db").rename(moved)
    monkeypatch.chdir(folder.parent)
    for url in (f"sqlite:///{moved}", "sqlite:///elsewhere.db", f"sqlite+pysqlite:///{moved}"):
        monkeypatch.setenv("POINTSMAN_DATABASE_URL", url)
        assert fastread.store_file(folder) == moved
        assert Path(str(sa.engine.make_url(url).database)).resolve() == moved
    reader = FastRead.open(folder)
    assert reader is not None and [m.name for m in reader.models() or []] == ["iris", "setosa"]
    reader.close()


def test_the_settings_it_reads_are_those_any_text_or_flag_validates() -> None:
    fields = Settings.model_fields
    assert set(fields) == fastread.SETTINGS and fastread.SETTINGS_FILE == SETTINGS_FILE
    plain = {name for name, field in fields.items() if not field.metadata}
    assert {n for n in plain if fields[n].annotation is str} == fastread.TEXT
    assert {n for n in plain if fields[n].annotation is bool} == fastread.FLAGS
    validated = Settings.__pydantic_decorators__
    assert not validated.field_validators
    assert list(validated.model_validators) == ["_deprecated_names"]  # log_level only


def test_the_columns_it_decodes_have_the_types_it_decodes_them_as() -> None:
    for table in (tables.models, tables.routes, tables.versions):
        for column in table.columns:
            if column.name in fastread.JSON_COLUMNS:
                assert isinstance(column.type, sa.JSON), column
            if column.name in fastread.TIME_COLUMNS:
                assert isinstance(column.type, sa.DateTime), column
