"""Every periodic job of one server process, listed in `Worker.jobs`.

Each job runs on its own fixed-cadence task, each call in a thread of the worker's pool, so
that a slow job (a store outage, a big drift window) never delays another. Cancelling a task
does not stop a thread already running its job: `close` waits for the pool before the store
is closed, so no query is cut off and no connection left open.

On PostgreSQL a `ChangeListener` pushes changes: a notice wakes the jobs it concerns at once
(the route poll, the API-key poll, the alerts), and while it listens the polls run only every
`listen_poll_interval_s`, as a safety net; when it is down they poll every
`refresh_interval_s` again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple

from pointsman.alerts import Dispatcher, Evaluator, RuleBook
from pointsman.alerts.watch import rule_configs
from pointsman.auth import KeyCache
from pointsman.catalog import Catalog
from pointsman.gates.verdicts import canary_quality_check
from pointsman.monitoring import metrics
from pointsman.monitoring.drift_process import DriftProcess
from pointsman.monitoring.heartbeat import Heart, replica_name
from pointsman.monitoring.monitor import DriftMonitor
from pointsman.pipeline import Pipeline
from pointsman.project import Project
from pointsman.routing.canary import CanaryController
from pointsman.store.changes import RESYNC, ChangeListener
from pointsman.store.outage import OutageLog, probe_of

log = logging.getLogger("pointsman.worker")


class Job(NamedTuple):
    """A periodic job: its name (in logs), cadence, work, and the changes that wake it."""

    name: str
    interval_s: float
    work: Callable[[], object]
    woken_by: frozenset[str] = frozenset()  # change kinds (store/changes.py) that run it now
    is_poll: bool = False  # only looks for changes: relaxed while changes are pushed


CATALOG_KINDS = frozenset({"routes", "versions", "runners"})
LINK_S = 0.1  # how soon a runner that came up gets this worker's connection
STOP_WAIT_S = 1.0  # how long stop waits for cancelled jobs before cancelling again
PENDING_WAKE_S = 1.0  # at most this often, a route held back for its runners wakes the poll


class Worker:
    """The background of one server process: route changes, stats, canaries, keys, the
    prediction log's sealing, drift and alerts."""

    def __init__(
        self,
        project: Project,
        catalog: Catalog,
        pipeline: Pipeline,
        keys: KeyCache | None,
        listener: ChangeListener | None = None,
    ) -> None:
        self.project = project
        self.listener = listener
        self.settings = settings = project.settings
        self.catalog = catalog
        self.pipeline = pipeline
        self.keys = keys
        holder = pipeline.stats.worker
        self.canary = CanaryController(
            project.engine, project.routes, holder,
            quality_check=canary_quality_check(project.engine, project.routes),
        )  # fmt: skip
        self.alerts = Evaluator(
            project.engine,
            project.routes,
            RuleBook(project.engine, rule_configs(settings)),
            Dispatcher(project.engine, settings),
            holder,
            interval_s=settings.alerts_interval_s,
            lease_s=settings.alerts_lease_s,
            history_days=settings.alerts_history_days,
            live_within_s=3 * settings.heartbeat_interval_s,
        )
        self.drift_process: DriftProcess | None = None
        self.drift: DriftMonitor | None = None
        if pipeline.log is not None:  # drift reads the log; it runs off this process's GIL
            self.drift_process = DriftProcess(settings)
            self.drift = DriftMonitor(project, holder, run=self.drift_process.run)
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="pointsman-bg")
        self._tasks: list[asyncio.Task[None]] = []
        self._wakes: dict[str, asyncio.Event] = {}  # job name → set to run it now
        self._loop: asyncio.AbstractEventLoop | None = None
        self._counted: dict[str, int] = {}  # totals already added to counters (deltas)
        self.outage = OutageLog(self.describe_spool, probe=probe_of(project.engine))
        self.heart = Heart(project.engine, replica_name(settings))
        metrics.WORKERS.set(1)  # this process serves (a live gauge: summed over workers)

    def jobs(self) -> list[Job]:
        """Every periodic job of this process, with its cadence."""
        s = self.settings
        jobs: list[Job] = [
            Job("route poll", s.refresh_interval_s, self.poll_routes, CATALOG_KINDS, True),
            Job("stats and canary", 1.0, self.flush_stats),
            Job("alerts", s.alerts_interval_s, self.alerts.tick, frozenset({"alerts"})),
            Job("heartbeat", s.heartbeat_interval_s, self.heart.beat),
        ]
        if self.keys is not None:
            keys = frozenset({"keys"})
            jobs.append(Job("API-key poll", s.refresh_interval_s, self.keys.refresh, keys, True))
        if self.pipeline.log is not None:  # the server's shipping takes what it seals
            jobs.append(Job("log sealing", s.log_ship_interval_s, self.pipeline.log.seal))
        if self.drift is not None:
            # Drift reads the log: checked every few seconds, run every drift_interval_s.
            drift = self.drift
            tick = lambda: drift.tick(time.monotonic())  # noqa: E731
            jobs.append(Job("drift", min(s.drift_interval_s, 10.0), tick))
        return jobs

    def start(self) -> None:
        """Start every job (and the shadow queue's drain) on the running event loop."""
        self._loop = asyncio.get_running_loop()
        jobs = self.jobs()
        self._wakes = {job.name: asyncio.Event() for job in jobs}
        self._tasks = [asyncio.create_task(self._every(job)) for job in jobs]
        if self.listener is not None:
            # A resync (listener connected or lost) wakes the polls: notices may be missed.
            woken = {j.name: j.woken_by | ({RESYNC} if j.is_poll else set()) for j in jobs}
            self.listener.subscribe(lambda kind: self._heard(kind, woken))
        self._tasks.append(asyncio.create_task(self._link_runners()))
        self._tasks.append(asyncio.create_task(self.heart.watch_loop()))
        shadows = self.pipeline.shadows
        if shadows is not None:
            self._tasks.append(asyncio.create_task(shadows.drain_forever(self.pipeline.run_shadow)))

    async def stop(self) -> None:
        """Cancel every job, then wait for the threads still running one."""
        pending = set(self._tasks)
        while pending:  # a job that swallowed one cancellation gets another
            for task in pending:
                task.cancel()
            _, pending = await asyncio.wait(pending, timeout=STOP_WAIT_S)
        self._tasks = []
        self.close()

    def close(self) -> None:
        if self.drift_process is not None:
            self.drift_process.close()  # first: a run in flight would hold up the pool
        self._pool.shutdown(wait=True, cancel_futures=True)  # no query left in flight
        self.alerts.close()
        self.heart.stop()  # a clean stop: the other replicas do not call this one down

    def _heard(self, kind: str, woken: dict[str, frozenset[str]]) -> None:
        """In the listener's thread: wake, on the event loop, each job `kind` concerns."""
        names = [name for name, kinds in woken.items() if kind in kinds]
        if names and self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self.wake, *names)

    def wake(self, *names: str) -> None:
        """Run these jobs now (on the event loop), whatever their cadence."""
        for name in names:
            self._wakes[name].set()

    def interval_of(self, job: Job) -> float:
        """The job's cadence now: a poll relaxes while the listener hears every change."""
        if job.is_poll and self.listener is not None and self.listener.is_listening:
            return max(job.interval_s, self.settings.listen_poll_interval_s)
        return job.interval_s

    async def _every(self, job: Job) -> None:
        """Run the job in a thread on a fixed cadence (a slow run does not push the next
        back), and at once when woken."""
        wake = self._wakes[job.name]
        deadline = time.monotonic()
        while True:
            interval_s = self.interval_of(job)
            deadline += interval_s
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), max(0.0, deadline - time.monotonic()))
            wake.clear()  # before the run: a change committed during it wakes it again
            try:
                await asyncio.get_running_loop().run_in_executor(self._pool, job.work)
            except Exception as exc:  # the store may be down for a while: keep serving
                if not self.outage.failed(job.name, exc):
                    log.exception("%s failed; serving with what is already loaded", job.name)
            else:
                self.outage.succeeded(job.name)
            # No burst after a stall; woken early, the next run is an interval after this one.
            deadline = min(max(deadline, time.monotonic() - interval_s), time.monotonic())

    async def _link_runners(self) -> None:
        """On the event loop: connect to runners that came up (or came back); wake the route
        poll when a route held back for its runners can be taken (again a second later if
        it is still held back, say with the store down)."""
        woken_at = -PENDING_WAKE_S
        while True:
            try:
                await self.catalog.connect()
                now = time.monotonic()
                if now - woken_at >= PENDING_WAKE_S and self.catalog.has_warm_pending():
                    woken_at = now
                    self.wake("route poll")
            except Exception:
                log.exception("connecting to runners failed; retrying")
            await asyncio.sleep(LINK_S)

    # -- the jobs -------------------------------------------------------------------
    def poll_routes(self) -> None:
        """Refresh the catalog when the store's change counter moved."""
        if self.catalog.is_stale():
            self.catalog.refresh()

    def flush_stats(self) -> None:
        """Write this process's stats, sample the metrics, tick the canaries."""
        stats = self.pipeline.stats
        stats.flush(self.project.engine)
        in_force = {m: r.revision for m, r in self.catalog.snapshot.routes.items()}
        stats.keep_only(in_force, time.monotonic(), 2 * self.settings.request_timeout_s)
        self.sample_metrics()
        if self.canary.tick():
            self.catalog.refresh()

    def sample_metrics(self) -> None:
        """Bring the sampled metrics up to date: process, breakers, spool, shadow drops."""
        metrics.sample_process()
        if self.listener is not None:
            metrics.CHANGES_LISTENING.set(1 if self.listener.is_listening else 0)
        pipeline = self.pipeline
        for (model, number), breaker in list(pipeline.breakers.items()):
            metrics.BREAKER_OPEN.labels(model, str(number)).set(breaker.state != "closed")
        if pipeline.log is not None:
            spool = pipeline.log.spool
            metrics.SPOOL_BYTES.set(spool.used_bytes)
            metrics.SPOOL_BUDGET.set(spool.budget_bytes)
            self._add_delta("log_dropped", spool.dropped, metrics.LOG_DROPPED)
        if pipeline.shadows is not None:
            self._add_delta("shadow_dropped", pipeline.shadows.dropped, metrics.SHADOW_DROPPED)

    def describe_spool(self) -> str:
        """What an operator asks during a store outage: how much is spooled, how long it lasts."""
        if self.pipeline.log is None:
            return "the prediction log is off"
        spool = self.pipeline.log.spool
        left = max(0, spool.budget_bytes - spool.used_bytes)
        then = "refused with 503" if spool.refuse_when_full else "dropped (and counted)"
        return (
            f"prediction records spooled on disk: {spool.used_bytes} bytes, "
            f"{left} of the {spool.budget_bytes}-byte budget left "
            f"({100 * left / max(1, spool.budget_bytes):.0f} %); past it records are {then}"
        )

    def _add_delta(self, name: str, total: int, counter: Any) -> None:
        before = self._counted.get(name, 0)
        if total > before:
            counter.inc(total - before)
            self._counted[name] = total
