"""Rules fire once, repeat after the cooldown, resolve, and reach every live channel."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from pointsman.alerts import Dispatcher, Evaluator, RuleBook, build_rule, read_history
from pointsman.alerts.evaluator import LEASE
from pointsman.alerts.history import prune_history
from pointsman.errors import InvalidAlertRule
from pointsman.logstore.spool import Spool
from pointsman.logstore.usage import UsageReporter
from pointsman.project import Project
from pointsman.routing.stats import Counts, StatsRecorder
from pointsman.store.tables import alert_deliveries, alert_rules, alert_states, leases
from tests.alerts.conftest import Mailbox, Receiver

FAST = (0.05, 0.1)  # retry backoff in tests


class Clock:
    """Real time to start with (leases and route history use it), moved by the test."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Harness:
    project: Project
    evaluator: Evaluator
    clock: Clock
    stats: StatsRecorder

    def traffic(self, requests: int, errors: int = 0, latency_s: float = 0.004) -> None:
        cell = self.stats.cell("churn", 1, 1, "primary")
        cell.requests += requests
        cell.errors += errors
        for _ in range(requests):
            cell.observe(latency_s)
        self.stats.flush(self.project.engine)

    def tick_after(self, seconds: float) -> list[str]:
        self.clock.advance(seconds)
        self.evaluator.dispatcher.drain(10)
        notices = [n.event for n in self.evaluator.tick()]
        assert self.evaluator.dispatcher.drain(10)
        return notices


def make_evaluator(project: Project, clock: Clock, holder: str = "test") -> Evaluator:
    rules = RuleBook(project.engine, project.settings.alerts)
    dispatcher = Dispatcher(project.engine, project.settings, backoff_s=FAST)
    return Evaluator(
        project.engine, project.routes, rules, dispatcher, holder, interval_s=10, clock=clock
    )


@pytest.fixture
def harness(project: Project) -> Iterator[Harness]:
    clock = Clock()
    evaluator = make_evaluator(project, clock)
    yield Harness(project, evaluator, clock, StatsRecorder())
    evaluator.close()


def add_rule(project: Project, name: str, when: str, notify: list[str], **options: Any) -> None:
    defaults: dict[str, Any] = {"model": "churn", "window": "1m", "for_": "1m", "cooldown": "10m"}
    rule = build_rule(name, when=when, notify=notify, **{**defaults, **options})
    RuleBook(project.engine).add(rule, "test")


def test_error_rate_fires_once_repeats_after_cooldown_and_resolves(
    harness: Harness, receivers: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)  # httpx logs each request at INFO, URL included
    hook, slack = receivers(), receivers()
    add_rule(
        harness.project,
        "errors",
        "error_rate > 0.05",
        [f"webhook={hook.url}", f"slack={slack.url}"],
    )
    assert harness.tick_after(0) == []  # first snapshot: the window is not covered yet
    harness.traffic(100, errors=10)
    assert harness.tick_after(60) == []  # pending: must hold for 1m
    harness.traffic(100, errors=10)
    assert harness.tick_after(60) == ["firing"]
    for _ in range(9):  # still failing, inside the 10m cooldown: nothing more is sent
        harness.traffic(100, errors=10)
        assert harness.tick_after(60) == []
    harness.traffic(100, errors=10)
    assert harness.tick_after(60) == ["repeat"]  # 10m after the first notice
    harness.traffic(100, errors=0)
    assert harness.tick_after(60) == ["resolved"]
    harness.traffic(100, errors=0)
    assert harness.tick_after(60) == []

    bodies = hook.bodies()
    assert [b["status"] for b in bodies] == ["firing", "firing", "resolved"]
    first = bodies[0]
    assert first["version"] == "4" and first["receiver"] == "pointsman"
    alert = first["alerts"][0]
    assert alert["labels"] == {
        "alertname": "errors", "model_name": "churn", "severity": "warn", "metric": "error_rate",
    }  # fmt: skip
    assert alert["annotations"]["summary"] == "error_rate on churn is 10.00% (> 5.00%, last 1m)"
    assert alert["endsAt"] == "0001-01-01T00:00:00Z" and len(alert["fingerprint"]) == 16
    resolved = bodies[2]["alerts"][0]
    assert resolved["startsAt"] == alert["startsAt"] and resolved["endsAt"] != alert["endsAt"]
    assert resolved["fingerprint"] == alert["fingerprint"]
    texts = [b["text"] for b in slack.bodies()]
    assert texts[0].startswith("[FIRING] error_rate on churn is 10.00%")
    assert texts[2] == "[RESOLVED] error_rate on churn back to 0.00% (alert at &gt; 5.00%)"
    assert slack.bodies()[0]["blocks"][0]["text"]["text"] == "FIRING: errors (warn)"

    history = read_history(harness.project.engine, rule="errors")
    assert [h["event"] for h in history] == ["resolved", "repeat", "firing"]
    for entry in history:
        assert sorted(d["outcome"] for d in entry["deliveries"]) == ["sent", "sent"]
        assert all(slack.url not in d["channel"] for d in entry["deliveries"])
    assert "HTTP Request: POST slack=http://127.0.0.1:" in caplog.text
    assert slack.url not in caplog.text and hook.url not in caplog.text


