"""The drift monitor over the prediction log: reports, stored series, one runner, the CLI."""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from pointsman.cli.main import cli
from pointsman.demo.churn import TARGET, make_data
from pointsman.monitoring.drift import Thresholds
from pointsman.monitoring.monitor import (
    PREDICTIONS,
    DriftMonitor,
    drift_report,
    history,
    prune_results,
    read_window,
    store_report,
)
from pointsman.project import Project
from pointsman.settings import Redaction
from pointsman.store.tables import prediction_log
from tests.monitoring.conftest import log_traffic

T = Thresholds()


def test_traffic_like_training_is_ok_and_a_shift_is_named(churn: Project) -> None:
    log_traffic(churn, 1000, seed=21)
    report = drift_report(churn, "churn", 1, timedelta(hours=1), T)
    assert report.rows == 1000
    assert {f.feature for f in report.features} >= {"tenure_months", "plan", PREDICTIONS}
    assert {f.feature: f.grade for f in report.features if f.feature != PREDICTIONS} == {
        f.feature: "ok" for f in report.features if f.feature != PREDICTIONS
    }
    log_traffic(churn, 1000, seed=22, shift=20, ago_s=30)  # tenure: +1 sd
    shifted = drift_report(churn, "churn", 1, timedelta(seconds=45), T)
    grades = {f.feature: f.grade for f in shifted.features}
    assert shifted.rows == 1000 and grades["tenure_months"] == "alert"
    assert [f for f, g in grades.items() if g != "ok" and f != PREDICTIONS] == ["tenure_months"]


def test_a_quiet_window_is_too_small(churn: Project) -> None:
    log_traffic(churn, 20, seed=3)
    report = drift_report(churn, "churn", 1, timedelta(hours=1), T)
    assert report.grade == "too_small" and report.rows == 20


def test_redacted_fields_are_not_compared(churn: Project, tmp_path: Path) -> None:
    log_traffic(churn, 500, seed=4)
    settings = churn.settings.model_copy(
        update={"log_redact": {"churn": Redaction(hash=["region"])}}
    )
    redacted = dataclasses.replace(churn, settings=settings)
    report = drift_report(redacted, "churn", 1, timedelta(hours=1), T)
    assert report.skipped == ["region"]
    assert "region" not in {f.feature for f in report.features}


def test_one_monitor_runs_however_many_workers_ask(churn: Project) -> None:
    log_traffic(churn, 300, seed=5)
    first = DriftMonitor(churn, "worker-a")
    second = DriftMonitor(churn, "worker-b")
    ran = first.tick(1e6)
    assert [r.version for r in ran] == [1]
    assert second.tick(1e6) == []  # the lease is held
    assert first.tick(1e6 + 1) == []  # the interval has not passed
    series = history(churn.engine, "churn", 1, datetime.now(UTC) - timedelta(hours=1))
    assert len(series["tenure_months"]) == 1


def test_cli_shows_every_feature_with_its_history(churn: Project) -> None:
    log_traffic(churn, 400, seed=6)
    args = ["--project", str(churn.settings.project_path()), "drift", "churn"]
    runner = CliRunner()
    for _ in range(3):
        result = runner.invoke(cli, args, catch_exceptions=False)
        assert result.exit_code == 0, result.output
    assert "churn version 1: 400 rows in the last 1h" in result.output
    assert "tenure_months" in result.output and "▁▁▁" in result.output
    data = json.loads(runner.invoke(cli, [*args, "--json", "--window", "30m"]).output)
    assert data[0]["rows"] == 400 and data[0]["grade"] == "ok"
    bad = runner.invoke(cli, [*args, "--window", "yesterday"])
    assert bad.exit_code != 0 and "--window" in bad.output


def test_cli_on_a_model_not_deployed_says_what_to_do(project: Project) -> None:
    args = ["--project", str(project.settings.project_path()), "drift", "nothing"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code != 0 and "nothing" in result.output


def test_results_older_than_the_history_setting_are_pruned(churn: Project) -> None:
    log_traffic(churn, 300, seed=8)
    report = drift_report(churn, "churn", 1, timedelta(hours=1), T)
    old = replace(report, window_end=report.window_end - timedelta(days=91))
    store_report(churn.engine, old)
    monitor = DriftMonitor(churn, "worker-a")
    assert [r.version for r in monitor.tick(1e6)] == [1]
    since = datetime.now(UTC) - timedelta(days=365)
    series = history(churn.engine, "churn", 1, since)
    assert len(series["tenure_months"]) == 1  # the fresh run's; the 91-day-old one is gone
    assert prune_results(churn.engine, datetime.now(UTC) + timedelta(minutes=1)) == len(
        report.features
    )


def test_a_window_is_its_newest_records_up_to_the_row_cap(churn: Project) -> None:
    log_traffic(churn, 200, seed=9, ago_s=120)  # older
    log_traffic(churn, 150, seed=10, ago_s=60)  # newer
    now = datetime.now(UTC)
    columns, predictions, rows = read_window(
        churn.engine, "churn", 1, now - timedelta(hours=1), now, max_rows=100
    )
    assert rows == 100 and len(predictions) == 100
    assert {name: len(values) for name, values in columns.items()} == {
        name: 100 for name in columns
    } and "tenure_months" in columns
    newer = make_data(150, 10).drop(columns=[TARGET])
    # Newest first: the last 100 of the newer batch, in reverse.
    assert columns["tenure_months"] == newer["tenure_months"].tolist()[50:][::-1]
    everything = read_window(churn.engine, "churn", 1, now - timedelta(hours=1), now, 10**6)
    assert everything[2] == 350 and len(everything[0]["plan"]) == 350


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_window_reads_json_that_only_the_standard_library_writes(churn: Project) -> None:
    # SQLite before 3.38 stores records through SQLAlchemy's json.dumps, which writes NaN.
    record = {
        "request_id": "nan-row", "role": "primary", "version": 1, "model": "churn",
        "time": datetime.now(UTC), "n_rows": 2,
        "inputs": {"tenure_months": [float("nan"), 3.0]}, "outputs": None, "latency_ms": 1.0,
    }  # fmt: skip
    with churn.engine.begin() as conn:
        conn.execute(prediction_log.insert(), [record])
    now = datetime.now(UTC) + timedelta(seconds=1)
    columns, predictions, rows = read_window(
        churn.engine, "churn", 1, now - timedelta(hours=1), now, 100
    )
    assert rows == 2 and predictions == []
    assert math.isnan(columns["tenure_months"][0]) and columns["tenure_months"][1] == 3.0
