"""A channel that is down fills only its own queue; past it, notices are dropped and recorded."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from pointsman.alerts.dispatch import QUEUE_SIZE, Dispatcher
from pointsman.alerts.history import Notice, read_history, record_notice
from pointsman.alerts.rules import Channel
from pointsman.project import Project


def notice(project: Project, n: int) -> Notice:
    now = datetime.now(UTC)
    made = Notice("r", "churn", "firing", "warn", 1.0, f"n{n}", "", now, now)
    return replace(made, alert_id=record_notice(project.engine, made))


def test_a_full_queue_drops_and_records_while_other_channels_deliver(
    project: Project, dead_url: str, receivers: Any
) -> None:
    hook = receivers()
    # a long backoff keeps the dead channel's worker waiting on its first notice
    dispatcher = Dispatcher(project.engine, project.settings, backoff_s=(60.0,))
    dead, live = Channel("webhook", dead_url), Channel("webhook", hook.url)
    try:
        notices = [notice(project, n) for n in range(QUEUE_SIZE + 3)]
        dispatcher.send(notices[0], [dead])
        deadline = time.monotonic() + 10  # until the worker has it in hand, backing off
        while not read_history(project.engine, limit=1000)[-1]["deliveries"]:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        start = time.perf_counter()
        for item in notices[1:]:
            dispatcher.send(item, [dead])
        took = time.perf_counter() - start
        for item in notices[:3]:  # the dead channel is stuck; this one is not
            dispatcher.send(item, [live])
        deadline = time.monotonic() + 10
        while len(hook.bodies()) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        dispatcher.close()  # interrupts the dead channel's backoff at once
    assert took < 5  # queuing never waits on a channel
    assert [b["alerts"][0]["annotations"]["summary"] for b in hook.bodies()] == ["n0", "n1", "n2"]
    history = {h["summary"]: h["deliveries"] for h in read_history(project.engine, limit=1000)}
    dropped = [s for s, ds in history.items() if any(d["outcome"] == "dropped" for d in ds)]
    # one notice in the dead worker's hands, QUEUE_SIZE waiting: the rest were dropped
    assert sorted(dropped) == sorted(f"n{n}" for n in range(QUEUE_SIZE + 1, QUEUE_SIZE + 3))
    first = [d for d in history["n0"] if d["channel"].startswith("webhook=" + dead_url[:20])]
    assert [d["outcome"] for d in first] == ["retrying"]