def test_pending_condition_that_clears_sends_nothing(harness: Harness, receivers: Any) -> None:
    hook = receivers()
    add_rule(harness.project, "slow", "p99_ms > 250", [f"webhook={hook.url}"], for_="2m")
    harness.tick_after(0)
    harness.traffic(50, latency_s=0.4)
    assert harness.tick_after(60) == []  # pending
    harness.traffic(50, latency_s=0.004)
    assert harness.tick_after(60) == []  # cleared before 2m: back to ok, silently
    harness.traffic(50, latency_s=0.4)
    assert harness.tick_after(60) == []
    harness.traffic(50, latency_s=0.4)
    assert harness.tick_after(60) == []
    harness.traffic(50, latency_s=0.4)
    assert harness.tick_after(60) == ["firing"]  # held 2m this time
    assert hook.bodies()[0]["alerts"][0]["annotations"]["summary"].startswith(
        "p99_ms on churn is 500 ms (> 250 ms"
    )


def test_dead_channel_does_not_stop_the_others(
    harness: Harness, receivers: Any, dead_url: str, smtp: tuple[Mailbox, int]
) -> None:
    mailbox, port = smtp
    settings = harness.project.settings
    settings.smtp_host, settings.smtp_port = "127.0.0.1", port
    harness.evaluator.dispatcher = Dispatcher(harness.project.engine, settings, backoff_s=FAST)
    hook = receivers()
    channels = [f"webhook={dead_url}", f"webhook={hook.url}", "email=ops@example.com"]
    add_rule(harness.project, "errors", "error_rate > 0.05", channels, for_="0s")
    harness.tick_after(0)
    harness.traffic(100, errors=50)
    assert harness.tick_after(60) == ["firing"]
    assert [b["status"] for b in hook.bodies()] == ["firing"]
    mail = mailbox.all()
    assert len(mail) == 1 and mail[0]["To"] == "ops@example.com"
    assert mail[0]["Subject"] == "[pointsman FIRING warn] errors on churn"
    assert "error_rate on churn is 50.00%" in mail[0].get_payload()
    (entry,) = read_history(harness.project.engine, rule="errors")
    outcomes = {}
    for d in entry["deliveries"]:
        outcomes.setdefault(d["channel"], []).append(d["outcome"])
    dead = "webhook=" + dead_url.removesuffix("/hook") + "/…"
    assert outcomes[dead] == ["retrying", "retrying", "failed"]
    assert outcomes["email=ops@example.com"] == ["sent"]
    assert "ConnectError" in entry["deliveries"][-1]["detail"] or any(
        "ConnectError" in d["detail"] for d in entry["deliveries"] if d["channel"] == dead
    )


