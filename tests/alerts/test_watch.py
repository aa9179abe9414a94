"""The servers watch themselves: a watchdog that always fires, and `replica_down` sent by a
surviving replica for one killed (and resolved when it comes back). Two real servers on one
PostgreSQL, a webhook receiver on 127.0.0.1."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from pointsman.alerts import RuleBook
from pointsman.alerts.metrics import METRICS, MetricContext
from pointsman.alerts.snapshots import Snapshots
from pointsman.alerts.watch import REPLICA_DOWN, WATCHDOG, rule_configs
from pointsman.project import init_project, open_project
from pointsman.settings import load_settings
from pointsman.store import heartbeats
from tests.alerts.conftest import Receiver
from tests.conftest import Server, fresh_postgres_database


def alerts_of(receiver: Receiver, rule: str) -> list[dict[str, Any]]:
    """(status, model_name) of every notice of `rule` the receiver got, in order."""
    return [
        a for body in receiver.bodies() for a in body["alerts"] if a["labels"]["alertname"] == rule
    ]


def wait_for(what: str, check: Callable[[], bool], timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"not within {timeout_s} s: {what}")


def watched_project(folder: Path, url: str, hook: str) -> Path:
    folder, _ = init_project(folder, url)
    with (folder / "pointsman.toml").open("a") as toml:
        toml.write(
            "alerts_interval_s = 0.5\nalerts_lease_s = 1.5\nheartbeat_interval_s = 0.3\n"
            "replica_down_after_s = 2\nwatchdog_every_s = 2\n"
            f"watchdog_notify = [{json.dumps('webhook=' + hook)}]\n"
            f"replica_down_notify = [{json.dumps('webhook=' + hook)}]\n"
        )
    return folder


def test_the_watch_rules_are_built_from_the_settings_only_when_they_have_channels(
    tmp_path: Path,
) -> None:
    folder, _ = init_project(tmp_path / "p")
    assert rule_configs(load_settings(folder)) == []
    settings = load_settings(
        folder, watchdog_notify=["webhook=http://127.0.0.1:9/x"], replica_down_after_s=45
    )
    (watchdog,) = rule_configs(settings)
    assert watchdog.name == WATCHDOG and watchdog.cooldown == "300s"
    settings = settings.model_copy(update={"replica_down_notify": ["webhook=http://127.0.0.1:9/"]})
    with open_project(settings) as project:
        book = RuleBook(project.engine, rule_configs(settings))
    rules = {r.name: r for r in book.file_rules}
    assert rules[REPLICA_DOWN].condition.text.startswith("replica_silent_s > 45")


def test_process_metrics_read_the_live_workers_heartbeats(tmp_path: Path) -> None:
    folder, _ = init_project(tmp_path / "p")
    with open_project(load_settings(folder)) as project:
        engine = project.engine
        now = datetime.now(UTC)
        started = now - timedelta(minutes=5)
        heartbeats.beat(engine, "a:1", "10", started, cpu_ratio=0.5, rss_bytes=100,
                        loop_lag_ms=3.0, now=now)  # fmt: skip
        heartbeats.beat(engine, "a:1", "11", started, cpu_ratio=0.9, rss_bytes=300,
                        loop_lag_ms=250.0, now=now - timedelta(seconds=1))  # fmt: skip
        heartbeats.beat(
            engine,
            "b:1",
            "12",
            started,
            cpu_ratio=2.0,
            rss_bytes=900,
            now=now - timedelta(minutes=2),
        )  # fmt: skip: silent, not live
        heartbeats.beat(engine, "c:1", "13", started, now=now - timedelta(minutes=2))
        heartbeats.stopped(engine, "c:1", "13", now=now - timedelta(minutes=2))
        ctx = MetricContext(engine, project.routes, Snapshots(), now, live_within_s=30)

        def read(name: str, target: str = "*") -> float | None:
            return METRICS[name].fn(ctx, target, 60)

        assert read("live_workers") == 2
        assert read("process_cpu") == 0.9
        assert read("process_memory_bytes") == 300
        assert read("event_loop_lag_ms") == 250
        assert read("replica_silent_s", "a:1") == 0
        assert read("replica_silent_s", "b:1") == pytest.approx(120, abs=1)
        assert read("replica_silent_s", "c:1") is None  # stopped cleanly: not down
        with engine.connect() as conn:
            assert conn.execute(sa.text("select count(*) from replica_heartbeats")).scalar() == 4


def test_replica_down_fires_from_the_survivor_and_resolves_when_it_returns(
    request: pytest.FixtureRequest, tmp_path: Path, receivers: Any
) -> None:
    url = fresh_postgres_database(request)
    receiver = receivers()
    folder = watched_project(tmp_path / "project", url, receiver.url)
    open_project(load_settings(folder)).close()  # migrated once, before they race to do it
    with ThreadPoolExecutor(2) as pool:  # each takes seconds to start: side by side
        a, b = pool.map(
            lambda name: Server(folder, env={"POINTSMAN_REPLICA_NAME": name}),
            ["replica-a", "replica-b"],
        )
    back = None
    try:
        wait_for("the watchdog fires", lambda: len(alerts_of(receiver, WATCHDOG)) >= 1)
        engine = sa.create_engine(url)
        try:
            wait_for(
                "both replicas beat",
                lambda: (
                    {b.replica for b in heartbeats.load_beats(engine)} == {"replica-a", "replica-b"}
                ),
            )
        finally:
            engine.dispose()
        b.process.kill()  # SIGKILL: no clean stop, its heartbeat just ends
        b.process.wait(10)
        downs = lambda: [  # noqa: E731
            x for x in alerts_of(receiver, REPLICA_DOWN) if x["labels"]["model_name"] == "replica-b"
        ]
        wait_for("replica_down fires for replica-b", lambda: bool(downs()))
        assert downs()[0]["status"] == "firing"
        assert downs()[0]["labels"]["severity"] == "critical"
        assert not any(
            x["labels"]["model_name"] == "replica-a" for x in alerts_of(receiver, REPLICA_DOWN)
        )
        back = Server(folder, env={"POINTSMAN_REPLICA_NAME": "replica-b"})
        wait_for("replica_down resolves", lambda: downs()[-1]["status"] == "resolved")
        # The watchdog repeats every watchdog_every_s, firing for ever.
        wait_for("the watchdog repeats", lambda: len(alerts_of(receiver, WATCHDOG)) >= 2)
        assert {x["status"] for x in alerts_of(receiver, WATCHDOG)} == {"firing"}
    finally:
        for server in (a, b, back):
            if server is not None:
                server.stop()
    # Both stopped cleanly: neither is down now.
    with open_project(load_settings(folder)) as project:
        beats = heartbeats.load_beats(project.engine)
        assert beats and all(
            heartbeats.silent_s(beats, r, datetime.now(UTC)) is None
            for r in ("replica-a", "replica-b")
        )
