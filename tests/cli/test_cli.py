"""The CLI a user runs: every command, readable errors, --json for scripts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner, Result

from pointsman import project as project_module
from pointsman.cli.fastread import FastRead
from pointsman.cli.main import cli
from pointsman.project import Project
from pointsman.settings import Settings
from tests.conftest import IRIS_COLUMNS, churn_rows


def run(*args: str, ok: bool = True) -> Result:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    if ok:
        assert result.exit_code == 0, result.output
    return result


@pytest.fixture
def project_dir(tmp_path: Path, database_url: str) -> Path:
    folder = tmp_path / "proj"
    run("init", str(folder), "--database-url", database_url)
    return folder


def test_init_register_list_show_deploy_predict(
    project_dir: Path, iris_files: tuple[Path, Path], churn_files: list[tuple[Path, Path]]
) -> None:
    p = ["--project", str(project_dir)]
    model, data = iris_files
    out = run(
        *p, "register", "iris", str(model), "--training-data", str(data), "--target", "species",
        "--metric", "acc=0.97", "--param", "C=1", "--note", "hi",
    )  # fmt: skip
    assert "Registered iris version 1" in out.output
    assert "pickle-based files run code" in out.output
    again = run(
        *p, "register", "iris", str(model), "--training-data", str(data), "--target", "species"
    )
    assert "Same artifact as iris version 1" in again.output
    listed = json.loads(run(*p, "models", "--json").output)
    assert (
        listed[0]["name"] == "iris" and listed[0]["versions"] == 1 and listed[0]["deployed"] == []
    )
    versions = json.loads(run(*p, "versions", "iris", "--json").output)
    assert versions[0]["lineage"]["metrics"] == {"acc": 0.97}
    shown = run(*p, "show", "iris", "1").output
    assert "petal_length" in shown and "iris.csv: 150 rows" in shown
    assert json.loads(run(*p, "show", "iris", "1", "--json").output)["signature"]["classes"] == [
        0,
        1,
        2,
    ]
    assert "route revision 1" in run(*p, "deploy", "iris", "1").output
    row = dict(zip(IRIS_COLUMNS, [5.1, 3.5, 1.4, 0.2], strict=True))
    answer = json.loads(run(*p, "predict", "iris", json.dumps({"rows": [row]}), "--json").output)
    assert answer["predictions"] == [0] and answer["version"] == 1
    table = run(*p, "predict", "iris", json.dumps({"rows": [row]})).output
    assert "iris version 1" in table and "p(0)" in table


def test_predict_reads_csv_files(
    project_dir: Path, churn_files: list[tuple[Path, Path]], tmp_path: Path
) -> None:
    p = ["--project", str(project_dir)]
    path, data = churn_files[0]
    run(*p, "register", "churn", str(path), "--training-data", str(data), "--target", "churned")
    run(*p, "deploy", "churn", "1")
    rows = tmp_path / "rows.csv"
    pd.DataFrame(churn_rows(3)).to_csv(rows, index=False)
    answer = json.loads(run(*p, "predict", "churn", "-f", str(rows), "--json").output)
    assert len(answer["predictions"]) == 3


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["show", "nope", "1"], "Model 'nope' not found"),
        (["deploy", "nope", "1"], "Model 'nope' not found"),
        (["register", "x", "/does/not/exist.joblib"], "does not exist"),
        (["predict", "nope", "{}"], "Model 'nope' not found"),
        (["register", "x", "model.bin", "--metric", "auc"], "NAME=VALUE"),
    ],
)
def test_errors_are_one_line_without_traceback(
    project_dir: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    (tmp_path / "model.bin").write_bytes(b"xx")
    args = [str(tmp_path / a) if a == "model.bin" else a for a in args]
    result = run("--project", str(project_dir), *args, ok=False)
    assert result.exit_code == 1
    assert message in result.output and "Traceback" not in result.output


@pytest.mark.parametrize(
    ("args", "code"),
    [(["models"], 0), (["route", "nope"], 1), (["canary", "nope", "--status"], 1)],
)
def test_the_project_a_command_opens_is_closed_when_it_ends_or_fails(
    project_dir: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], code: int
) -> None:
    """The project, and the store `fastread` opened instead or first (SQLite)."""
    opened: list[object] = []
    closed: list[object] = []
    real_open, real_close = project_module.open_project, Project.close
    real_fast_open, real_fast_close = FastRead.open, FastRead.close

    def open_project(settings: Settings) -> Project:
        opened.append(real_open(settings))
        return opened[-1]

    def fast_open(folder: Path | None) -> FastRead | None:
        reader = real_fast_open(folder)
        if reader is not None:
            opened.append(reader)
        return reader

    def close(self: Project) -> None:
        closed.append(self)
        real_close(self)

    def fast_close(self: FastRead) -> None:
        closed.append(self)
        real_fast_close(self)

    monkeypatch.setattr(project_module, "open_project", open_project)
    monkeypatch.setattr(Project, "close", close)
    monkeypatch.setattr(FastRead, "open", staticmethod(fast_open))
    monkeypatch.setattr(FastRead, "close", fast_close)
    result = run("--project", str(project_dir), *args, ok=False)
    assert result.exit_code == code, result.output
    if code:
        assert result.output.startswith("error: Model 'nope' not found")
        assert "Traceback" not in result.output
    assert opened and sorted(map(id, closed)) == sorted(map(id, opened))


def test_commands_outside_a_project_say_how_to_make_one(tmp_path: Path) -> None:
    result = run("--project", str(tmp_path / "none"), "models", ok=False)
    assert result.exit_code == 1 and "pointsman init" in result.output


def test_remote_predict_reports_an_unreachable_server(project_dir: Path) -> None:
    result = run(
        "--project", str(project_dir), "predict", "iris", "{}", "--url", "http://127.0.0.1:9",
        ok=False,
    )  # fmt: skip
    assert result.exit_code == 1 and "Cannot reach" in result.output


def test_cli_runs_as_a_module_with_debug_traceback(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pointsman", "--project", str(tmp_path), "--debug", "models"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1 and "Traceback" in result.stderr
