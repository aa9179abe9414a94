"""Every error a user can see.

PointsmanError                      status + code + a sentence a person can act on
├── ConfigError                     settings or project on disk are wrong (CLI exit 1)
│   └── InvalidRunnerSpec           422, runner settings that cannot hold
│       └── CompiledRuntimeRefused  422, runtime compiled where its compile did not agree
├── StoreUnavailable                the database cannot be reached
├── ProjectNotFound                 no project at the given folder
├── ModelNotFound                   404, lists known models
├── VersionNotFound                 404, lists known versions
├── NotDeployed                     503, the model has no route yet
├── ModelNotReady                   503, a routed version failed to load
├── InvalidArtifact                 400, register refused (format, load, hash)
├── ArtifactTampered                500, sha256 no longer matches
├── ArtifactMissing                 500, a version's artifact is not in the store
├── ArtifactStoreUnavailable        503, the S3 artifact store cannot be reached or refuses
├── InvalidBackup                   a backup folder that cannot be written or restored
├── UploadDigestMismatch            422, an uploaded body's sha256 is not the one declared
├── BadRequest                      400, malformed payload (with where it broke)
│   ├── MalformedUpload             400, an upload that is no archive `register --url` sends
│   └── OutcomeWithoutKey           400, an outcome naming no request id nor outcome key
├── UnsupportedMediaType            415
├── PayloadTooLarge                 413
├── InvalidInput                    422, one entry per bad field
│   ├── InputRejected               422, refused by the route's validation policy, per row
│   └── InputNotComputable          422, the model raised on rows unlike its training data
├── ModelFailed                     500, the model raised on clean input; carries the request id
├── InvalidRoute                    422, a traffic policy that cannot be served
├── RouteConflict                   409, e.g. a canary while one is running
├── IncompatibleSignature           409, a version that does not take the primary's inputs
├── ModelTimeout                    504, past the route's timeout with no fallback
├── RunnerFailed                    503, a runner crashed or hit its memory or disk limit
├── RunnerTimeout                   504, a call past the runner's hard time limit (replaced)
├── QueueFull                       503, the version's runner queue is full; Retry-After
├── BadLogQuery                     400, a prediction-log query that cannot be read
│   └── BadCursor                   400, a page cursor this server did not write
├── SpoolFull                       503, the log spool is past its disk budget (policy refuse)
├── Unauthorized                    401, no key, or an invalid, revoked or expired one
├── Forbidden                       403, the key lacks the scope (named)
├── RateLimited                     429, past the key's rate; carries Retry-After
├── RateLimiterUnavailable          503, the shared limiter (Redis) is down (policy closed)
├── KeyNotFound                     404, no active key of that name
├── KeyInUse                        409, a key may not revoke itself over the API
├── KeyExists                       409, an active key already has the name
├── TooManyRows                     422, more rows than max_rows_per_request
├── RequestTimedOut                 504, past request_timeout_s
├── UnsafeArtifact                  400, a format or type that runs code, not trusted
├── PlainHttpRefused                400, plain HTTP sent to a TLS-only server
├── CannotRerun                     409, a logged input cannot run again (redacted, missing)
├── InvalidAlertRule                422, an alert rule that cannot be evaluated (names why)
├── AlertRuleNotFound               404, lists the known rules
├── AlertRuleConflict               409, the name is taken, or the rule is read-only (file)
├── BadBatchSource                  400, a batch job's input or output cannot be read or written
├── JobNotFound                     404, no batch job of that id
├── JobConflict                     409, e.g. resuming a job that is running or finished
├── JobCancelled                    409, a job stopped because it was cancelled
└── ChunkFailed                     500, a batch worker's error, its message carried back
"""

from __future__ import annotations

from dataclasses import dataclass
from http import HTTPStatus
from typing import Any


class PointsmanError(Exception):
    """Base of every error a user may see; `status` is the HTTP answer."""

    status: HTTPStatus = HTTPStatus.INTERNAL_SERVER_ERROR
    code = "internal_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def to_json(self) -> dict[str, Any]:
        """The error body: `error` always present, `code` for scripts."""
        return {"error": self.message, "code": self.code}


