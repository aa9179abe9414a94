"""Every error a user can see.

PointsmanError                      status + code + a sentence a person can act on
├── ConfigError                     settings or project on disk are wrong (CLI exit 1)
├── StoreUnavailable                the database cannot be reached
├── ProjectNotFound                 no project at the given folder
├── ModelNotFound                   404, lists known models
├── VersionNotFound                 404, lists known versions
├── NotDeployed                     503, the model has no route yet
├── ModelNotReady                   503, a routed version failed to load
├── InvalidArtifact                 400, register refused (format, load, hash)
├── ArtifactTampered                500, sha256 no longer matches
├── BadRequest                      400, malformed payload (with where it broke)
├── UnsupportedMediaType            415
├── PayloadTooLarge                 413
├── InvalidInput                    422, one entry per bad field
├── ModelFailed                     500, the model raised; carries the request id
├── InvalidRoute                    422, a traffic policy that cannot be served
├── RouteConflict                   409, e.g. a canary while one is running
└── ModelTimeout                    504, past the route's timeout with no fallback
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
        super().__init__(f"Model {model!r} version {version} is not ready: {reason}")


class InvalidArtifact(PointsmanError):
    status = HTTPStatus.BAD_REQUEST
    code = "invalid_artifact"


class ArtifactTampered(PointsmanError):
    code = "artifact_tampered"

    def __init__(self, path: str, expected: str, actual: str) -> None:
        super().__init__(
            f"Refusing to load {path}: its sha256 is {actual[:12]}… but the registry recorded "
            f"{expected[:12]}…. The artifact was changed after registration; register the new "
            "file as a new version instead of editing the stored one."
        )


class BadRequest(PointsmanError):
    status = HTTPStatus.BAD_REQUEST
    code = "bad_request"


class UnsupportedMediaType(PointsmanError):
    status = HTTPStatus.UNSUPPORTED_MEDIA_TYPE
    code = "unsupported_media_type"


class PayloadTooLarge(PointsmanError):
    status = HTTPStatus.REQUEST_ENTITY_TOO_LARGE
    code = "payload_too_large"

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(
            f"Request body of {size} bytes exceeds the limit of {limit} bytes. Send fewer rows "
            "per request or raise the max_body_bytes setting."
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


class InvalidInput(PointsmanError):
    status = HTTPStatus.UNPROCESSABLE_ENTITY
    code = "invalid_input"

    def __init__(self, problems: list[FieldProblem]) -> None:
        self.problems = problems
        shown = "; ".join(p.describe() for p in problems[:20])
        more = f"; and {len(problems) - 20} more" if len(problems) > 20 else ""
        super().__init__(f"Input does not match the model's signature: {shown}{more}.")

    def to_json(self) -> dict[str, Any]:
        body = super().to_json()
        body["fields"] = [p.to_json() for p in self.problems]
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


class ModelTimeout(PointsmanError):
    status = HTTPStatus.GATEWAY_TIMEOUT
    code = "model_timeout"

    def __init__(self, model: str, version: str, timeout_ms: int, request_id: str) -> None:
        super().__init__(
            f"Model {model!r} version {version} took longer than the route's {timeout_ms} ms "
            f"(request id {request_id}). Configure a fallback version or raise the timeout."
        )
