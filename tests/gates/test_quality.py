"""Online quality against outcomes, per version: known effects come out as set; concept drift
(labels shifted, inputs unchanged) fires the quality alert while the drift alert stays quiet."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import joblib
import numpy as np
import pytest
import sqlalchemy as sa

from pointsman.alerts import Dispatcher, Evaluator, RuleBook, build_rule
from pointsman.logstore.outcomes import labelled_rows, load_outcomes, parse_outcomes, store_outcomes
from pointsman.logstore.query import LogQuery
from pointsman.monitoring.drift import Thresholds
from pointsman.monitoring.monitor import drift_report, store_report
from pointsman.monitoring.quality import QualityQuery, quality_by_version, quality_report, score
from pointsman.project import Project
from pointsman.registry import Submission
from pointsman.store.tables import alert_states
from tests.gates.logged import log_rows
from tests.gates.synthetic import FEATURES, concept, fit_classifier, inputs, training_of


def log_classifier(
    project: Project, model_path: Path, version: int, n: int, seed: int, when: datetime,
    drifted: bool = False, prefix: str = "r",
) -> None:  # fmt: skip
    """n answered requests of `model_path` on fresh inputs, and their true outcomes."""
    model = joblib.load(model_path)
    frame = inputs(n, seed)
    predicted, probs = model.predict(frame), model.predict_proba(frame)
    rows = [
        {
            "request_id": f"{prefix}{seed}-{i}", "prediction": int(predicted[i]),
            "probabilities": probs[i].tolist(), "classes": [0, 1],
            "inputs": {f: float(frame[f][i]) for f in FEATURES},
        }
        for i in range(n)
    ]  # fmt: skip
    log_rows(project.engine, "m", version, rows, when=when)
    truth = concept(frame, drifted)
    outcomes = [{"request_id": f"{prefix}{seed}-{i}", "outcome": int(truth[i])} for i in range(n)]
    store_outcomes(project.engine, "m", parse_outcomes(outcomes, None))


def register(project: Project, path: Path) -> int:
    record, _ = project.registry.register(
        Submission(model="m", path=path, training_data=training_of(path), target="y", user="t")
    )
    return record.number


def test_a_better_version_scores_better_on_every_metric(project: Project, tmp_path: Path) -> None:
    good = fit_classifier(tmp_path, "good")
    bad = fit_classifier(tmp_path, "bad", flip=0.35, seed=5)
    now = datetime.now(UTC)
    log_classifier(project, good, 1, 300, 1, now - timedelta(minutes=5))
    log_classifier(project, bad, 2, 300, 2, now - timedelta(minutes=5))
    report = quality_report(
        project.engine, project.routes, QualityQuery("m", now - timedelta(hours=1), now)
    )
    by = {g["version"]: g for g in report["groups"]}
    assert by[1]["labelled"] == by[2]["labelled"] == 300
    assert by[1]["kind"] == "classification" and by[1]["accuracy"] > 0.95
    assert by[1]["accuracy"] > by[2]["accuracy"] and by[1]["auc"] >= by[2]["auc"]
    assert by[1]["log_loss"] < by[2]["log_loss"]
    assert 0 <= by[1]["calibration_error"] < 0.1
    assert by[1]["lateness_s"]["p50"] >= 5 * 60 - 1  # outcomes came five minutes after


def test_regression_quality_shows_a_known_bias(project: Project) -> None:
    rng = np.random.default_rng(0)
    truth = rng.normal(size=200)
    rows = [{"request_id": f"q{i}", "prediction": float(truth[i] + 0.5)} for i in range(200)]
    log_rows(project.engine, "m", 1, rows)
    outcomes = [{"request_id": f"q{i}", "outcome": float(truth[i])} for i in range(200)]
    store_outcomes(project.engine, "m", parse_outcomes(outcomes, None))
    now = datetime.now(UTC) + timedelta(seconds=1)
    report = quality_report(
        project.engine, project.routes, QualityQuery("m", now - timedelta(hours=1), now)
    )
    (group,) = report["groups"]
    assert group["kind"] == "regression"
    assert group["bias"] == pytest.approx(0.5) and group["mae"] == pytest.approx(0.5)
    assert group["rmse"] == pytest.approx(0.5)


def test_quality_reads_only_the_predictions_that_can_have_an_outcome(project: Project) -> None:
    """/metrics scores each model every minute: a model without outcomes costs no read of
    its log, and outcomes sent by request id read only their own predictions."""
    rng = np.random.default_rng(0)
    truth = rng.normal(size=400)
    rows = [{"request_id": f"q{i}", "prediction": float(truth[i] + 0.25)} for i in range(400)]
    log_rows(project.engine, "m", 1, rows)
    read: list[str] = []

    def seen(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        if "prediction_log" in statement:
            read.append(statement)

    sa.event.listen(project.engine, "before_cursor_execute", seen)
    try:
        assert quality_by_version(project.engine, None, "m", 3600.0) == {}
        assert read == []  # no outcomes: the log is not read
        outcomes = [{"request_id": f"q{i}", "outcome": float(truth[i])} for i in range(0, 400, 8)]
        store_outcomes(project.engine, "m", parse_outcomes(outcomes, None))
        read.clear()
        scores = quality_by_version(project.engine, None, "m", 3600.0)
        (selecting,) = read
        assert "outcomes" in selecting  # the log read is limited to the labelled requests
    finally:
        sa.event.remove(project.engine, "before_cursor_execute", seen)
    # The same figures as scoring every prediction of the window.
    everything = LogQuery(model="m", since=datetime.now(UTC) - timedelta(hours=1))
    labelled = list(
        labelled_rows(project.engine, everything, load_outcomes(project.engine, "m"), None)
    )
    assert scores == {(1, "primary"): score(labelled)}
    assert scores[(1, "primary")]["labelled"] == 50
    assert scores[(1, "primary")]["bias"] == pytest.approx(0.25)


def test_concept_drift_fires_the_quality_alert_while_data_drift_stays_quiet(
    project: Project, tmp_path: Path
) -> None:
    version = register(project, fit_classifier(tmp_path))
    project.routes.deploy("m", version, "t")
    now = datetime.now(UTC)
    model_path = tmp_path / "clf.joblib"
    # Same inputs distribution as training; the labels follow another concept now.
    log_classifier(project, model_path, version, 400, 7, now - timedelta(minutes=20), True)
    for name, when in (("quality", "accuracy < 0.8"), ("drift", "drift_psi_max > 0.25")):
        RuleBook(project.engine).add(build_rule(name, when=when, model="m", window="1h"), "t")
    thresholds = Thresholds(0.1, 0.25, 100)
    report = drift_report(project, "m", version, timedelta(hours=1), thresholds)
    store_report(project.engine, report)
    assert report.rows == 400 and report.grade == "ok"
    evaluator = Evaluator(
        project.engine, project.routes, RuleBook(project.engine),
        Dispatcher(project.engine, project.settings), "test",
    )  # fmt: skip
    try:
        notices = evaluator.tick()
    finally:
        evaluator.close()
    assert [(n.rule, n.event) for n in notices] == [("quality", "firing")]
    with project.engine.connect() as conn:
        states = dict(conn.execute(sa.select(alert_states.c.rule, alert_states.c.status)).all())
    assert states.get("quality") == "firing" and states.get("drift", "ok") != "firing"