class ConfigError(PointsmanError):
    status = HTTPStatus.INTERNAL_SERVER_ERROR
    code = "config_error"


class InvalidRunnerSpec(ConfigError):
    """Runner settings that cannot hold: refused at start (pointsman.toml) or on change (422)."""

    status = HTTPStatus.UNPROCESSABLE_ENTITY
    code = "invalid_runner_spec"


class CompiledRuntimeRefused(InvalidRunnerSpec):
    """`runtime = compiled` for a version whose compiled artifact did not agree (or is none)."""

    code = "compiled_runtime_refused"

    def __init__(self, model: str, number: int, reason: str) -> None:
        super().__init__(
            f"Model {model!r} version {number} cannot run its compiled runtime: {reason}. "
            f"Use --runtime auto (the compiled runtime only where it agreed) or original; "
            f"`pointsman show {model} {number}` has the figures."
        )


class StoreUnavailable(PointsmanError):
    status = HTTPStatus.SERVICE_UNAVAILABLE
    code = "store_unavailable"

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(
            f"Cannot reach the database at {url} ({reason}). Check that it is running and "
            "that --database-url / POINTSMAN_DATABASE_URL is right."
        )


class ProjectNotFound(PointsmanError):
    code = "project_not_found"

    def __init__(self, folder: str) -> None:
        super().__init__(
            f"No pointsman project in {folder} (no pointsman.toml). Create one with "
            f"`pointsman init {folder}` or point --project / POINTSMAN_PROJECT at an existing one."
        )


class ModelNotFound(PointsmanError):
    status = HTTPStatus.NOT_FOUND
    code = "model_not_found"

    def __init__(self, model: str, known: list[str]) -> None:
        listed = ", ".join(known) or "none yet"
        super().__init__(
            f"Model {model!r} not found (known models: {listed}). "
            f"Register one with `pointsman register {model} MODEL_FILE`."
        )


class VersionNotFound(PointsmanError):
    status = HTTPStatus.NOT_FOUND
    code = "version_not_found"

    def __init__(self, model: str, version: str, known: list[str]) -> None:
        listed = ", ".join(known) or "none yet"
        super().__init__(
            f"Model {model!r} has no version {version!r} (versions: {listed}). "
            f"Register one with `pointsman register {model} MODEL_FILE`."
        )


class NotDeployed(PointsmanError):
    status = HTTPStatus.SERVICE_UNAVAILABLE
    code = "not_deployed"

    def __init__(self, model: str, versions: list[str]) -> None:
        hint = versions[-1] if versions else "VERSION"
        super().__init__(
            f"Model {model!r} is registered but not deployed. "
            f"Deploy a version with `pointsman deploy {model} {hint}`."
        )


class ModelNotReady(PointsmanError):
    status = HTTPStatus.SERVICE_UNAVAILABLE
    code = "model_not_ready"

    def __init__(self, model: str, version: str, reason: str) -> None:
        self.reason = reason
        super().__init__(f"Model {model!r} version {version} is not ready: {reason}")


class InvalidArtifact(PointsmanError):
    status = HTTPStatus.BAD_REQUEST
    code = "invalid_artifact"


class ArtifactTampered(PointsmanError):
    code = "artifact_tampered"

    def __init__(self, path: str, expected: str, actual: str) -> None:
        super().__init__(
            f"Refusing {path}: its sha256 is {actual[:12]}… but the registry recorded "
            f"{expected[:12]}…. The artifact was changed after registration; restore it from a "
            "backup, or register the new file as a new version instead of editing the stored one."
        )


class InvalidBackup(PointsmanError):
    """`pointsman backup` or `restore` cannot go on: the message says why and what to do."""

    code = "invalid_backup"


class ArtifactMissing(PointsmanError):
    code = "artifact_missing"

    def __init__(self, where: str, store: str) -> None:
        super().__init__(
            f"Artifact {where} is missing from {store}; restore it from a backup (the same "
            "bytes: the name is their sha256) or register the model again."
        )


