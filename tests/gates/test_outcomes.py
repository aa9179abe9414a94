"""Outcomes: stored idempotently, joined to prediction records whichever arrives first."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from pointsman.errors import BadLogQuery, BadRequest
from pointsman.logstore import LogQuery
from pointsman.logstore.outcomes import (
    labelled_rows,
    load_outcomes,
    parse_outcomes,
    store_outcomes,
)
from pointsman.project import Project
from tests.gates.logged import log_rows


def labelled(project: Project, key: str | None = None) -> dict[str, object]:
    book = load_outcomes(project.engine, "m")
    rows = labelled_rows(project.engine, LogQuery(model="m"), book, key)
    return {f"{r.version}:{r.prediction}": r.outcome for r in rows}


def test_outcomes_before_and_after_their_records_are_matched(project: Project) -> None:
    early = parse_outcomes([{"request_id": "r1", "outcome": 1}], None)
    assert store_outcomes(project.engine, "m", early)["waiting"] == 1
    assert labelled(project) == {}  # kept, waiting for its record
    log_rows(project.engine, "m", 1, [
        {"request_id": "r1", "prediction": 1}, {"request_id": "r2", "prediction": 0},
    ])  # fmt: skip
    assert labelled(project) == {"1:1": 1}  # the record arrived: matched
    late = parse_outcomes([{"request_id": "r2", "outcome": 1}], None)
    counts = store_outcomes(project.engine, "m", late)
    assert counts["matched"] == 1 and counts["waiting"] == 0
    assert labelled(project) == {"1:1": 1, "1:0": 1}


def test_sending_an_outcome_again_changes_nothing_and_a_new_value_corrects_it(
    project: Project,
) -> None:
    one = parse_outcomes([{"request_id": "r1", "outcome": 0}], None)
    assert store_outcomes(project.engine, "m", one)["stored"] == 1
    assert store_outcomes(project.engine, "m", one)["unchanged"] == 1
    fixed = parse_outcomes([{"request_id": "r1", "outcome": 1}], None)
    assert store_outcomes(project.engine, "m", fixed)["updated"] == 1
    assert len(load_outcomes(project.engine, "m")) == 1


def test_business_key_outcomes_label_the_predictions_made_before_them(project: Project) -> None:
    now = datetime.now(UTC)
    log_rows(project.engine, "m", 2, [
        {"request_id": "a", "prediction": 1, "inputs": {"customer_id": 42},
         "time": now - timedelta(days=3)},
        {"request_id": "b", "prediction": 0, "inputs": {"customer_id": 43},
         "time": now - timedelta(days=2)},
    ])  # fmt: skip
    parsed = parse_outcomes([{"customer_id": 42.0, "outcome": "1"}], "customer_id")
    assert store_outcomes(project.engine, "m", parsed)["by_key"] == 1
    assert labelled(project, "customer_id") == {"2:1": "1"}
    assert labelled(project, None) == {}  # the route no longer names the key


@pytest.mark.parametrize(
    ("item", "key", "message"),
    [
        ({"outcome": 1}, None, "--outcome-key"),
        ({"request_id": "r"}, None, "no `outcome`"),
        ({"request_id": "r", "outcome": 1, "row": -1}, None, "row must be"),
        ({"customer_id": 3, "outcome": 1}, None, "names no prediction"),
        ({"request_id": "r", "outcome": 1, "time": "yesterday"}, None, "time"),
    ],
)
def test_bad_outcomes_are_refused_saying_what_to_give(
    item: dict[str, object], key: str | None, message: str
) -> None:
    with pytest.raises((BadRequest, BadLogQuery), match=message):
        parse_outcomes([item], key)
