"""`pointsman batch` on files: CSV, Parquet, folders, globs; rejects; dry runs; bad input."""

from __future__ import annotations

import json
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from pointsman.demo.churn import TARGET, make_data
from pointsman.store.rollups import pending_records
from pointsman.store.tables import prediction_log
from tests.cli.test_routes_cli import flat, run

ROWS = 1200


def table_with_faults(rows: int = ROWS) -> pd.DataFrame:
    frame = make_data(rows, 5).drop(columns=[TARGET])
    frame.insert(0, "customer_id", [f"c{i}" for i in range(rows)])
    frame["age"] = frame["age"].astype("float64")
    frame.loc[3, "plan"] = "gold"  # unknown category: refused under `reject`
    frame.loc[700, "age"] = -500  # out of range
    frame.loc[1100, "age"] = np.nan  # null where training had none
    return frame


def expected(churn_files: list[tuple[Path, Path]], frame: pd.DataFrame) -> np.ndarray:
    model = joblib.load(churn_files[0][0])
    good = frame.drop(index=[3, 700, 1100]).drop(columns=["customer_id"])
    good["age"] = good["age"].astype("int64")
    return np.asarray(model.predict_proba(good))


def batch(p: list[str], *args: str, ok: bool = True) -> str:
    return flat(
        run(*p, "batch", "churn", *args, "--workers", "1", "--chunk-rows", "500", ok=ok).output
    )


def test_csv_scores_every_row_and_refused_rows_go_to_the_rejects_with_findings(
    churn_project: list[str], churn_files: list[tuple[Path, Path]], tmp_path: Path
) -> None:
    frame = table_with_faults()
    frame.to_csv(tmp_path / "in.csv", index=False)
    shown = batch(
        churn_project,
        str(tmp_path / "in.csv"),
        "-o",
        str(tmp_path / "out.csv"),
        "--keep",
        "customer_id",
    )
    assert "succeeded" in shown and f"rows {ROWS}/{ROWS}: 3 rejected" in shown
    out = pd.read_csv(tmp_path / "out.csv")
    assert list(out.columns) == [
        "row",
        "customer_id",
        "prediction",
        "p_0",
        "p_1",
        "version",
        "status",
        "job_id",
    ]
    assert len(out) == ROWS - 3 and set(out["status"]) == {"ok"}
    assert out["customer_id"].tolist() == frame.drop(index=[3, 700, 1100])["customer_id"].tolist()
    np.testing.assert_allclose(out[["p_0", "p_1"]].to_numpy(), expected(churn_files, frame))
    rejects = pd.read_csv(tmp_path / "out.rejects.csv")
    assert rejects["row"].tolist() == [3, 700, 1100]
    assert rejects["customer_id"].tolist() == ["c3", "c700", "c1100"]
    findings = [json.loads(f) for f in rejects["findings"]]
    assert [(f[0]["row"], f[0]["feature"], f[0]["rule"]) for f in findings] == [
        (3, "plan", "unknown_category"),
        (700, "age", "out_of_range"),
        (1100, "age", "null"),
    ]
    assert out["job_id"].nunique() == 1 and rejects["job_id"].iloc[0] == out["job_id"].iloc[0]


def test_a_folder_and_a_glob_of_parquet_files_read_as_one_table(
    churn_project: list[str], tmp_path: Path
) -> None:
    frame = table_with_faults()
    (tmp_path / "parts").mkdir()
    for i, start in enumerate(range(0, ROWS, 450)):  # parts that do not align with chunks
        frame.iloc[start : start + 450].to_parquet(tmp_path / "parts" / f"p{i}.parquet")
    frame.to_parquet(tmp_path / "whole.parquet")
    batch(churn_project, str(tmp_path / "whole.parquet"), "-o", str(tmp_path / "a.parquet"))
    batch(churn_project, str(tmp_path / "parts"), "-o", str(tmp_path / "b.parquet"))
    batch(churn_project, str(tmp_path / "parts" / "p*.parquet"), "-o", str(tmp_path / "c.csv"))
    whole = pd.read_parquet(tmp_path / "a.parquet").drop(columns=["job_id"])
    folder = pd.read_parquet(tmp_path / "b.parquet").drop(columns=["job_id"])
    glob = pd.read_csv(tmp_path / "c.csv").drop(columns=["job_id"])
    pd.testing.assert_frame_equal(whole, folder)
    pd.testing.assert_frame_equal(whole, glob, check_dtype=False)
    rejects = pd.read_parquet(tmp_path / "b.rejects.parquet")
    assert rejects["row"].tolist() == [3, 700, 1100]