class ArtifactStoreUnavailable(PointsmanError):
    status = HTTPStatus.SERVICE_UNAVAILABLE
    code = "artifact_store_unavailable"

    def __init__(self, store: str, reason: str) -> None:
        super().__init__(
            f"Cannot use the artifact store {store} ({reason}). Check the bucket and the AWS "
            "settings it is reached with: AWS_ENDPOINT_URL, AWS_REGION, AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY (or a profile or role)."
        )


class UploadDigestMismatch(PointsmanError):
    status = HTTPStatus.UNPROCESSABLE_ENTITY
    code = "digest_mismatch"

    def __init__(self, what: str, declared: str, actual: str) -> None:
        super().__init__(
            f"The {what} has sha256 {actual} but the client declared {declared}: it changed "
            "on the way (or the declared digest is wrong). Nothing was stored; upload again."
        )


class BadRequest(PointsmanError):
    status = HTTPStatus.BAD_REQUEST
    code = "bad_request"


class MalformedUpload(BadRequest):
    """An uploaded version that is no archive `pointsman register --url` would send."""

    code = "malformed_upload"


class OutcomeWithoutKey(BadRequest):
    """An outcome naming neither a request id nor the route's outcome key."""

    code = "outcome_without_key"


class UnsupportedMediaType(PointsmanError):
    status = HTTPStatus.UNSUPPORTED_MEDIA_TYPE
    code = "unsupported_media_type"


class PayloadTooLarge(PointsmanError):
    status = HTTPStatus.REQUEST_ENTITY_TOO_LARGE
    code = "payload_too_large"

    def __init__(self, size: int, limit: int, setting: str = "max_body_bytes") -> None:
        advice = "Send fewer rows per request or raise" if setting == "max_body_bytes" else "Raise"
        super().__init__(
            f"Request body of {size} bytes exceeds the limit of {limit} bytes. {advice} the "
            f"{setting} setting."
        )


@dataclass(frozen=True)
class FieldProblem:
    """One bad field: which, what was expected, what came."""

    field: str
    problem: str
    expected: str | None = None
    received: Any = None
    row: int | None = None

    def describe(self) -> str:
        where = f"row {self.row}, " if self.row is not None else ""
        text = f"{where}{self.field!r}: {self.problem}"
        if self.expected is not None:
            text += f" (expected {self.expected}"
            if self.received is not None:
                text += f", got {self.received!r}"
            text += ")"
        return text

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"field": self.field, "problem": self.problem}
        if self.expected is not None:
            out["expected"] = self.expected
        if self.received is not None:
            out["received"] = self.received
        if self.row is not None:
            out["row"] = self.row
        return out


def _first(items: list[str], limit: int, sep: str = "; ") -> str:
    """The first `limit` items joined, then how many more there are: `a; b; and 3 more`."""
    more = [f"and {len(items) - limit} more"] if len(items) > limit else []
    return sep.join([*items[:limit], *more])


class InvalidInput(PointsmanError):
    status = HTTPStatus.UNPROCESSABLE_ENTITY
    code = "invalid_input"

    def __init__(self, problems: list[FieldProblem], message: str = "") -> None:
        self.problems = problems
        shown = _first([p.describe() for p in problems], 20)
        super().__init__(message or f"Input does not match the model's signature: {shown}.")

    def to_json(self) -> dict[str, Any]:
        body = super().to_json()
        body["fields"] = [p.to_json() for p in self.problems]
        return body


def _finding_problems(findings: list[Any]) -> list[FieldProblem]:
    """Validation findings as field problems: feature, rule (and hint), allowed, value, row."""
    return [
        FieldProblem(
            f.feature,
            f"{f.rule.replace('_', ' ')}" + (f", {f.hint}" if f.hint else ""),
            expected=f.allowed,
            received=f.value,
            row=f.row,
        )
        for f in findings
    ]


def _rows_of(findings: list[Any]) -> str:
    return _first([str(row) for row in sorted({f.row for f in findings})], 50, ", ")