@pytest.mark.parametrize(
    ("script", "outcomes", "posts"),
    [
        ([(500, {}), (200, {})], ["retrying", "sent"], 2),
        ([(429, {"Retry-After": "0"}), (200, {})], ["retrying", "sent"], 2),
        ([(503, {}), (502, {}), (500, {})], ["retrying", "retrying", "failed"], 3),
        ([(400, {})], ["failed"], 1),
    ],
    ids=["500-then-200", "429-retry-after", "5xx-gives-up", "400-not-retried"],
)
def test_sender_policy(
    harness: Harness,
    receivers: Any,
    script: list[tuple[int, dict[str, str]]],
    outcomes: list[str],
    posts: int,
) -> None:
    hook: Receiver = receivers(*script)
    add_rule(harness.project, "errors", "error_rate > 0.05", [f"slack={hook.url}"], for_="0s")
    harness.tick_after(0)
    harness.traffic(10, errors=5)
    assert harness.tick_after(60) == ["firing"]
    assert len(hook.bodies()) == posts
    (entry,) = read_history(harness.project.engine)
    assert [d["outcome"] for d in entry["deliveries"]] == outcomes
    if outcomes[-1] == "failed" and posts == 1:
        assert entry["deliveries"][0]["detail"] == "HTTP 400: invalid_payload"


def test_exactly_one_evaluator_sends_and_a_successor_resolves(
    project: Project, receivers: Any
) -> None:
    hook = receivers()
    add_rule(project, "errors", "error_rate > 0.05", [f"webhook={hook.url}"], for_="0s")
    clock, stats = Clock(), StatsRecorder()
    first, second = make_evaluator(project, clock, "a"), make_evaluator(project, clock, "b")
    try:
        for evaluator in (first, second):
            evaluator.tick()  # both snapshot; only "a" holds the lease
        cell = stats.cell("churn", 1, 1, "primary")
        cell.requests, cell.errors = 100, 20
        stats.flush(project.engine)
        clock.advance(60)
        assert [n.event for n in first.tick()] == ["firing"]
        assert second.tick() == []  # warm, but not the lease holder
        first.close()  # releases the lease
        with project.engine.connect() as conn:
            assert (
                conn.execute(sa.select(leases.c.holder).where(leases.c.name == LEASE)).all() == []
            )
        cell.requests += 100
        stats.flush(project.engine)
        clock.advance(60)
        assert [n.event for n in second.tick()] == ["resolved"]  # the state was in the store
        assert second.dispatcher.drain(10)
    finally:
        second.close()
    assert [b["status"] for b in hook.bodies()] == ["firing", "resolved"]
    with project.engine.connect() as conn:
        assert conn.execute(sa.select(alert_states.c.status)).scalars().all() == ["ok"]


def test_a_stored_rule_whose_metric_is_gone_is_reported_not_fatal(
    harness: Harness, receivers: Any, caplog: pytest.LogCaptureFixture
) -> None:
    hook = receivers()
    add_rule(harness.project, "errors", "error_rate > 0.05", [f"webhook={hook.url}"], for_="0s")
    spec = {"model": "churn", "when": "gone_metric > 1", "notify": [f"webhook={hook.url}"]}
    with harness.project.engine.begin() as conn:  # as an older pointsman might have left it
        conn.execute(
            alert_rules.insert().values(
                name="old", spec=spec, created_at=datetime.now(UTC), created_by="t"
            )
        )
    book = RuleBook(harness.project.engine)
    assert [r.name for r in book.list_rules()] == ["errors", "old"]
    harness.tick_after(0)
    harness.traffic(10, errors=5)
    assert harness.tick_after(60) == ["firing"]  # the other rule still works
    assert "unknown metric 'gone_metric' (known metrics: accuracy" in caplog.text
    assert book.remove("old", "t").name == "old"


def bad_counts(cell: Counts, metric: str) -> None:
    """Traffic that makes `metric` cross its threshold (below)."""
    cell.requests += 100
    if metric == "fallback_rate":
        cell.fallbacks += 20
    elif metric == "validation_flag_rate":
        cell.invalid += 20
    elif metric == "timeout_rate":
        cell.timeouts += 20
        cell.errors += 20
    for _ in range(100):
        cell.observe(0.9 if metric == "p99_ms" else 0.003)


