"""Reading the log back on both stores: filters, cursor pages, streaming, pruning, bad input."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from pointsman.errors import BadLogQuery
from pointsman.logstore import shipping as shipping_module
from pointsman.logstore.query import (
    LogQuery,
    count_predictions,
    decode_cursor,
    find_predictions,
    iter_predictions,
    iter_sample,
    parse_span,
    parse_time,
    prune_predictions,
)
from pointsman.logstore.shipper import insert_records
from pointsman.logstore.shipping import Shipping
from pointsman.project import Project
from tests.logstore.test_spool import record

NOW = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)


def fill(project: Project) -> None:
    """120 churn records a minute apart (v1 and v2, every 10th an error), 5 iris shadows."""
    records = []
    for i in range(120):
        error = {"error_code": "model_failed", "error": "boom"} if i % 10 == 0 else {}
        when = (NOW - timedelta(minutes=i)).timestamp()
        records.append(record(f"c{i:03d}", version=1 + i % 2, time=when, **error))
    for i in range(5):
        when = (NOW - timedelta(minutes=i)).timestamp()
        records.append(record(f"c{i:03d}", role="shadow", version=3, time=when))
        records.append(record(f"i{i}", time=when, model="iris"))
    insert_records(project.engine, records)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (LogQuery(model="churn"), 125),
        (LogQuery(model="churn", version=2), 60),
        (LogQuery(model="churn", role="shadow"), 5),
        (LogQuery(model="churn", has_error=True), 12),
        (LogQuery(model="churn", has_error=False), 113),
        (LogQuery(model="churn", since=NOW - timedelta(minutes=30)), 36),  # 0..30 plus shadows
        (LogQuery(model="churn", until=NOW - timedelta(minutes=100)), 19),  # 101..119
        (LogQuery(request_id="c002"), 2),  # the primary and its shadow
        (LogQuery(model="iris"), 5),
    ],
)
def test_filters(project: Project, query: LogQuery, expected: int) -> None:
    fill(project)
    assert count_predictions(project.engine, query) == expected
    page = find_predictions(project.engine, query, limit=1000)
    assert len(page.records) == expected and page.cursor is None


def test_cursor_pages_cover_everything_once_newest_first(project: Project) -> None:
    fill(project)
    seen: list[tuple[str, str]] = []
    cursor = None
    pages = 0
    while True:
        page = find_predictions(project.engine, LogQuery(model="churn"), 7, cursor)
        seen += [(r["time"], r["request_id"] + r["role"]) for r in page.records]
        pages += 1
        cursor = page.cursor
        if cursor is None:
            break
    assert pages == 18 and len(seen) == 125 == len(set(seen))
    assert [t for t, _ in seen] == sorted((t for t, _ in seen), reverse=True)
    assert seen[-1][0] == (NOW - timedelta(minutes=119)).isoformat()


def test_iterating_streams_oldest_first_in_batches(project: Project) -> None:
    fill(project)
    got = list(iter_predictions(project.engine, LogQuery(model="churn"), batch=8))
    assert len(got) == 125
    assert got[0]["request_id"] == "c119" and got[-1]["time"] == NOW.isoformat()


def test_prune_deletes_only_older_records(project: Project) -> None:
    fill(project)
    assert prune_predictions(project.engine, timedelta(minutes=60), now=NOW) == 59  # 61..119
    assert count_predictions(project.engine, LogQuery(model="churn")) == 66


def test_a_server_prunes_at_its_first_round_on_a_machine_just_started(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = datetime.now(UTC)
    old, fresh = (now - timedelta(days=3)).timestamp(), now.timestamp()
    insert_records(project.engine, [record("old", time=old), record("fresh", time=fresh)])
    settings = project.settings.model_copy(update={"log_retention_days": 2})
    # Monotonic time counts from boot: 100 s on a node that came up a moment ago.
    monkeypatch.setattr(shipping_module, "time", SimpleNamespace(monotonic=lambda: 100.0))
    Shipping(settings, project.engine).ship()
    got = find_predictions(project.engine, LogQuery(model="churn"), limit=10).records
    assert [r["request_id"] for r in got] == ["fresh"]


@pytest.mark.parametrize("text", ["yesterday", "1 fortnight", "-3h", "", "99999w", "1" * 400 + "s"])
def test_times_that_cannot_be_read_name_the_forms(text: str) -> None:
    with pytest.raises(BadLogQuery, match=r"since .*30s, 15m, 1h, 7d"):
        parse_time("since", text)


def test_times_read_as_spans_or_iso() -> None:
    assert parse_time("since", "90m", NOW) == NOW - timedelta(minutes=90)
    assert parse_time("since", "2026-11-22T07:00") == datetime(2026, 11, 22, 7, tzinfo=UTC)
    assert parse_time("since", "2026-11-22T09:00+01:00") == NOW
    assert parse_span("older", "30d") == timedelta(days=30)


def test_bad_cursor_limit_and_role_are_refused(project: Project) -> None:
    with pytest.raises(BadLogQuery, match="cursor"):
        decode_cursor("not-a-cursor")
    with pytest.raises(BadLogQuery, match="limit"):
        find_predictions(project.engine, LogQuery(), limit=0)
    with pytest.raises(BadLogQuery, match="primary, fallback, pinned, shadow"):
        LogQuery(role="canary")


def test_a_sample_reads_exactly_the_picked_positions(project: Project) -> None:
    fill(project)
    query = LogQuery(model="churn", role="primary")  # c000 (oldest: c119) .. c119
    every = [r["request_id"] for r in iter_predictions(project.engine, query)]
    picked = list(iter_sample(project.engine, query, {0, 5, 119}, batch=2))
    assert [r["request_id"] for r in picked] == [every[0], every[5], every[119]]
    assert picked[0]["request_id"] == "c119" and picked[0]["inputs"] == {"age": [30]}
