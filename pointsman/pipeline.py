"""The path of one request, from a decoded payload to a Prediction; knows nothing of HTTP.

DESIGN's sequence, step by step: decide the arm, decode its frame, validate, attempt the
arm (a failure is a value, `ArmFailure`), fall back if it failed, queue shadows, answer.
What happened is noted on the caller's `Outcome`, which the prediction log and the
metrics read. Routes and versions come from the `Catalog`; nothing here touches the store.
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from dataclasses import dataclass
from typing import Any

from pointsman.catalog import Catalog, Target, with_key
from pointsman.errors import (
    BadRequest,
    InputNotComputable,
    InputRejected,
    InvalidInput,
    ModelFailed,
    ModelNotReady,
    ModelTimeout,
    PointsmanError,
    QueueFull,
    RunnerFailed,
    RunnerTimeout,
)
from pointsman.logstore import PredictionLog
from pointsman.logstore.writer import ShippingOf
from pointsman.monitoring import logs, metrics
from pointsman.protocols.base import Payload, reframe
from pointsman.registry import VersionRecord
from pointsman.routing import Route
from pointsman.routing.assign import choose_arm
from pointsman.routing.breaker import Breaker
from pointsman.routing.shadow import ShadowJob, ShadowQueue, compare
from pointsman.routing.stats import StatsRecorder
from pointsman.runners import RunnerSpec
from pointsman.runners.client import RunnerFault
from pointsman.settings import Settings
from pointsman.types import FailureReason, Fallback, Frame, Outcome, Outputs, Prediction, Role
from pointsman.validation.faults import InputFaults
from pointsman.validation.policy import ROW_FEATURE, ValidationPolicy

log = logging.getLogger("pointsman.pipeline")


@dataclass(frozen=True)
class ArmFailure:
    """Why a routed arm gave no answer; the fallback takes over, or `to_error` is raised."""

    reason: FailureReason
    detail: str  # for people, e.g. "timed out after 200 ms", "raised ValueError"
    cause: str = ""  # the exception's type name (error), why not ready, the limit hit
    limit_s: float | None = None  # the runner's time limit, when that is what was hit
    non_finite: bool = False  # it raised, and computes infinity or NaN from this input

    @classmethod
    def of(cls, exc: Exception, timeout_ms: int | None, spec: RunnerSpec) -> ArmFailure:
        if isinstance(exc, ModelNotReady):
            return cls("not_ready", f"not ready: {exc.reason}", exc.reason)
        if not isinstance(exc, RunnerFault):
            return cls("error", f"raised {type(exc).__name__}", type(exc).__name__)
        code = exc.code
        if code == "timeout":
            if timeout_ms is not None and timeout_ms / 1000 <= spec.timeout_s:
                return cls("timeout", f"timed out after {timeout_ms} ms")
            limit = spec.timeout_s
            return cls("timeout", f"ran past its runner time limit of {limit:g} s", "", limit)
        if code in ("model_error", "non_finite"):
            kind = exc.kind or "an error"
            return cls("error", f"raised {kind}", kind, non_finite=code == "non_finite")
        if code in ("memory", "disk"):
            return cls("limit", exc.message, exc.message)
        if code == "crashed":
            return cls("crashed", "its runner crashed", "crashed")
        return cls("not_ready", f"not ready: {exc.message}", exc.message)

    @property
    def error_kind(self) -> str | None:
        """What the model raised, when it raised (not a timeout, a limit, a crash)."""
        return (self.cause or "an error") if self.reason == "error" else None

    def to_error(
        self, version: VersionRecord, request_id: str, timeout_ms: int | None
    ) -> Exception:
        """The error the caller gets when no fallback can answer."""
        model, number = version.model, str(version.number)
        if self.reason == "timeout" and self.limit_s is not None:
            return RunnerTimeout(model, number, self.limit_s, request_id)
        if self.reason == "timeout":
            return ModelTimeout(model, number, timeout_ms or 0, request_id)
        if self.reason == "error":
            return ModelFailed(model, number, request_id, self.cause)
        if self.reason in ("crashed", "limit"):
            return RunnerFailed(model, number, self.cause, request_id)
        return ModelNotReady(model, number, self.cause or self.detail)


class Pipeline:
    """Answers requests for every model the catalog routes."""

    def __init__(
        self,
        catalog: Catalog,
        stats: StatsRecorder,
        log: PredictionLog | None,
        shadows: ShadowQueue | None,
        settings: Settings,
    ) -> None:
        self.catalog = catalog
        self.stats = stats
        self.log = log
        self.shadows = shadows
        self.settings = settings
        self.request_metrics = metrics.RequestRecorder(settings.metrics_max_clients)
        self.breakers: dict[tuple[str, int], Breaker] = {}
        self.rng = random.Random()
        self.faults = InputFaults()
        self.shadow_runs = ShadowRuns(catalog, stats, log, self.request_metrics, self.faults)
        self.run_shadow = self.shadow_runs.run

    def close(self) -> None:
        """Close the log's spool, for the shipping to take whole (after the worker stopped)."""
        if self.log is not None:
            self.log.close()

    async def predict(
        self,
        target: Target,
        payload: Payload,
        outcome: Outcome,
        *,
        request_id: str | None = None,
        client: str | None = None,
    ) -> Prediction:
        """Answer `payload` and spool its prediction record (answer or error) before returning."""
        outcome.request_id = request_id or uuid.uuid4().hex
        outcome.client = client
        outcome.model = target.model
        logs.bind(request_id=outcome.request_id, model=target.model)
        start = time.perf_counter()
        try:
            prediction = await self._answer(target, payload, outcome)
        except Exception as exc:
            outcome.latency_s = time.perf_counter() - start
            if self.log is not None and outcome.frame is not None and outcome.version is not None:
                self.log.failed(outcome, exc)
            raise
        outcome.latency_s = prediction.latency_s = time.perf_counter() - start
        if self.log is not None:
            self.log.answered(prediction, outcome)
        return prediction

    async def _answer(self, target: Target, payload: Payload, outcome: Outcome) -> Prediction:
        """Decide, frame, validate, attempt, fall back if it failed, queue shadows."""
        outcome.frame = payload.frame_for(target.signature)
        outcome.rows = outcome.frame.n_rows
        route = target.route
        if route is None:
            return await self._answer_pinned(target, outcome.frame, outcome)
        version = self._decide(target, route, outcome.frame)
        frame = self._frame(payload, version, route, outcome, "primary")
        findings, invalid = self._validate(version, frame, route.policy.validation, route)
        ran = await self._attempt(version, frame, route, outcome, invalid)
        fallback = None
        if isinstance(ran, ArmFailure):
            fallback = Fallback(version.number, ran.reason, ran.detail)
            version = self._fallback_of(version, ran, route, outcome.request_id)
            frame = self._frame(payload, version, route, outcome, "fallback")
            ran = await self._run_fallback(version, frame, route, outcome)
        self._queue_shadows(route, frame, ran, outcome)
        return Prediction(
            target.model, version.number, outcome.request_id, ran, 0.0, route.revision,
            fallback, findings, outcome.client,
        )  # fmt: skip

    async def _answer_pinned(self, target: Target, frame: Frame, outcome: Outcome) -> Prediction:
        """A version the caller chose: validated under the route's policy, no fallback."""
        version = target.version
        outcome.version, outcome.role = version.number, "pinned"
        logs.bind(version=version.number)
        await self.catalog.wait_warm(version, self.catalog.spec_of(version).load_timeout_s)
        in_force = self.catalog.snapshot.routes.get(target.model)
        rules = in_force.policy.validation if in_force else ValidationPolicy()
        findings, flagged = self._validate(version, frame, rules, None)
        outputs = await self._run_or_raise(version, frame, outcome, rules, flagged)
        return Prediction(
            target.model, version.number, outcome.request_id, outputs, findings=findings,
            client=outcome.client,
        )  # fmt: skip

    def _decide(self, target: Target, route: Route, frame: Frame) -> VersionRecord:
        """The arm: by the sticky key (header, else the payload's key field), else at random."""
        key = target.header_key
        field = route.policy.key
        if key is None and field and frame.extras.get(field):
            key = str(frame.extras[field][0])
        number = choose_arm(target.model, route.policy.arms, key, self.rng)
        return self.catalog.snapshot.versions[target.model][number]

    def _frame(
        self, payload: Payload, version: VersionRecord, route: Route, outcome: Outcome, role: Role
    ) -> Frame:
        """The payload decoded for `version` (the same frame when its inputs are the same)."""
        outcome.version, outcome.role, outcome.route_revision = version.number, role, route.revision
        logs.bind(version=version.number)
        try:
            outcome.frame = payload.frame_for(with_key(version.signature, route))
        except (InvalidInput, BadRequest):
            # Its signature refuses what the primary's took: counted, so its gates see it.
            self._book(version, route, role, invalid=True)
            raise
        return outcome.frame

    def _validate(
        self, version: VersionRecord, frame: Frame, rules: ValidationPolicy, route: Route | None
    ) -> tuple[list[dict[str, Any]], bool]:
        """The findings the policy flags (JSON) and whether any; InputRejected for refusals."""
        findings = frame.findings
        if rules.checks_profile:
            found = self.faults.checks_of(version, rules.tolerance).check(frame)
            findings = findings + found if findings else found
        if not findings:
            return [], False
        refused, flagged = rules.judge(findings)
        _count_findings(version, refused, "reject")
        _count_findings(version, flagged, "flag")
        if refused:
            if route is not None:
                self._book(version, route, "primary", invalid=True)
            raise InputRejected(version.model, refused)
        return [f.to_json() for f in flagged], bool(flagged)

    async def _attempt(
        self, version: VersionRecord, frame: Frame, route: Route, outcome: Outcome, invalid: bool
    ) -> Outputs | ArmFailure:
        """Run the chosen arm under the route's timeout and the version's breaker."""
        policy = route.policy
        key = (version.model, version.number)
        breaker = self.breakers.get(key) or self.breakers.setdefault(key, Breaker())
        can_fall_back = policy.fallback is not None and policy.fallback != version.number
        if not breaker.allow(time.monotonic(), policy.breaker_pause_s):
            self._book(version, route, "primary", invalid=invalid, fell_back=can_fall_back)
            last = f" (last failure: {breaker.last_failure})" if breaker.last_failure else ""
            return self._failed(version, route, ArmFailure("circuit_open", f"circuit open{last}"))
        start = time.perf_counter()
        try:
            outputs = await self._run(version, frame, policy.timeout_ms, outcome, flagged=invalid)
        except QueueFull:
            self._book(version, route, "primary", invalid=invalid, queue_full=True)
            raise  # load shedding: neither the fallback's load nor the breaker's business
        except Exception as exc:
            latency_s = time.perf_counter() - start
            return self._arm_error(exc, version, frame, route, outcome, breaker, latency_s, invalid)
        breaker.success()
        self._book(
            version, route, "primary", latency_s=time.perf_counter() - start, invalid=invalid
        )
        return outputs

    def _arm_error(
        self, exc: Exception, version: VersionRecord, frame: Frame, route: Route,
        outcome: Outcome, breaker: Breaker, latency_s: float, invalid: bool,
    ) -> ArmFailure:  # fmt: skip
        """Book a failed arm run: the version's failure, or (raised) the caller's input's."""
        policy = route.policy
        failure = self._arm_failed(exc, version, policy.timeout_ms, outcome)
        rid, rules = outcome.request_id, policy.validation
        fault = self.faults.of(version, frame, rules, failure.error_kind, rid, failure.non_finite)
        if fault is not None:  # the caller's input: not the version's error, nor the breaker's
            breaker.release()
            self._book(version, route, "primary", invalid=True)  # nor its latency
            raise fault from None
        breaker.failure(time.monotonic(), policy.breaker_failures, failure.detail)
        can_fall_back = policy.fallback is not None and policy.fallback != version.number
        self._book(
            version, route, "primary", latency_s=latency_s, failed=True,
            timed_out=failure.reason == "timeout", invalid=invalid, fell_back=can_fall_back,
        )  # fmt: skip
        return self._failed(version, route, failure)

    def _arm_failed(
        self, exc: Exception, version: VersionRecord, timeout_ms: int | None, outcome: Outcome
    ) -> ArmFailure:
        """The failure as a value; an unexpected exception is logged with its traceback."""
        failure = ArmFailure.of(exc, timeout_ms, self.catalog.spec_of(version))
        if failure.reason == "error" and not isinstance(exc, RunnerFault):
            log.exception("model %s version %s failed on request %s",
                          version.model, version.number, outcome.request_id)  # fmt: skip
        return failure

    def _failed(self, version: VersionRecord, route: Route, failure: ArmFailure) -> ArmFailure:
        if route.policy.fallback is not None:
            metrics.FALLBACKS.labels(version.model, str(version.number), failure.reason).inc()
        return failure

    def _fallback_of(
        self, failed: VersionRecord, failure: ArmFailure, route: Route, request_id: str
    ) -> VersionRecord:
        """The route's fallback version, or the failure as the caller's error if none."""
        number = route.policy.fallback
        if number is None or number == failed.number:
            raise failure.to_error(failed, request_id, route.policy.timeout_ms)
        return self.catalog.snapshot.versions[failed.model][number]

    async def _run_fallback(
        self, version: VersionRecord, frame: Frame, route: Route, outcome: Outcome
    ) -> Outputs:
        start, what = time.perf_counter(), {"failed": True}
        try:
            outputs = await self._run_or_raise(version, frame, outcome, route.policy.validation)
            what = {}
            return outputs
        except InputNotComputable:
            what = {"invalid": True}
            raise
        finally:
            latency_s = time.perf_counter() - start
            self._book(version, route, "fallback", latency_s=latency_s, **what)

    def _book(self, version: VersionRecord, route: Route, role: str, **what: Any) -> None:
        self.stats.book(version.model, route.revision, version.number, role, **what)

    # -- running a version ----------------------------------------------------------
    async def _run(
        self, version: VersionRecord, frame: Frame, timeout_ms: int | None, outcome: Outcome,
        *, flagged: bool = False,
    ) -> Outputs:  # fmt: skip
        """Run `version` on `frame`, noting the model time on the outcome; `flagged` rows (with
        findings) are the suspects should the runner's batch fail."""
        start = time.perf_counter()
        try:
            return await self._call(version, frame, timeout_ms, flagged)
        finally:
            outcome.model_s = time.perf_counter() - start

    async def _call(
        self, version: VersionRecord, frame: Frame, timeout_ms: int | None, flagged: bool
    ) -> Outputs:
        """The version's runners' answer, within the route's timeout and the runner's limit."""
        spec = self.catalog.spec_of(version)
        wait_s = spec.timeout_s if timeout_ms is None else min(timeout_ms / 1000, spec.timeout_s)
        pool = await self.catalog.pool_of(version)
        try:
            return metrics.by_runtime(version, await pool.predict(frame, wait_s, flagged))
        except RunnerFault as fault:
            if fault.code == "not_ready":
                raise ModelNotReady(
                    version.model, str(version.number), self.catalog.why_not_ready(version)
                ) from None
            if fault.code != "queue_full":
                raise
            metrics.QUEUE_FULL.labels(version.model, str(version.number)).inc()
            raise QueueFull(version.model, str(version.number), spec.queue, 1.0) from None

    async def _run_or_raise(
        self, version: VersionRecord, frame: Frame, outcome: Outcome, rules: ValidationPolicy,
        flagged: bool = False,
    ) -> Outputs:  # fmt: skip
        """Run a version outside any route's timeout (pinned, fallback); errors for callers."""
        try:
            return await self._run(version, frame, None, outcome, flagged=flagged)
        except PointsmanError:
            raise
        except Exception as exc:
            failure = self._arm_failed(exc, version, None, outcome)
            fault = self.faults.of(
                version, frame, rules, failure.error_kind, outcome.request_id, failure.non_finite
            )
            if fault is not None:
                raise fault from None
            raise failure.to_error(version, outcome.request_id, None) from exc

    # -- shadows ----------------------------------------------------------------------
    def _queue_shadows(
        self, route: Route, frame: Frame, outputs: Outputs, outcome: Outcome
    ) -> None:
        if not route.policy.shadows or self.shadows is None:
            return
        for shadow in route.policy.shadows:
            if shadow.sample >= 1 or self.rng.random() < shadow.sample:
                job = ShadowJob(
                    route.model, route.revision, shadow.version, frame, outputs,
                    outcome.request_id, outcome.protocol, route.policy.agreement,
                )  # fmt: skip
                self.shadows.offer(job)  # a full queue drops the copy and counts it


