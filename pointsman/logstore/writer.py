"""What the pipeline calls: a worker's prediction log (redact, spool, seal).

The worker writes and seals; the server's `Shipping` (logstore/shipping.py) moves the sealed
segments into the store, in a process of its own under `pointsman serve`. A log used
outside a server (a CLI call, a batch job, a test) ships its own records (`shipping="own"`).
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any, Literal, TypeAlias

from sqlalchemy.engine import Engine

from pointsman.errors import PointsmanError
from pointsman.logstore.record import build_record, columns_of
from pointsman.logstore.redact import Redactor
from pointsman.logstore.shipping import Shipping
from pointsman.logstore.spool import Spool
from pointsman.settings import Settings
from pointsman.types import Frame, Outcome, Outputs, Prediction

log = logging.getLogger("pointsman.logstore")

ShippingOf: TypeAlias = Shipping | Literal["own"] | None


class PredictionLog:
    """One worker's prediction log: records spooled on the request path, shipped in the back.

    `shipping`: "own", this log ships its records itself (on `ship` and at `close`); a
    `Shipping`, the one this process runs for the server (in a thread); None, another
    process ships them (the HTTP workers of `pointsman serve`).
    """

    def __init__(self, settings: Settings, engine: Engine, shipping: ShippingOf = "own") -> None:
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
        self.owns_shipping = isinstance(shipping, str)  # "own"
        if isinstance(shipping, str):
            shipping = Shipping(settings, engine, only=self.spool.folder)
        self.shipping: Shipping | None = shipping
        # The CloudEvents sink is fed by whoever ships (after the records are stored).
        self.sink = self.shipping.sink if self.shipping is not None else None

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

    def seal(self) -> None:
        """The worker's background round: seal the open segment for the shipper (once it
        took the ones sealed before), and measure the spool for its budget and metrics."""
        self.spool.seal_if_shipped()
        self.spool.refresh_usage()

    def ship(self) -> int:
        """Seal and ship now, in the caller's thread (tests, tools); how many records went.
        Without a shipping in this process, seal only. Raises if the store fails."""
        self.spool.seal()
        try:
            return self.shipping.ship() if self.shipping is not None else 0
        finally:
            self.spool.refresh_usage()

    def close(self) -> None:
        """On shutdown: close the spool (its folder, no longer locked, is then shipped whole
        by the server's shipping); a log that ships its own ships it now (left for the next
        start if the store is down)."""
        self.spool.close()
        if self.owns_shipping and self.shipping is not None:
            self.shipping.stop()  # its last round takes the closed folder whole