class InputRejected(InvalidInput):
    """Findings the route's validation policy refuses: each with its row, feature and rule."""

    code = "input_rejected"

    def __init__(self, model: str, findings: list[Any]) -> None:
        self.findings = findings
        problems = _finding_problems(findings)
        shown = _first([p.describe() for p in problems], 20)
        example = min(f.feature for f in findings)
        super().__init__(
            problems,
            f"Input refused by model {model!r}'s validation policy (rows {_rows_of(findings)}): "
            f"{shown}. Fix the input, or change the policy, e.g. "
            f"`pointsman route {model} --validation-feature {example}=flag`.",
        )

    def to_json(self) -> dict[str, Any]:
        body = super().to_json()
        body["findings"] = [f.to_json() for f in self.findings]
        body["rows"] = sorted({f.row for f in self.findings})
        return body


class InputNotComputable(InvalidInput):
    """The model raised on rows carrying findings (or computed NaN/inf from finite input):
    the caller's input, not the version, is at fault, so it is the caller's 422."""

    code = "input_not_computable"

    def __init__(
        self, model: str, version: str, findings: list[Any], kind: str, request_id: str
    ) -> None:
        self.findings = findings
        self.request_id = request_id
        problems = _finding_problems(findings)
        shown = _first([p.describe() for p in problems], 20)
        feature = next((f.feature for f in findings if f.feature != "(row)"), None)
        fix = (
            f", or refuse such input up front with `pointsman route {model} "
            f"--validation-feature {feature}=reject`"
            if feature is not None
            else ""
        )
        super().__init__(
            problems,
            f"Model {model!r} version {version} cannot compute an answer for this input: it "
            f"raised {kind} on rows unlike its training data (rows {_rows_of(findings)}): "
            f"{shown}. Send values within the training range{fix} (request id {request_id}).",
        )

    def to_json(self) -> dict[str, Any]:
        body = super().to_json()
        body["findings"] = [f.to_json() for f in self.findings]
        body["rows"] = sorted({f.row for f in self.findings})
        body["request_id"] = self.request_id
        return body


class ModelFailed(PointsmanError):
    code = "model_failed"

    def __init__(self, model: str, version: str, request_id: str, kind: str) -> None:
        self.request_id = request_id
        super().__init__(
            f"Model {model!r} version {version} raised {kind} on this input "
            f"(request id {request_id}); the details are in the server log under that id."
        )


