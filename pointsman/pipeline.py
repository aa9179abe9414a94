"""The path of one request, from a decoded Frame to a Prediction; knows nothing of HTTP.

Routes, version metadata and loaded models live in memory. A background task polls the
store's change counter and swaps in new routes only after loading and warming their
versions, so the request path never touches the database and never meets a cold version.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

import anyio.to_thread

from pointsman.alerts import Dispatcher, Evaluator, RuleBook, record_event
from pointsman.errors import (
    InputRejected,
    ModelFailed,
    ModelNotFound,
    ModelNotReady,
    ModelTimeout,
    NotDeployed,
    PointsmanError,
    VersionNotFound,
)
from pointsman.logstore import PredictionLog
from pointsman.monitoring import metrics
from pointsman.monitoring.monitor import DriftMonitor
from pointsman.project import Project
from pointsman.registry import VersionRecord, read_change_counter
from pointsman.registry.loading import load_and_warm
from pointsman.routing import Route
from pointsman.routing.assign import choose_arm
from pointsman.routing.breaker import Breaker
from pointsman.routing.canary import CanaryController
from pointsman.routing.shadow import ShadowJob, ShadowQueue, compare
from pointsman.routing.stats import StatsRecorder
from pointsman.runtimes import Runtime
from pointsman.types import Frame, Outputs, Prediction, Signature
from pointsman.validation import build_frame
from pointsman.validation.checks import ProfileChecks
from pointsman.validation.policy import ROW_FEATURE, ValidationPolicy

log = logging.getLogger("pointsman.pipeline")

# Per request: the model, the version run last and its role, frame and model time, for the
# prediction record and the metrics. Set by `request_trace` (the HTTP layer) or `predict`.
_TRACE: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar("trace")


@contextlib.contextmanager
def request_trace(**start: Any) -> Iterator[dict[str, Any]]:
    """A fresh trace for one request, filled in by the pipeline as it answers."""
    trace = dict(start)
    token = _TRACE.set(trace)
    try:
        yield trace
    finally:
        _TRACE.reset(token)


DRAIN_S = 60.0  # a version no longer routed stays loaded this long for requests in flight
Redecode = Callable[[Signature], Frame]


@dataclass
class Loaded:
    """A version loaded in this process, or the reason it could not be."""

    record: VersionRecord
    runtime: Runtime | None = None
    error: str | None = None
    loaded_at: float = field(default_factory=time.time)

    @property
    def is_ready(self) -> bool:
        return self.runtime is not None


@dataclass
class Catalog:
    """Everything the request path reads, replaced whole on every refresh."""

    versions: dict[str, dict[int, VersionRecord]] = field(default_factory=dict)
    routes: dict[str, Route] = field(default_factory=dict)
    counter: int = -1


@dataclass(frozen=True)
class Target:
    """Where a request goes: a route (arms chosen per request) or a pinned version."""

    model: str
    record: VersionRecord  # decodes the body: the pinned version or the route's primary
    route: Route | None
    header_key: str | None
    signature: Signature


class Pipeline:
    """Serves every deployed model of a project."""

    def __init__(self, project: Project) -> None:
        self.project = project
        self.settings = project.settings
        self.catalog = Catalog()
        self.loaded: dict[tuple[str, int], Loaded] = {}
        self.breakers: dict[tuple[str, int], Breaker] = {}
        self.stats = StatsRecorder()
        self.request_metrics = metrics.RequestRecorder()
        metrics.WORKERS.set(1)  # this process serves (a live gauge: summed over workers)
        self._counted: dict[str, int] = {}  # totals already added to counters (deltas)
        self.rng = random.Random()
        self._load_lock = threading.Lock()
        self._refresh_lock = threading.Lock()
        self._checks: dict[tuple[str, int, float], ProfileChecks] = {}
        # Timed calls run here so a call past its timeout can be abandoned, not awaited.
        self._timed = ThreadPoolExecutor(max_workers=16, thread_name_prefix="pointsman-timed")
        self._shadow_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pointsman-shadow")
        # The periodic jobs' threads, one per job so none waits behind another. Cancelling a
        # task does not stop its thread: `close` waits for them before the store is closed.
        self._background = ThreadPoolExecutor(max_workers=6, thread_name_prefix="pointsman-bg")
        self.shadows: ShadowQueue | None = None
        self.canary = CanaryController(project.engine, project.routes, self.stats.worker)
        self.alerts = Evaluator(
            project.engine,
            project.routes,
            RuleBook(project.engine, self.settings.alerts),
            Dispatcher(project.engine, self.settings),
            self.stats.worker,
            interval_s=self.settings.alerts_interval_s,
            history_days=self.settings.alerts_history_days,
        )
        self.log = (
            PredictionLog(self.settings, project.engine) if self.settings.log_predictions else None
        )

    # -- lifecycle -------------------------------------------------------------------
    def start(self) -> None:
        """Read the catalog and load every routed version (blocking)."""
        self.refresh_now()

    async def run_background(self) -> None:
        """Forever: route changes, stats, shadows, canaries, the log shipper, drift, alerts."""
        self.shadows = ShadowQueue(self.settings.shadow_queue_size, self._run_shadow)
        tasks = [
            asyncio.create_task(self.shadows.drain_forever()),
            asyncio.create_task(self._every(self.settings.refresh_interval_s, self._poll_routes)),
            asyncio.create_task(self._every(1.0, self._stats_and_canary)),
            asyncio.create_task(self._every(self.settings.alerts_interval_s, self.alerts.tick)),
        ]
        if self.log is not None:
            ship = self.log.ship
            tasks.append(asyncio.create_task(self._every(self.settings.log_ship_interval_s, ship)))
            # Drift reads the log: checked every few seconds, run every drift_interval_s.
            drift = DriftMonitor(self.project, self.stats.worker)
            check_s = min(self.settings.drift_interval_s, 10.0)
            tick = lambda: drift.tick(time.monotonic())  # noqa: E731
            tasks.append(asyncio.create_task(self._every(check_s, tick)))
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()

    async def _every(self, interval_s: float, work: Callable[[], object]) -> None:
        """Run `work` in a thread on a fixed cadence: a slow run does not push the next back."""
        deadline = time.monotonic()
        while True:
            deadline += interval_s
            await asyncio.sleep(max(0.0, deadline - time.monotonic()))
            try:
                await asyncio.get_running_loop().run_in_executor(self._background, work)
            except Exception:  # the store may be down for a while: keep serving
                log.exception("background work failed; serving the routes already loaded")
            deadline = max(deadline, time.monotonic() - interval_s)  # no burst after a stall

    def _poll_routes(self) -> None:
        if read_change_counter(self.project.engine) != self.catalog.counter:
            self.refresh_now()

    def _stats_and_canary(self) -> None:
        self.stats.flush(self.project.engine)
        self.sample_metrics()
        if self.canary.tick():
            self.refresh_now()

    def sample_metrics(self) -> None:
        """Bring the sampled metrics up to date: process, breakers, spool, shadow drops."""
        metrics.sample_process()
        for (model, number), breaker in list(self.breakers.items()):
            metrics.BREAKER_OPEN.labels(model, str(number)).set(breaker.state != "closed")
        if self.log is not None:
            spool = self.log.spool
            metrics.SPOOL_BYTES.set(spool.used_bytes)
            metrics.SPOOL_BUDGET.set(spool.budget_bytes)
            self._add_delta("log_dropped", spool.dropped, metrics.LOG_DROPPED)
        if self.shadows is not None:
            self._add_delta("shadow_dropped", self.shadows.dropped, metrics.SHADOW_DROPPED)

    def _add_delta(self, name: str, total: int, counter: Any) -> None:
        before = self._counted.get(name, 0)
        if total > before:
            counter.inc(total - before)
            self._counted[name] = total

    def close(self) -> None:
        self._timed.shutdown(wait=False, cancel_futures=True)
        self._shadow_pool.shutdown(wait=False, cancel_futures=True)
        self._background.shutdown(wait=True, cancel_futures=True)  # no query left in flight
        self.alerts.close()
        if self.log is not None:
            self.log.close()  # ships what is spooled

    def refresh_now(self, load_routed: bool = True) -> None:
        """Reload versions and routes; a route whose versions fail to load is not taken."""
        with self._refresh_lock:  # the route poll and the canary tick may both refresh
            self._refresh(load_routed)

    def _refresh(self, load_routed: bool) -> None:
        counter = read_change_counter(self.project.engine)
        registry = self.project.registry
        versions = {
            name: {v.number: v for v in registry.list_versions(name)}
            for name in registry.model_names()
        }
        routes = self.project.routes.all_current()
        for model, route in list(routes.items()):
            if not load_routed:
                continue
            loads = [self._ensure_loaded(versions[model][n]) for n in route.versions]
            failed = [f"{x.record.number}: {x.error}" for x in loads if not x.is_ready]
            old = self.catalog.routes.get(model)
            if failed and old is not None and old.revision != route.revision:
                log.error(
                    "%s revision %s not taken, its versions failed to load (%s); revision %s "
                    "stays in force",
                    model, route.revision, "; ".join(failed), old.revision,
                )  # fmt: skip
                routes[model] = old
        self.catalog = Catalog(versions, routes, counter)
        self._unload_unrouted()
        for (model, number), loaded in list(self.loaded.items()):
            metrics.MODEL_LOADED.labels(model, str(number)).set(loaded.is_ready)

    def _unload_unrouted(self) -> None:
        routed = {(m, v) for m, r in self.catalog.routes.items() for v in r.versions}
        for key in list(self.loaded):
            if key not in routed and time.time() - self.loaded[key].loaded_at > DRAIN_S:
                self.loaded.pop(key, None)
                metrics.MODEL_LOADED.labels(key[0], str(key[1])).set(0)

    def _ensure_loaded(self, record: VersionRecord) -> Loaded:
        key = (record.model, record.number)
        with self._load_lock:
            found = self.loaded.get(key)
            if found is not None and (found.is_ready or time.time() - found.loaded_at < 10):
                if found.is_ready:
                    found.loaded_at = time.time()  # routed again: restart its drain clock
                return found
            loaded = self._load(record)
            self.loaded[key] = loaded
            return loaded

    def _load(self, record: VersionRecord) -> Loaded:
        try:
            runtime = load_and_warm(self.project.registry, record)
        except PointsmanError as exc:
            log.error("cannot load %s version %s: %s", record.model, record.number, exc)
            self._load_failed(record, exc.message)
            return Loaded(record, error=exc.message)
        except Exception as exc:
            log.exception("cannot load %s version %s", record.model, record.number)
            self._load_failed(record, f"{type(exc).__name__}: {exc}")
            return Loaded(record, error=f"{type(exc).__name__}: {exc}")
        log.info("loaded %s version %s (%s)", record.model, record.number, record.format)
        return Loaded(record, runtime)

    def _load_failed(self, record: VersionRecord, error: str) -> None:
        """Tell the alert evaluator (maybe in another process): a store event."""
        try:
            record_event(
                self.project.engine, "version_load_failed", record.model,
                f"version {record.number}: {error}",
            )  # fmt: skip
        except Exception:  # the store may be down: the log line above still says it
            log.warning("could not record the load failure of %s", record.model)

    # -- where a request goes ---------------------------------------------------------
    def model_names(self) -> list[str]:
        return sorted(self.catalog.versions)

    def deployed_models(self) -> list[str]:
        return sorted(self.catalog.routes)

    def route_of(self, model: str) -> Route:
        catalog = self.catalog
        route = catalog.routes.get(model)
        if route is None:
            if model not in catalog.versions:
                raise ModelNotFound(model, sorted(catalog.versions))
            raise NotDeployed(model, [str(n) for n in sorted(catalog.versions[model])])
        return route

    def record_of(self, model: str, version: int | str | None = None) -> VersionRecord:
        """The version that answers `model` (its route's primary, or the pinned one)."""
        catalog = self.catalog
        if version is None or version == "":
            number = self.route_of(model).primary
        else:
            if model not in catalog.versions:
                raise ModelNotFound(model, sorted(catalog.versions))
            try:
                number = int(version)
            except (TypeError, ValueError):
                number = -1
        record = catalog.versions.get(model, {}).get(number)
        if record is None:
            raise VersionNotFound(model, str(version), [str(n) for n in catalog.versions[model]])
        return record

    def target(
        self, model: str, version: int | str | None = None, header_key: str | None = None
    ) -> Target:
        """The route (or pinned version) of a request, and the signature to decode it with."""
        record = self.record_of(model, version)
        if version is not None and version != "":
            return Target(model, record, None, None, record.signature)
        route = self.catalog.routes[model]
        return Target(model, record, route, header_key, _with_key(record.signature, route))

    # -- the request path -----------------------------------------------------------
    async def runtime_of(self, record: VersionRecord) -> Runtime:
        """The loaded runtime of a version, loading a pinned unrouted one on first use."""
        loaded = self.loaded.get((record.model, record.number))
        if loaded is None:
            loaded = await anyio.to_thread.run_sync(self._ensure_loaded, record)
        if loaded.runtime is None:
            raise ModelNotReady(record.model, str(record.number), loaded.error or "not loaded")
        return loaded.runtime

    async def predict(
        self,
        target: Target | VersionRecord,
        frame: Frame,
        request_id: str | None = None,
        redecode: Redecode | None = None,
        client: str | None = None,
    ) -> Prediction:
        """Answer `frame` (see `_answer`) and spool its prediction record before returning."""
        if self.log is None:
            return await self._answer(target, frame, request_id, redecode, client)
        request_id = request_id or uuid.uuid4().hex
        trace = _TRACE.get(None)
        if trace is None:  # called outside an HTTP request (replay, tests)
            with request_trace():
                return await self.predict(target, frame, request_id, redecode, client)
        start = time.perf_counter()
        try:
            prediction = await self._answer(target, frame, request_id, redecode, client)
        except Exception as exc:
            record = target if isinstance(target, VersionRecord) else target.record
            route = None if isinstance(target, VersionRecord) else target.route
            self.log.failed(
                request_id=request_id, model=record.model,
                version=trace.get("version", record.number), frame=frame, error=exc,
                latency_s=time.perf_counter() - start, model_s=trace.get("model_s"),
                route_revision=route.revision if route else None, client=client,
            )  # fmt: skip
            raise
        self.log.answered(prediction, trace.get("frame", frame), trace.get("model_s"))
        return prediction

    async def _answer(
        self,
        target: Target | VersionRecord,
        frame: Frame,
        request_id: str | None = None,
        redecode: Redecode | None = None,
        client: str | None = None,
    ) -> Prediction:
        """Answer `frame`: choose the arm, run it, fall back if it fails, queue shadows."""
        request_id = request_id or uuid.uuid4().hex
        if isinstance(target, VersionRecord):
            target = Target(target.model, target, None, None, target.signature)
        start = time.perf_counter()
        trace = _TRACE.get(None)
        if trace is not None:
            trace.update(model=target.model, rows=frame.n_rows)
        if target.route is None:
            if trace is not None:
                trace.update(version=target.record.number, role="pinned")
            in_force = self.catalog.routes.get(target.model)
            rules = in_force.policy.validation if in_force else ValidationPolicy()
            findings = self._validate(target.record, frame, rules, None)
            outputs = await self._run_or_raise(target.record, frame, None, request_id)
            elapsed = time.perf_counter() - start
            return Prediction(
                target.model, target.record.number, request_id, outputs, elapsed,
                findings=findings, client=client,
            )  # fmt: skip
        route = target.route
        policy = route.policy
        key = target.header_key
        if key is None and policy.key and frame.extras.get(policy.key):
            key = str(frame.extras[policy.key][0])
        number = choose_arm(target.model, policy.arms, key, self.rng)
        record = self.catalog.versions[target.model][number]
        if trace is not None:
            trace.update(version=number, role="primary")
        frame = _frame_for(record, target, frame, redecode, route)
        findings = self._validate(record, frame, policy.validation, route)
        attempted, failure = await self._attempt(record, frame, route, request_id)
        answered, extra = number, dict[str, Any]()
        if attempted is not None:
            outputs = attempted
        else:
            fallback = self._fallback(record, route, failure, request_id)
            if trace is not None:
                trace.update(version=fallback.number, role="fallback")
            frame = _frame_for(fallback, target, frame, redecode, route)
            cell = self.stats.cell(target.model, route.revision, fallback.number, "fallback")
            t0 = time.perf_counter()
            try:
                outputs = await self._run_or_raise(fallback, frame, None, request_id)
            finally:
                cell.requests += 1
                cell.observe(time.perf_counter() - t0)
            answered = fallback.number
            extra = {"fallback": {"from_version": number, "reason": failure}}
        self._queue_shadows(target.model, route, frame, outputs, request_id)
        elapsed = time.perf_counter() - start
        return Prediction(
            target.model, answered, request_id, outputs, elapsed, extra=extra,
            route_revision=route.revision, role="fallback" if extra else "primary",
            findings=findings, client=client,
        )  # fmt: skip

    def _validate(
        self, record: VersionRecord, frame: Frame, rules: ValidationPolicy, route: Route | None
    ) -> list[dict[str, Any]]:
        """The findings the policy flags (JSON); raises InputRejected for those it refuses."""
        findings = frame.findings
        if rules.checks_profile:
            key = (record.model, record.number, rules.tolerance)
            checks = self._checks.get(key)
            if checks is None:
                checks = ProfileChecks.build(record.signature, record.profile, rules.tolerance)
                self._checks[key] = checks
            found = checks.check(frame)
            findings = findings + found if findings else found
        if not findings:
            return []
        refused, flagged = rules.judge(findings)
        _count_findings(record, refused, "reject")
        _count_findings(record, flagged, "flag")
        if route is not None and (refused or flagged):
            cell = self.stats.cell(record.model, route.revision, record.number, "primary")
            cell.invalid += 1
            cell.requests += bool(refused)  # a refused request never reaches _attempt
        if refused:
            raise InputRejected(record.model, refused)
        return [f.to_json() for f in flagged]

    async def _attempt(
        self, record: VersionRecord, frame: Frame, route: Route, request_id: str
    ) -> tuple[Outputs | None, str]:
        """Run the chosen arm; on failure return why (the caller decides on a fallback)."""
        policy = route.policy
        key = (record.model, record.number)
        breaker = self.breakers.get(key) or self.breakers.setdefault(key, Breaker())
        cell = self.stats.cell(record.model, route.revision, record.number, "primary")
        cell.requests += 1
        now = time.monotonic()
        if not breaker.allow(now, policy.breaker_pause_s):
            cell.fallbacks += 1
            _count_fallback(record, route, "circuit_open")
            return None, "circuit open"
        start = time.perf_counter()
        try:
            outputs = await self._run(record, frame, policy.timeout_ms)
        except TimeoutError:
            cell.timeouts += 1
            cell.errors += 1
            failure, reason = f"timed out after {policy.timeout_ms} ms", "timeout"
        except ModelNotReady as exc:
            cell.errors += 1
            failure, reason = f"not ready: {exc.message}", "not_ready"
        except Exception as exc:
            cell.errors += 1
            log.exception("model %s version %s failed on request %s", *key, request_id)
            failure, reason = f"raised {type(exc).__name__}", "error"
        else:
            cell.observe(time.perf_counter() - start)
            breaker.success()
            return outputs, ""
        cell.observe(time.perf_counter() - start)
        breaker.failure(time.monotonic(), policy.breaker_failures)
        cell.fallbacks += route.policy.fallback is not None
        _count_fallback(record, route, reason)
        return None, failure

    def _fallback(
        self, record: VersionRecord, route: Route, failure: str, request_id: str
    ) -> VersionRecord:
        """The fallback version, or the error the caller gets when there is none."""
        fallback = route.policy.fallback
        if fallback is None or fallback == record.number:
            number = str(record.number)
            if failure.startswith("timed out"):
                timeout_ms = route.policy.timeout_ms or 0
                raise ModelTimeout(record.model, number, timeout_ms, request_id)
            if failure.startswith("raised"):
                raise ModelFailed(record.model, number, request_id, failure.split(" ", 1)[1])
            raise ModelNotReady(record.model, number, failure)
        return self.catalog.versions[record.model][fallback]

    async def _run(self, record: VersionRecord, frame: Frame, timeout_ms: int | None) -> Outputs:
        trace = _TRACE.get(None)
        if trace is None:
            return await self._run_timed(record, frame, timeout_ms)
        trace.update(version=record.number, frame=frame)  # for the prediction record
        start = time.perf_counter()
        try:
            return await self._run_timed(record, frame, timeout_ms)
        finally:
            trace["model_s"] = time.perf_counter() - start

    async def _run_timed(
        self, record: VersionRecord, frame: Frame, timeout_ms: int | None
    ) -> Outputs:
        runtime = await self.runtime_of(record)
        if timeout_ms is not None:
            future = asyncio.get_running_loop().run_in_executor(self._timed, runtime.predict, frame)
            return await asyncio.wait_for(future, timeout_ms / 1000)
        if frame.n_rows <= self.settings.inline_max_rows:
            return runtime.predict(frame)
        return await anyio.to_thread.run_sync(runtime.predict, frame)

    async def _run_or_raise(
        self, record: VersionRecord, frame: Frame, timeout_ms: int | None, request_id: str
    ) -> Outputs:
        """Run a version; the model raising becomes ModelFailed (traceback to the log only)."""
        try:
            return await self._run(record, frame, timeout_ms)
        except PointsmanError:
            raise
        except Exception as exc:
            log.exception(
                "model %s version %s failed on request %s", record.model, record.number, request_id
            )
            raise ModelFailed(
                record.model, str(record.number), request_id, type(exc).__name__
            ) from exc

    # -- shadows ----------------------------------------------------------------------
    def _queue_shadows(
        self, model: str, route: Route, frame: Frame, outputs: Outputs, request_id: str
    ) -> None:
        if not route.policy.shadows or self.shadows is None:
            return
        for shadow in route.policy.shadows:
            if shadow.sample >= 1 or self.rng.random() < shadow.sample:
                trace = _TRACE.get(None)
                protocol = trace.get("protocol", "") if trace is not None else ""
                job = ShadowJob(
                    model, route.revision, shadow.version, frame, outputs, request_id, protocol
                )
                self.shadows.offer(job)  # a full queue drops the copy and counts it

    async def _run_shadow(self, job: ShadowJob) -> None:
        record = self.catalog.versions[job.model][job.version]
        cell = self.stats.cell(job.model, job.revision, job.version, "shadow")
        cell.requests += 1
        start = time.perf_counter()
        frame, outputs, failure = job.frame, None, None
        try:
            runtime = await self.runtime_of(record)
            if record.signature.names != list(frame.columns):
                present = {
                    c: frame.columns[c] for c in record.signature.names if c in frame.columns
                }
                frame = build_frame(record.signature, present, frame.n_rows)
            loop = asyncio.get_running_loop()
            outputs = await loop.run_in_executor(self._shadow_pool, runtime.predict, frame)
        except Exception as exc:
            cell.errors += 1
            failure = exc
            raise
        finally:
            elapsed = time.perf_counter() - start
            cell.observe(elapsed)
            self.request_metrics.answered(
                job.model, str(job.version), "shadow", job.protocol, 500 if failure else 200,
                elapsed, elapsed, frame.n_rows,
            )  # fmt: skip
            if self.log is not None:
                self.log.shadowed(
                    request_id=job.request_id, model=job.model, version=job.version,
                    revision=job.revision, frame=frame, outputs=outputs,
                    latency_s=time.perf_counter() - start, error=failure,
                )  # fmt: skip
        compared, agreed = cell.compared, cell.agreed
        compare(job.primary, outputs, cell)
        version = str(job.version)
        metrics.SHADOW_COMPARED.labels(job.model, version).inc(cell.compared - compared)
        metrics.SHADOW_AGREED.labels(job.model, version).inc(cell.agreed - agreed)

    # -- health ---------------------------------------------------------------------
    def readiness(self) -> dict[str, Any]:
        """Every routed version and whether it is loaded and answered its example."""
        report: dict[str, Any] = {}
        ready = True
        for model, route in self.catalog.routes.items():
            for number in route.versions:
                loaded = self.loaded.get((model, number))
                ok = loaded is not None and loaded.is_ready
                ready &= ok
                report[f"{model}:{number}"] = (
                    "ready" if ok else (loaded.error if loaded and loaded.error else "not loaded")
                )
        return {"ready": ready, "versions": report}

    def is_version_ready(self, record: VersionRecord) -> bool:
        loaded = self.loaded.get((record.model, record.number))
        return loaded is not None and loaded.is_ready


def _count_findings(record: VersionRecord, findings: list[Any], action: str) -> None:
    if not findings:
        return
    names = record.signature.names
    counts: dict[tuple[str, str], int] = {}
    for f in findings:
        feature = f.feature if f.feature in names or f.feature == ROW_FEATURE else "(other)"
        counts[feature, f.rule] = counts.get((feature, f.rule), 0) + 1
    version = str(record.number)
    for (feature, rule), n in counts.items():
        metrics.FINDINGS.labels(record.model, version, feature, rule, action).inc(n)


def _count_fallback(record: VersionRecord, route: Route, reason: str) -> None:
    if route.policy.fallback is not None:
        metrics.FALLBACKS.labels(record.model, str(record.number), reason).inc()


def _with_key(signature: Signature, route: Route) -> Signature:
    key = route.policy.key
    if key is None or key in signature.names:
        return signature
    return replace(signature, passthrough=(key,))


def _frame_for(
    record: VersionRecord,
    target: Target,
    frame: Frame,
    redecode: Redecode | None,
    route: Route,
) -> Frame:
    """The frame for `record`: the decoded one, or the body decoded again with its signature."""
    if record.signature.inputs == target.record.signature.inputs:
        return frame
    if redecode is None:
        present = {c: frame.columns[c] for c in record.signature.names if c in frame.columns}
        return build_frame(record.signature, present, frame.n_rows)
    return redecode(_with_key(record.signature, route))
