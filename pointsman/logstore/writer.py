"""What the pipeline calls: a worker's prediction log (redact, spool, ship, prune)."""

from __future__ import annotations

import contextlib
import logging
import time
from datetime import timedelta
from typing import Any

from sqlalchemy.engine import Engine

from pointsman.errors import PointsmanError
from pointsman.logstore.query import prune_predictions
from pointsman.logstore.record import build_record, columns_of
from pointsman.logstore.redact import Redactor
from pointsman.logstore.shipper import Shipper
from pointsman.logstore.sink import CloudEventsSink
from pointsman.logstore.spool import Spool
from pointsman.logstore.usage import UsageReporter
from pointsman.settings import Settings
from pointsman.types import Frame, Outcome, Outputs, Prediction

log = logging.getLogger("pointsman.logstore")

DAY_S = 86400.0


class PredictionLog:
    """One worker's prediction log: records spooled on the request path, shipped in the back."""

    def __init__(self, settings: Settings, engine: Engine) -> None:
        self.settings = settings
        self.engine = engine
        self.redactor = Redactor(settings.log_redact, settings.log_hash_salt)
        self.spool = Spool(
            settings.project_path() / settings.log_spool_dir,
            segment_bytes=settings.log_segment_bytes,
            budget_bytes=settings.log_spool_budget_bytes,
            refuse_when_full=settings.log_spool_full_policy == "refuse",
            fsync=settings.log_fsync,
        )
        self.sink: CloudEventsSink | None = None
        if settings.log_sink_url:
            self.sink = CloudEventsSink(
                settings.log_sink_url,
                settings.log_sink_source,
                queue_size=settings.log_sink_queue_size,
                retries=settings.log_sink_retries,
            )
        self.shipper = Shipper(self.spool, engine, self.sink.offer if self.sink else None)
        self.usage = UsageReporter(self.spool, engine)
        self._last_prune = 0.0

    def inputs_of(self, model: str, frame: Frame) -> dict[str, list[Any]]:
        return self.redactor.apply(model, columns_of(frame))

    def answered(self, prediction: Prediction, outcome: Outcome) -> None:
        """Spool the record of an answer (raises SpoolFull under the refuse policy)."""
        frame = outcome.frame
        if frame is None:  # the pipeline always sets it before answering
            raise ValueError("an answered request's outcome carries the frame it ran")
        fallback = prediction.fallback
        self.spool.append(
            build_record(
                request_id=prediction.request_id,
                role=prediction.role,
                model=prediction.model,
                version=prediction.version,
                frame=frame,
                inputs=self.inputs_of(prediction.model, frame),
                outputs=prediction.outputs,
                latency_s=prediction.latency_s,
                model_s=outcome.model_s,
                route_revision=prediction.route_revision,
                client=prediction.client,
                findings=self.redactor.apply_findings(prediction.model, prediction.findings),
                extra=self._extra(
                    prediction.model, {"fallback": fallback.to_json()} if fallback else None
                ),
            )
        )

    def failed(self, outcome: Outcome, error: BaseException) -> None:
        """Spool the record of a request that ended in an error, under the role it had."""
        model, frame = outcome.model, outcome.frame
        if frame is None or outcome.version is None:
            raise ValueError("a failed request's outcome names the version and frame it reached")
        code = error.code if isinstance(error, PointsmanError) else "internal_error"
        message = error.message if isinstance(error, PointsmanError) else type(error).__name__
        findings = getattr(error, "findings", None)
        if findings and model in self.redactor.rules:
            # The message quotes the refused values; the redacted findings say the same.
            message = "input refused (message withheld: this model's inputs are redacted)"
        self.spool.append(
            build_record(
                request_id=outcome.request_id,
                role=outcome.role or "primary",
                model=model,
                version=outcome.version,
                frame=frame,
                inputs=self.inputs_of(model, frame),
                outputs=None,
                latency_s=outcome.latency_s or 0.0,
                model_s=outcome.model_s,
                route_revision=outcome.route_revision,
                client=outcome.client,
                findings=self.redactor.apply_findings(
                    model, [f.to_json() for f in findings] if findings else None
                ),
                error_code=code,
                error=message,
                extra=self._extra(model, None),
            )
        )

    def _extra(self, model: str, extra: dict[str, Any] | None) -> dict[str, Any] | None:
        """`extra`, plus the fields redaction changed: a re-run cannot use those inputs."""
        changed = self.redactor.changed_fields(model)
        if not changed:
            return extra
        return {**(extra or {}), "redacted": changed}

    def shadowed(
        self,
        *,
        request_id: str,
        model: str,
        version: int,
        revision: int,
        frame: Frame,
        outputs: Outputs | None,
        latency_s: float,
        error: BaseException | None,
    ) -> None:
        """Spool a shadow's record (same request id as its primary); never raises."""
        # A full spool under the refuse policy refuses requests, not shadows.
        with contextlib.suppress(PointsmanError):
            self.spool.append(
                build_record(
                    request_id=request_id,
                    role="shadow",
                    model=model,
                    version=version,
                    frame=frame,
                    inputs=self.inputs_of(model, frame),
                    outputs=outputs,
                    latency_s=latency_s,
                    model_s=latency_s,
                    route_revision=revision,
                    error_code=None if error is None else "shadow_failed",
                    error=None if error is None else type(error).__name__,
                    extra=self._extra(model, None),
                )
            )

    def ship(self) -> None:
        """Background: ship sealed segments and orphans, report the spool's usage, prune."""
        try:
            self.shipper.ship()
        finally:  # a store taking no records may still take the usage: the alert says so
            with contextlib.suppress(Exception):
                self.usage.report()
        days = self.settings.log_retention_days
        if days > 0 and time.monotonic() - self._last_prune > DAY_S:
            self._last_prune = time.monotonic()
            pruned = prune_predictions(self.engine, timedelta(days=days))
            log.info("pruned %d prediction records older than %g days", pruned, days)

    def close(self) -> None:
        """On shutdown: ship what is spooled (left for the next start if the store is down)."""
        try:
            self.shipper.ship(drain=True)
        except Exception as exc:
            log.warning("prediction records stay spooled until the next start: %s", exc)
        finally:
            self.spool.close()
            if self.sink is not None:
                self.sink.close()