class InvalidRoute(PointsmanError):
    status = HTTPStatus.UNPROCESSABLE_ENTITY
    code = "invalid_route"

    def __init__(self, model: str, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(f"Route for {model!r} refused: " + "; ".join(problems) + ".")


class RouteConflict(PointsmanError):
    status = HTTPStatus.CONFLICT
    code = "route_conflict"


class IncompatibleSignature(PointsmanError):
    """A route change would send callers of the primary to a version that refuses their input."""

    status = HTTPStatus.CONFLICT
    code = "incompatible_signature"

    def __init__(self, model: str, version: int, primary: int, diff: list[str]) -> None:
        self.diff = diff
        lines = "\n".join(f"  {line}" for line in diff)
        super().__init__(
            f"Version {version} of {model!r} does not take the inputs of version {primary}, "
            f"the primary:\n{lines}\nCallers sending what version {primary} takes would get "
            f"422 from version {version}. Give --allow-signature-change (API: "
            '"allow_signature_change": true; audited) if the callers are ready for it.'
        )

    def to_json(self) -> dict[str, Any]:
        return {**super().to_json(), "diff": self.diff}


class ModelTimeout(PointsmanError):
    status = HTTPStatus.GATEWAY_TIMEOUT
    code = "model_timeout"

    def __init__(self, model: str, version: str, timeout_ms: int, request_id: str) -> None:
        super().__init__(
            f"Model {model!r} version {version} took longer than the route's {timeout_ms} ms "
            f"(request id {request_id}). Configure a fallback version or raise the timeout."
        )


class RunnerFailed(PointsmanError):
    status = HTTPStatus.SERVICE_UNAVAILABLE
    code = "runner_failed"

    def __init__(self, model: str, version: str, what: str, request_id: str) -> None:
        self.request_id = request_id
        super().__init__(
            f"Model {model!r} version {version}: its runner {what} while answering (request id "
            f"{request_id}); a fresh runner is being started. Retry, configure a fallback "
            f"version, or raise its limits with `pointsman runners {model} ...`."
        )


class RunnerTimeout(PointsmanError):
    status = HTTPStatus.GATEWAY_TIMEOUT
    code = "runner_timeout"

    def __init__(self, model: str, version: str, limit_s: float, request_id: str) -> None:
        self.request_id = request_id
        super().__init__(
            f"Model {model!r} version {version} took longer than its runner time limit of "
            f"{limit_s:g} s (request id {request_id}); that runner is stopped and replaced. "
            f"Configure a fallback version, or raise the limit with `pointsman runners {model} "
            "--timeout ...`."
        )


class QueueFull(PointsmanError):
    status = HTTPStatus.SERVICE_UNAVAILABLE
    code = "queue_full"

    def __init__(self, model: str, version: str, queue: int, retry_after_s: float) -> None:
        self.retry_after_s = retry_after_s
        super().__init__(
            f"Model {model!r} version {version} has {queue} requests waiting in each runner, its "
            f"queue limit: retry after {retry_after_s:g} s (see Retry-After), or give it more "
            f"runners with `pointsman runners {model} --replicas N`."
        )


class BadLogQuery(PointsmanError):
    status = HTTPStatus.BAD_REQUEST
    code = "bad_log_query"

    def __init__(self, name: str, value: str, allowed: str) -> None:
        super().__init__(f"{name} {value!r} cannot be read: {allowed}.")


class BadCursor(BadLogQuery):
    """A page cursor this server did not write (the schema can only say it is text)."""

    code = "bad_cursor"

    def __init__(self, cursor: str) -> None:
        super().__init__(
            "cursor", cursor, "pass back the `cursor` value of the previous page unchanged"
        )


class SpoolFull(PointsmanError):
    status = HTTPStatus.SERVICE_UNAVAILABLE
    code = "log_spool_full"

    def __init__(self, used_bytes: int, budget_bytes: int) -> None:
        super().__init__(
            f"The prediction log spool holds {used_bytes} bytes, past its budget of "
            f"{budget_bytes}, and the policy is to refuse rather than serve unlogged. Bring "
            "the store back (records ship when it answers), raise log_spool_budget_bytes, or "
            'set log_spool_full_policy = "drop".'
        )


class Unauthorized(PointsmanError):
    """No usable API key; `reason` is missing | invalid | revoked | expired (never the key)."""

    status = HTTPStatus.UNAUTHORIZED
    code = "unauthorized"

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason

    def to_json(self) -> dict[str, Any]:
        return {**super().to_json(), "reason": self.reason}


class Forbidden(PointsmanError):
    status = HTTPStatus.FORBIDDEN
    code = "forbidden"

    def __init__(self, client: str, needed: tuple[str, ...]) -> None:
        self.missing_scope = needed[0]
        alternatives = " or ".join(repr(n) for n in needed)
        super().__init__(
            f"The API key {client!r} lacks the scope {alternatives} needed here; an admin can "
            f"grant it with `pointsman keys create NAME --scope {needed[0]}`."
        )

    def to_json(self) -> dict[str, Any]:
        return {**super().to_json(), "missing_scope": self.missing_scope}


class RateLimited(PointsmanError):
    status = HTTPStatus.TOO_MANY_REQUESTS
    code = "rate_limited"

    def __init__(self, client: str, rate: str, retry_after_s: float) -> None:
        self.retry_after_s = retry_after_s
        super().__init__(
            f"The API key {client!r} is past its rate of {rate}; retry after "
            f"{retry_after_s:.2f} s (see Retry-After), or ask an admin for a higher rate."
        )


class RateLimiterUnavailable(PointsmanError):
    status = HTTPStatus.SERVICE_UNAVAILABLE
    code = "rate_limiter_unavailable"

    def __init__(self, client: str, retry_after_s: float) -> None:
        self.retry_after_s = retry_after_s
        super().__init__(
            f"The API key {client!r} has a rate limit, and the shared rate limiter (Redis) "
            f"cannot be reached, so the request is refused (redis_down_policy = closed); "
            f"retry after {retry_after_s:.0f} s."
        )


class KeyInUse(PointsmanError):
    status = HTTPStatus.CONFLICT
    code = "key_in_use"

    def __init__(self, name: str) -> None:
        super().__init__(
            f"The API key {name!r} is the one making this request: a key cannot revoke itself "
            "(the caller would be locked out mid-call). Revoke it with another admin key, or "
            f"with `pointsman keys revoke {name}` on the server."
        )


class KeyExists(PointsmanError):
    status = HTTPStatus.CONFLICT
    code = "key_exists"

    def __init__(self, name: str) -> None:
        super().__init__(
            f"An active key named {name!r} exists; rotate it with `pointsman keys rotate "
            f"{name}` or revoke it first."
        )


class KeyNotFound(PointsmanError):
    status = HTTPStatus.NOT_FOUND
    code = "key_not_found"

    def __init__(self, name: str, known: list[str]) -> None:
        listed = ", ".join(known) or "none"
        super().__init__(
            f"No active API key named {name!r} (active keys: {listed}). "
            "List them with `pointsman keys list`."
        )


class TooManyRows(PointsmanError):
    status = HTTPStatus.UNPROCESSABLE_ENTITY
    code = "too_many_rows"

    def __init__(self, rows: int, limit: int) -> None:
        super().__init__(
            f"The request has {rows} rows, more than the {limit} allowed per request "
            "(max_rows_per_request); split it into smaller requests."
        )


class RequestTimedOut(PointsmanError):
    status = HTTPStatus.GATEWAY_TIMEOUT
    code = "request_timeout"

    def __init__(self, timeout_s: float, request_id: str) -> None:
        super().__init__(
            f"The request {request_id} took longer than {timeout_s:g} s (request_timeout_s) "
            "and was abandoned; send fewer rows or ask the operator to raise the limit."
        )


class UnsafeArtifact(PointsmanError):
    status = HTTPStatus.BAD_REQUEST
    code = "unsafe_artifact"


class PlainHttpRefused(PointsmanError):
    status = HTTPStatus.BAD_REQUEST
    code = "https_required"

    def __init__(self, url: str) -> None:
        super().__init__(f"This server only answers HTTPS; call {url} instead.")


class CannotRerun(PointsmanError):
    status = HTTPStatus.CONFLICT
    code = "cannot_rerun"


class InvalidAlertRule(PointsmanError):
    status = HTTPStatus.UNPROCESSABLE_ENTITY
    code = "invalid_alert_rule"

    def __init__(self, rule: str, problem: str) -> None:
        super().__init__(f"Alert rule {rule!r} refused: {problem}.")


class AlertRuleNotFound(PointsmanError):
    status = HTTPStatus.NOT_FOUND
    code = "alert_rule_not_found"

    def __init__(self, name: str, known: list[str]) -> None:
        listed = ", ".join(known) or "none yet"
        super().__init__(
            f"No alert rule named {name!r} (rules: {listed}). "
            "List them with `pointsman alerts list`."
        )


class AlertRuleConflict(PointsmanError):
    status = HTTPStatus.CONFLICT
    code = "alert_rule_conflict"


class BadBatchSource(PointsmanError):
    status = HTTPStatus.BAD_REQUEST
    code = "bad_batch_source"


class JobNotFound(PointsmanError):
    status = HTTPStatus.NOT_FOUND
    code = "job_not_found"

    def __init__(self, job_id: str) -> None:
        super().__init__(
            f"No batch job {job_id!r}. List the jobs with `pointsman jobs` (or GET /v1/admin/jobs)."
        )


class JobConflict(PointsmanError):
    status = HTTPStatus.CONFLICT
    code = "job_conflict"


class JobCancelled(PointsmanError):
    """Raised in the job's own process when it stops because the job was cancelled."""

    status = HTTPStatus.CONFLICT
    code = "job_cancelled"

    def __init__(self, job_id: str, note: str, chunks_done: int) -> None:
        super().__init__(
            f"Job {job_id} was {note}. Its {chunks_done} finished chunks are kept and no output "
            f"was written; `pointsman jobs resume {job_id}` finishes it."
        )


class ChunkFailed(PointsmanError):
    """An error raised where a chunk ran (another process, a Dask worker), carried back as
    its message: errors whose constructors take other arguments do not survive pickling."""

    code = "chunk_failed"
