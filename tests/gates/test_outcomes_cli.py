"""`pointsman outcomes add` and `route --outcome-key` from a CSV, on both stores."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner, Result

from pointsman.cli.main import cli


def run(*args: str, code: int = 0) -> Result:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result


def test_outcomes_add_by_request_id_and_by_business_key(
    tmp_path: Path, database_url: str, iris_files: tuple[Path, Path]
) -> None:
    folder = tmp_path / "proj"
    run("init", str(folder), "--database-url", database_url)
    p = ("--project", str(folder))
    model, data = iris_files
    run(*p, "register", "iris", str(model), "--training-data", str(data), "--target", "species",
        "--no-compile")  # fmt: skip
    run(*p, "deploy", "iris", "1")
    by_id = tmp_path / "by_id.csv"
    by_id.write_text("request_id,row,outcome\nr1,0,2\nr1,1,0\n")
    out = run(*p, "outcomes", "add", "iris", "-f", str(by_id)).output
    assert "2 outcomes stored" in " ".join(out.split())
    assert '"unchanged": 2' in run(*p, "outcomes", "add", "iris", "-f", str(by_id), "--json").output
    by_key = tmp_path / "by_key.csv"
    by_key.write_text("customer_id,churned\nc1,1\n")
    refused = run(*p, "outcomes", "add", "iris", "-f", str(by_key), "--column", "churned", code=1)
    assert "--outcome-key" in " ".join(refused.output.split())
    run(*p, "route", "iris", "--outcome-key", "customer_id")
    stored = run(*p, "outcomes", "add", "iris", "-f", str(by_key), "--column", "churned", "--json")
    assert '"by_key": 1' in stored.output
    missing = run(*p, "outcomes", "add", "iris", "-f", str(by_key), code=1)
    assert "--column" in missing.output
    assert "No labelled predictions" in run(*p, "quality", "iris").output
    assert '"groups": []' in run(*p, "quality", "iris", "--window", "1h", "--json").output
    assert "--window" in run(*p, "quality", "iris", "--window", "x", code=1).output
