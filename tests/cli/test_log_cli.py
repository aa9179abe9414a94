"""`pointsman log MODEL` (table, JSON, CSV, cursor) and `pointsman log prune`, on both stores."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from pointsman.cli.main import cli
from pointsman.demo.churn import TARGET
from pointsman.logstore.shipper import insert_records
from pointsman.project import open_project
from pointsman.settings import load_settings
from tests.logstore.test_spool import record


def run(*args: str, code: int = 0) -> Result:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result


@pytest.fixture
def p(tmp_path: Path, database_url: str) -> list[str]:
    """A project whose log holds 30 churn records a minute apart (v1/v2, every 10th failed)."""
    folder = tmp_path / "proj"
    run("init", str(folder), "--database-url", database_url)
    project = open_project(load_settings(folder))
    now = datetime.now(UTC)  # per test: prune compares against the clock
    records = []
    for i in range(30):
        failed = {"error_code": "model_timeout", "error": "slow"} if i % 10 == 0 else {}
        when = (now - timedelta(minutes=i)).timestamp()
        records.append(record(f"r{i:02d}", version=1 + i % 2, time=when, **failed))
    insert_records(project.engine, records)
    project.close()
    return ["--project", str(folder)]


def test_table_shows_newest_first_and_how_to_get_more(p: list[str]) -> None:
    out = run(*p, "log", "churn", "--since", "1h", "--version", "2", "--limit", "5").output
    assert "churn: 5 records" in out
    assert out.index("r01") < out.index("r03") < out.index("r09")
    assert "r00" not in out and "r02" not in out  # version 1
    assert "--cursor" in out


def test_json_pages_with_the_cursor(p: list[str]) -> None:
    first = json.loads(run(*p, "log", "churn", "--json", "--limit", "20").output)
    assert len(first["predictions"]) == 20 and first["cursor"]
    rest = json.loads(run(*p, "log", "churn", "--json", "--cursor", first["cursor"]).output)
    ids = [r["request_id"] for r in first["predictions"] + rest["predictions"]]
    assert ids == [f"r{i:02d}" for i in range(30)] and rest["cursor"] is None


def test_csv_and_error_filter(p: list[str]) -> None:
    out = run(*p, "log", "churn", "--csv", "--errors").stdout
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [r["request_id"] for r in rows] == ["r00", "r10", "r20"]
    assert rows[0]["error_code"] == "model_timeout"
    assert json.loads(rows[0]["inputs"]) == {"age": [30]}


def test_prune_deletes_older_records(p: list[str]) -> None:
    assert "deleted 20 prediction records" in run(*p, "log", "prune", "--older-than", "9.5m").output
    left = json.loads(run(*p, "log", "churn", "--json").output)["predictions"]
    assert len(left) == 10


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["log", "churn", "--since", "yesterday"], "--since 'yesterday' cannot be read"),
        (["log", "churn", "--until", "soon"], "ISO time"),
        (["log", "churn", "--cursor", "nope"], "cursor 'nope' cannot be read"),
        (["log", "prune", "--older-than", "a month"], "30s, 15m, 1h, 7d"),
    ],
)
def test_bad_options_are_clear_errors(p: list[str], args: list[str], words: str) -> None:
    result = CliRunner().invoke(cli, [*p, *args])
    assert result.exit_code in (1, 2)
    assert words in " ".join(result.output.split()), result.output


def test_cli_predict_is_logged_too(
    tmp_path: Path, database_url: str, churn_files: list[tuple[Path, Path]]
) -> None:
    folder = tmp_path / "proj2"
    run("init", str(folder), "--database-url", database_url)
    args = ["--project", str(folder)]
    path, data = churn_files[0]
    run(*args, "register", "churn", str(path), "--training-data", str(data), "--target", TARGET)
    run(*args, "deploy", "churn", "1")
    row = {"tenure_months": 5, "monthly_charges": 70.0, "support_calls": 4, "age": 30,
           "plan": "basic", "contract": "monthly", "region": "north"}  # fmt: skip
    run(*args, "predict", "churn", json.dumps({"rows": [row]}))
    (logged,) = json.loads(run(*args, "log", "churn", "--json").output)["predictions"]
    assert logged["inputs"]["plan"] == ["basic"] and logged["outputs"]["predictions"]


def test_a_narrow_terminal_folds_the_request_id_never_cuts_it(
    p: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    project = open_project(load_settings(p[1]))
    rid = "d3b2adc9f2af466281870b712859d867"  # as long as a generated one
    insert_records(project.engine, [record(rid, version=1, time=datetime.now(UTC).timestamp())])
    project.close()
    monkeypatch.setenv("COLUMNS", "80")
    out = run(*p, "log", "churn", "--limit", "1").output
    assert max(len(line) for line in out.splitlines()) <= 80
    cells = [line.split("│")[2].strip() for line in out.splitlines() if line.count("│") > 3]
    assert "".join(cells) == rid  # the id column, its folded lines joined
