"""`pointsman explain`, `replay` and `export` on records of real predictions, on both stores."""

from __future__ import annotations

import asyncio
import csv
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result

from pointsman.cli.main import cli
from pointsman.demo.churn import TARGET
from pointsman.project import open_project
from pointsman.settings import Redaction, load_settings
from pointsman.store.tables import prediction_log
from pointsman.validation.signature import build_frame, records_to_columns
from tests.conftest import ProjectTemplates, churn_rows
from tests.serving import serving

N = 40


def run(*args: str, code: int = 0) -> Result:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result


def flat(text: str) -> str:
    return " ".join(text.split())


def predict_through_the_pipeline(folder: Path, redact: bool = False) -> None:
    """N requests of 3 rows each on the routed version, then a clean close (ships)."""
    project = open_project(load_settings(folder))
    if redact:
        rules = {"churn": Redaction(hash=["region"])}
        project.settings = project.settings.model_copy(update={"log_redact": rules})

    async def ask() -> None:
        async with serving(project) as served:
            signature = served.catalog.target("churn").signature
            for i in range(N):
                columns, n, problems = records_to_columns(churn_rows(3, seed=i), signature)
                frame = build_frame(signature, columns, n, problems)
                await served.predict("churn", frame, f"req-{i}")

    asyncio.run(ask())
    project.close()


@pytest.fixture
def p(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    store_kind: str,
    project_templates: ProjectTemplates,
    churn_files: list[tuple[Path, Path]],
) -> list[str]:
    """A project with churn v1 (routed) and v2, and N logged requests answered by v1: a copy
    of its own of one prepared once per run."""

    def prepare(folder: Path, database_url: str) -> None:
        run("init", str(folder), "--database-url", database_url)
        args = ["--project", str(folder)]
        for path, data in churn_files:
            run(
                *args,
                "register",
                "churn",
                str(path),
                "--training-data",
                str(data),
                "--target",
                TARGET,
            )
        run(*args, "deploy", "churn", "1")
        predict_through_the_pipeline(folder)

    folder = project_templates.copy(request, "churn-logged", store_kind, prepare, tmp_path)
    return ["--project", str(folder)]


def test_explain_shows_record_lineage_and_a_matching_rerun(p: list[str]) -> None:
    out = flat(run(*p, "explain", "req-7").output)
    assert "req-7 primary · churn version 1" in out
    assert "artifact sha256" in out and "training data" in out and "scikit-learn" in out
    assert "same output" in out
    (item,) = json.loads(run(*p, "explain", "req-7", "--json").output)
    assert item["rerun"]["same"] is True
    assert item["rerun"]["predictions"] == item["record"]["outputs"]["predictions"]
    assert item["version"]["sha256"] and item["version"]["training_data"]


def test_explain_shows_a_difference_when_the_log_and_the_version_disagree(p: list[str]) -> None:
    project = open_project(load_settings(Path(p[1])))
    with project.engine.begin() as conn:
        (outputs,) = conn.execute(
            sa.select(prediction_log.c.outputs).where(prediction_log.c.request_id == "req-3")
        ).one()
        outputs["predictions"] = [1 - int(x) for x in outputs["predictions"]]
        conn.execute(
            prediction_log.update()
            .where(prediction_log.c.request_id == "req-3")
            .values(outputs=outputs)
        )
    project.close()
    out = flat(run(*p, "explain", "req-3").output)
    assert "differs" in out and "rows changed [0, 1, 2]" in out


def test_explain_of_an_unknown_request_says_so(p: list[str]) -> None:
    result = run(*p, "explain", "nope", code=1)
    assert "no prediction record has it" in flat(result.output)


def test_replay_on_the_same_version_agrees_and_on_another_reports_changes(p: list[str]) -> None:
    same = json.loads(run(*p, "replay", "churn", "--to", "1", "--since", "1d", "--json").output)
    assert same["requests"] == N and same["rows"] == 3 * N and same["agreement"] == 1.0
    assert same["changed_labels"] == [] and same["probability_delta"]["max"] < 1e-9
    other = json.loads(run(*p, "replay", "churn", "--to", "2", "--json").output)
    assert other["requests"] == N and other["from_versions"] == {"1": N}
    changed = sum(c["rows"] for c in other["changed_labels"])
    assert other["agreement"] == pytest.approx(1 - changed / (3 * N))
    assert other["probability_delta"]["max"] > 0  # a different model: probabilities move
    assert other["latency_ms"]["replay"]["p50"] > 0
    sampled = json.loads(run(*p, "replay", "churn", "--to", "2", "--sample", "10", "--json").output)
    assert sampled["requests"] == 10
    shown = flat(run(*p, "replay", "churn", "--to", "2").output)
    assert f"replayed {N} requests ({3 * N} rows) of churn on version 2: agreement" in shown


def test_replay_refuses_unknown_versions_and_bad_spans(p: list[str]) -> None:
    assert "no version '9'" in flat(run(*p, "replay", "churn", "--to", "9", code=1).output)
    bad = CliRunner().invoke(cli, [*p, "replay", "churn", "--to", "2", "--since", "lately"])
    assert bad.exit_code == 2 and "--since 'lately' cannot be read" in flat(bad.output)


def test_export_parquet_and_csv(p: list[str], tmp_path: Path) -> None:
    out = run(*p, "export", "churn", "--since", "7d", "-o", str(tmp_path / "preds.parquet"))
    assert f"wrote {N} prediction records" in out.output
    table = pq.read_table(tmp_path / "preds.parquet")
    assert table.num_rows == N
    ids = table.column("request_id").to_pylist()
    assert sorted(ids) == sorted(f"req-{i}" for i in range(N))
    first = json.loads(table.column("inputs")[0].as_py())
    assert set(first) >= {"tenure_months", "plan", "region"} and len(first["plan"]) == 3
    run(*p, "export", "churn", "-o", str(tmp_path / "preds.csv"))
    with (tmp_path / "preds.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == N and rows[0]["role"] == "primary"
    bad = CliRunner().invoke(cli, [*p, "export", "churn", "-o", str(tmp_path / "x.txt")])
    assert bad.exit_code == 2 and "name it .parquet or .csv" in flat(bad.output)


def test_redacted_inputs_are_not_rerun(tmp_path: Path, p: list[str]) -> None:
    folder = Path(p[1])
    predict_through_the_pipeline(folder, redact=True)  # same ids: stored once, not redacted
    project = open_project(load_settings(folder))
    with project.engine.begin() as conn:
        conn.execute(prediction_log.delete())
    project.close()
    predict_through_the_pipeline(folder, redact=True)
    (item,) = json.loads(run(*p, "explain", "req-1", "--json").output)
    assert item["rerun"] == {
        "done": False,
        "reason": "Request req-1: the log keeps region redacted (log_redact), so its input "
        "cannot be run again.",
    }
    assert len(item["record"]["inputs"]["region"][0]) == 64  # the sha256, not the region
    report = json.loads(run(*p, "replay", "churn", "--to", "2", "--json").output)
    assert report["requests"] == 0 and report["skipped"] == {"cannot_rerun": N}