class ShadowRuns:
    """Runs the shadow copies of answered requests, records them, compares them."""

    def __init__(
        self,
        catalog: Catalog,
        stats: StatsRecorder,
        log: PredictionLog | None,
        request_metrics: metrics.RequestRecorder,
        faults: InputFaults,
    ) -> None:
        self.catalog = catalog
        self.stats = stats
        self.log = log
        self.request_metrics = request_metrics
        self.faults = faults

    async def run(self, job: ShadowJob) -> None:
        """Run one shadow copy (after the answer), record it and compare it with the primary."""
        version = self.catalog.snapshot.versions[job.model][job.version]
        start = time.perf_counter()
        frame, outputs, failure = job.frame, None, None
        fault: InputNotComputable | None = None
        try:
            frame = reframe(frame, version.signature)
            spec, pool = self.catalog.spec_of(version), await self.catalog.pool_of(version)
            outputs = metrics.by_runtime(version, await pool.predict(frame, spec.timeout_s))
        except Exception as exc:
            failure = exc
            fault = self._fault(exc, version, frame, job)
            raise
        finally:
            elapsed = time.perf_counter() - start
            self.stats.book(job.model, job.revision, job.version, "shadow", latency_s=elapsed,
                            failed=failure is not None and fault is None,
                            invalid=fault is not None)  # fmt: skip
            self._record(job, frame, outputs, elapsed, fault or failure)
        cell = self.stats.cell(job.model, job.revision, job.version, "shadow")
        compared, agreed = cell.compared, cell.agreed
        compare(job.primary, outputs, cell, job.agreement)
        number = str(job.version)
        metrics.SHADOW_COMPARED.labels(job.model, number).inc(cell.compared - compared)
        metrics.SHADOW_AGREED.labels(job.model, number).inc(cell.agreed - agreed)

    def _fault(
        self, exc: Exception, version: VersionRecord, frame: Frame, job: ShadowJob
    ) -> InputNotComputable | None:
        """The shadow's failure as the input's fault (not counted as its error), if it is."""
        failure = ArmFailure.of(exc, None, self.catalog.spec_of(version))
        route = self.catalog.snapshot.routes.get(job.model)
        rules = route.policy.validation if route is not None else ValidationPolicy()
        return self.faults.of(
            version, frame, rules, failure.error_kind, job.request_id, failure.non_finite
        )

    def _record(
        self,
        job: ShadowJob,
        frame: Frame,
        outputs: Outputs | None,
        elapsed: float,
        failure: Exception | None,
    ) -> None:
        self.request_metrics.answered(
            job.model, str(job.version), "shadow", job.protocol,
            200 if failure is None else _status_of(failure),
            elapsed, elapsed, frame.n_rows,
        )  # fmt: skip
        if self.log is not None:
            self.log.shadowed(
                request_id=job.request_id, model=job.model, version=job.version,
                revision=job.revision, frame=frame, outputs=outputs, latency_s=elapsed,
                error=failure,
            )  # fmt: skip


def build_pipeline(
    catalog: Catalog, settings: Settings, log_shipping: ShippingOf = "own"
) -> Pipeline:
    """A pipeline with its stats, its prediction log (if on; shipped by `log_shipping`, see
    PredictionLog) and its shadow queue."""
    log = None
    if settings.log_predictions:
        log = PredictionLog(settings, catalog.project.engine, log_shipping)
    shadows = ShadowQueue(settings.shadow_queue_size)
    return Pipeline(catalog, StatsRecorder(), log, shadows, settings)


def _status_of(failure: Exception) -> int:
    return int(failure.status) if isinstance(failure, PointsmanError) else 500


def _count_findings(version: VersionRecord, findings: list[Any], action: str) -> None:
    if not findings:
        return
    names = version.signature.names
    counts: dict[tuple[str, str], int] = {}
    for f in findings:
        feature = f.feature if f.feature in names or f.feature == ROW_FEATURE else "(other)"
        counts[feature, f.rule] = counts.get((feature, f.rule), 0) + 1
    number = str(version.number)
    for (feature, rule), n in counts.items():
        metrics.FINDINGS.labels(version.model, number, feature, rule, action).inc(n)