def test_a_dry_run_validates_only_and_fails_when_rows_would_be_refused(
    churn_project: list[str], tmp_path: Path
) -> None:
    table_with_faults().to_parquet(tmp_path / "in.parquet")
    out = tmp_path / "out.parquet"
    shown = batch(
        churn_project, str(tmp_path / "in.parquet"), "-o", str(out), "--dry-run", ok=False
    )
    assert "3 rejected" in shown
    assert not out.exists()
    assert pd.read_parquet(tmp_path / "out.rejects.parquet")["row"].tolist() == [3, 700, 1100]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("drop_age", "The input has no column age, which churn version 1 takes"),
        ("keep_unknown", "--keep names nope, not a column of the input"),
        ("missing_file", "does not exist: give a file, a folder or a glob"),
        ("bad_table", "names a database without a table"),
        ("no_workers", "--workers must be 0 (every core) or more, got -2"),
    ],
)
def test_bad_input_is_refused_before_the_job_starts_with_what_to_do(
    churn_project: list[str], tmp_path: Path, change: str, message: str
) -> None:
    frame = table_with_faults(20)
    if change == "drop_age":
        frame = frame.drop(columns=["age"])
    frame.to_csv(tmp_path / "in.csv", index=False)
    source = {"missing_file": str(tmp_path / "nope.csv"), "bad_table": "sqlite:///x.db"}.get(
        change, str(tmp_path / "in.csv")
    )
    keep = {"keep_unknown": ["--keep", "nope"], "no_workers": ["--workers", "-2"]}.get(change, [])
    result = run(
        *churn_project, "batch", "churn", source, "-o", str(tmp_path / "o.csv"), *keep, ok=False
    )
    assert result.exit_code == 1
    assert message in flat(result.output)
    assert "Traceback" not in result.output


def test_with_log_each_chunk_is_a_prediction_record_of_its_answered_rows(
    churn_project: list[str], tmp_path: Path
) -> None:
    table_with_faults().to_parquet(tmp_path / "in.parquet")
    shown = batch(
        churn_project, str(tmp_path / "in.parquet"), "-o", str(tmp_path / "o.parquet"), "--log"
    )
    job_id = pd.read_parquet(tmp_path / "o.parquet")["job_id"].iloc[0]
    assert job_id in shown
    engine = sa.create_engine(f"sqlite:///{Path(churn_project[1]) / 'pointsman.db'}")
    query = sa.select(prediction_log).where(prediction_log.c.client == f"batch:{job_id}")
    with engine.connect() as conn:
        records = conn.execute(query.order_by(prediction_log.c.request_id)).all()
    assert pending_records(engine) == 0  # the job rolled its records up: no tail for pages
    engine.dispose()
    assert [r.request_id for r in records] == [f"{job_id}-00000{i}" for i in range(3)]
    assert [r.n_rows for r in records] == [499, 499, 199]  # rows 3, 700 and 1100 refused
    assert (records[0].role, records[0].version) == ("pinned", 1)
    assert records[1].extra["rows"][:2] == [500, 501] and 700 not in records[1].extra["rows"]


def test_an_empty_input_gives_an_empty_output_and_rejects(
    churn_project: list[str], tmp_path: Path
) -> None:
    table_with_faults(5).head(0).to_csv(tmp_path / "in.csv", index=False)
    shown = batch(churn_project, str(tmp_path / "in.csv"), "-o", str(tmp_path / "o.csv"))
    assert "succeeded" in shown and "rows 0/0" in shown
    assert pd.read_csv(tmp_path / "o.csv").empty
    assert pd.read_csv(tmp_path / "o.rejects.csv").empty
