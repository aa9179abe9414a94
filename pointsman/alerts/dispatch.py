"""Delivery: one bounded queue and one thread per channel, retries with backoff.

The evaluator only enqueues (never waits on a channel), so a dead receiver delays nothing
but its own later notices; the request path never sends at all. Every attempt is written
to the history. Queues live in memory: notices still queued when the process stops are
lost (their alert is in the history with the attempts made so far).
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime

import httpx
from sqlalchemy.engine import Engine

from pointsman.alerts.history import Notice, record_attempt, record_notice
from pointsman.alerts.rules import Channel, Rule
from pointsman.alerts.sinks import TIMEOUT_S, AlertSink, Outcome, build_sink
from pointsman.monitoring import metrics
from pointsman.settings import Settings

log = logging.getLogger("pointsman.alerts")

BACKOFF_S = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0)  # then give up: 8 attempts in ~2 min
QUEUE_SIZE = 100
SinkFactory = Callable[[Channel], AlertSink]


def deliver(
    sink: AlertSink,
    notice: Notice,
    engine: Engine,
    backoff_s: Sequence[float] = BACKOFF_S,
    wait: Callable[[float], bool] = lambda s: False,
) -> Outcome:
    """Send until sent, refused for good, or out of attempts; record every attempt.

    `wait(seconds)` sleeps and returns True if the sender is shutting down.
    """
    label = sink.channel.label
    attempt = 0
    while True:
        attempt += 1
        outcome = sink.send(notice)
        last = not outcome.should_retry or attempt > len(backoff_s)
        state = "sent" if outcome.is_sent else "failed" if last else "retrying"
        metrics.ALERTS_SENT.labels(sink.channel.kind, state).inc()
        if notice.alert_id is not None:
            record_attempt(engine, notice.alert_id, label, attempt, state, outcome.detail)
        if outcome.is_sent:
            return outcome
        if last:
            log.warning("alert %s to %s not delivered: %s", notice.rule, label, outcome.detail)
            return outcome
        delay = (
            outcome.retry_after_s if outcome.retry_after_s is not None else backoff_s[attempt - 1]
        )
        if wait(delay):
            return outcome


class ChannelWorker:
    """A queue and the thread that drains it into one sink."""

    def __init__(self, sink: AlertSink, engine: Engine, backoff_s: Sequence[float]) -> None:
        self.sink = sink
        self.engine = engine
        self.backoff_s = backoff_s
        self.queue: queue.Queue[Notice | None] = queue.Queue(QUEUE_SIZE)
        self.stopping = threading.Event()
        self.thread = threading.Thread(
            target=self._run, name=f"pointsman-alert-{sink.channel.kind}", daemon=True
        )
        self.thread.start()

    def put(self, notice: Notice) -> None:
        try:
            self.queue.put_nowait(notice)
        except queue.Full:  # a long-dead channel: drop this notice, and say so
            log.warning("alert %s to %s dropped: queue full", notice.rule, self.sink.channel.label)
            if notice.alert_id is None:
                return
            metrics.ALERTS_SENT.labels(self.sink.channel.kind, "dropped").inc()
            with contextlib.suppress(Exception):  # the store may be down too: never raise here
                record_attempt(
                    self.engine, notice.alert_id, self.sink.channel.label, 0, "dropped",
                    f"{QUEUE_SIZE} notices already wait for this channel",
                )  # fmt: skip

    def _run(self) -> None:
        while not self.stopping.is_set():
            notice = self.queue.get()
            if notice is None:
                return
            try:
                deliver(self.sink, notice, self.engine, self.backoff_s, self.stopping.wait)
            except Exception:  # the store may be down: the next notice tries again
                log.exception("alert %s to %s", notice.rule, self.sink.channel.label)
            finally:
                self.queue.task_done()

    def stop(self) -> None:
        self.stopping.set()
        with contextlib.suppress(queue.Full):
            self.queue.put_nowait(None)


class Dispatcher:
    """Hands notices to per-channel workers, started on first use."""

    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        backoff_s: Sequence[float] = BACKOFF_S,
        sink_factory: SinkFactory | None = None,
    ) -> None:
        self.engine = engine
        self.backoff_s = backoff_s
        self.settings = settings
        self._client: httpx.Client | None = None  # opened with the first HTTP channel
        self.sink_factory = sink_factory or self._build_sink
        self.workers: dict[Channel, ChannelWorker] = {}
        self._lock = threading.Lock()

    def send(self, notice: Notice, channels: Sequence[Channel]) -> None:
        """Queue `notice` for every channel; returns at once."""
        for channel in channels:
            self.worker(channel).put(notice)

    def _build_sink(self, channel: Channel) -> AlertSink:
        if self._client is None:
            self._client = httpx.Client(timeout=TIMEOUT_S, follow_redirects=False)
        return build_sink(channel, self.settings, self._client)

    def worker(self, channel: Channel) -> ChannelWorker:
        with self._lock:
            found = self.workers.get(channel)
            if found is None:
                sink = self.sink_factory(channel)
                found = self.workers[channel] = ChannelWorker(sink, self.engine, self.backoff_s)
            return found

    def drain(self, timeout_s: float) -> bool:
        """Wait until every queued notice is handled (tests, `alerts test`); True if so."""
        done = threading.Event()

        def join_all() -> None:
            for worker in list(self.workers.values()):
                worker.queue.join()
            done.set()

        threading.Thread(target=join_all, daemon=True).start()
        return done.wait(timeout_s)

    def close(self) -> None:
        for worker in self.workers.values():
            worker.stop()
        for worker in self.workers.values():
            worker.thread.join(timeout=TIMEOUT_S + 1)
        if self._client is not None:
            self._client.close()


def send_test(
    engine: Engine, settings: Settings, rule: Rule, backoff_s: Sequence[float] = (0.5, 1.0)
) -> list[tuple[str, Outcome]]:
    """Send a test notice of `rule` to each of its channels at once; wait for the outcomes."""
    now = datetime.now(UTC)
    model = rule.model if rule.model != "*" else "(every model)"
    notice = Notice(
        rule=rule.name, model=model, event="test", severity=rule.severity, value=None,
        summary=f"test of alert rule {rule.name} ({rule.condition.text})",
        description=rule.description or "A test notification sent by `pointsman alerts test`.",
        started_at=now, at=now, metric=rule.condition.metric,
    )  # fmt: skip
    notice = replace(notice, alert_id=record_notice(engine, notice))
    with httpx.Client(timeout=TIMEOUT_S, follow_redirects=False) as client:
        sinks = [build_sink(c, settings, client) for c in rule.channels]
        with ThreadPoolExecutor(max_workers=max(1, len(sinks))) as pool:
            outcomes = pool.map(lambda s: deliver(s, notice, engine, backoff_s, wait_s), sinks)
            return [(s.channel.label, o) for s, o in zip(sinks, outcomes, strict=True)]


def wait_s(seconds: float) -> bool:
    time.sleep(seconds)
    return False