@pytest.mark.parametrize(
    ("when", "metric"),
    [
        ("fallback_rate > 0.1", "fallback_rate"),
        ("validation_flag_rate > 10%", "validation_flag_rate"),
        ("timeout_rate > 0.1", "timeout_rate"),
        ("p99_ms > 250", "p99_ms"),
        ("request_rate > 1", "request_rate"),
    ],
)
def test_each_stats_metric_fires_once_and_resolves(
    harness: Harness, receivers: Any, when: str, metric: str
) -> None:
    hook = receivers()
    add_rule(harness.project, "r", when, [f"webhook={hook.url}"], for_="0s", cooldown="1h")
    cell = harness.stats.cell("churn", 1, 1, "primary")
    harness.tick_after(0)
    events = []
    for _ in range(3):  # bad for 3 minutes: one notice
        bad_counts(cell, metric)
        harness.stats.flush(harness.project.engine)
        events += harness.tick_after(60)
    if metric != "request_rate":  # for request_rate, a minute without traffic clears it
        cell.requests += 100
        for _ in range(100):
            cell.observe(0.003)
        harness.stats.flush(harness.project.engine)
    events += harness.tick_after(60)
    assert events == ["firing", "resolved"]
    assert [b["alerts"][0]["labels"]["metric"] for b in hook.bodies()] == [metric, metric]


def test_spool_usage_fires_once_for_the_server_from_any_host(
    harness: Harness, receivers: Any, tmp_path: Path
) -> None:
    """Two hosts' spools report to the store; the fullest one decides, one notice in all."""
    hook = receivers()
    add_rule(
        harness.project, "spool", "spool_usage > 80%", [f"webhook={hook.url}"],
        model="", for_="0s",
    )  # fmt: skip
    quiet = Spool(tmp_path / "a", segment_bytes=1 << 20, budget_bytes=1000)
    busy = Spool(tmp_path / "b", segment_bytes=1 << 20, budget_bytes=1000)
    try:
        reporters = [UsageReporter(quiet, harness.project.engine)]
        reporters.append(UsageReporter(busy, harness.project.engine))
        for reporter in reporters:
            assert reporter.report()
        assert harness.tick_after(0) == []
        busy.used_bytes = 900  # as the shipper measures it while the store takes nothing
        assert reporters[1].report()  # moved by more than 1 % of the budget: written now
        assert not reporters[1].report()  # unchanged and reported a moment ago: not again
        assert harness.tick_after(1) == ["firing"]
        assert harness.tick_after(1) == []
        busy.used_bytes = 100
        assert reporters[1].report()
        assert harness.tick_after(1) == ["resolved"]
    finally:
        quiet.close()
        busy.close()
    bodies = hook.bodies()
    assert [b["status"] for b in bodies] == ["firing", "resolved"]
    assert "spool_usage on the server is 90.00%" in bodies[0]["alerts"][0]["annotations"]["summary"]


def test_a_server_wide_metric_refuses_a_model() -> None:
    with pytest.raises(InvalidAlertRule, match=r"whole server.*leave out the model"):
        build_rule("spool", when="spool_usage > 0.8", model="churn")
    assert build_rule("spool", when="spool_usage > 0.8").model == "*"


def test_old_notices_and_their_deliveries_are_pruned(harness: Harness, receivers: Any) -> None:
    hook = receivers()
    add_rule(harness.project, "errors", "error_rate > 0.05", [f"webhook={hook.url}"], for_="0s")
    harness.tick_after(0)
    harness.traffic(100, errors=10)
    assert harness.tick_after(60) == ["firing"]
    engine = harness.project.engine
    assert len(read_history(engine)) == 1
    assert prune_history(engine, datetime.now(UTC) - timedelta(days=1)) == 0
    assert prune_history(engine, datetime.now(UTC) + timedelta(days=1)) == 1
    assert read_history(engine) == []
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(alert_deliveries)).scalar() == 0
