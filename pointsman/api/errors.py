"""The one place exceptions become HTTP responses: `{"error": ..., "code": ...}`."""

from __future__ import annotations

import itertools
import logging
import os
import re
from collections.abc import Mapping
from typing import Any, cast

import orjson
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match

from pointsman.api.headers import header
from pointsman.auth.ratelimit import retry_after_header
from pointsman.errors import FieldProblem, PointsmanError
from pointsman.monitoring.logs import bind
from pointsman.protocols import Codec

log = logging.getLogger("pointsman.api")

JSON = "application/json"  # exactly this: the KServe SDK reads `error` only under this type


def error_response(
    status: int, body: Mapping[str, object], request_id: str | None = None
) -> Response:
    headers = {"X-Request-ID": request_id} if request_id else None
    return Response(orjson.dumps(body), status_code=status, media_type=JSON, headers=headers)


def error_response_for(
    exc: PointsmanError, codec: Codec | None, request_id: str | None = None
) -> Response:
    """A PointsmanError in the shape the endpoint's protocol answers errors with."""
    status, body = codec.error(exc) if codec is not None else (int(exc.status), exc.to_json())
    response = error_response(status, body, request_id)
    retry_after_s = getattr(exc, "retry_after_s", None)
    if retry_after_s is not None:
        response.headers["Retry-After"] = retry_after_header(retry_after_s)
    return response


def request_id_of(request: Request) -> str:
    """The caller's X-Request-ID, or a new one; kept on the request for error responses."""
    # The scope's state dict, which `request.state` wraps, read directly: a missing
    # attribute of `State` costs an exception, on every request's first call.
    state = request.scope.setdefault("state", {})
    rid = state.get("request_id")
    if rid is None:
        given = header(request.scope, b"x-request-id")
        rid = given if given is not None and is_usable_request_id(given) else new_request_id()
        state["request_id"] = rid
        bind(request_id=rid)
    return str(rid)


def new_request_id() -> str:
    """32 hex digits, as `uuid.uuid4().hex` gives: 16 random ones drawn once per process,
    then a count. Unique across processes and restarts without a system call per request
    (os.urandom was one, ~1.4 % of the HTTP worker's CPU under load)."""
    return f"{_ids.prefix}{next(_ids.count):016x}"


class _Ids:
    """This process's request-id prefix and count; a forked child draws its own."""

    def __init__(self) -> None:
        self.draw()

    def draw(self) -> None:
        self.prefix = os.urandom(8).hex()
        self.count = itertools.count(1)


_ids = _Ids()
os.register_at_fork(after_in_child=_ids.draw)


_REQUEST_ID = re.compile(r"[\x21-\x7e]{1,128}")


def is_usable_request_id(text: str) -> bool:
    """Whether a caller's id can be the request id: up to 128 printable ASCII characters
    without spaces (it goes back in a header and into the log's 128-character column)."""
    return _REQUEST_ID.fullmatch(text) is not None


async def pointsman_error(request: Request, exc: Exception) -> Response:
    """Backstop for errors raised outside the guarded endpoints."""
    return error_response_for(cast(PointsmanError, exc), None, request_id_of(request))


async def http_error(request: Request, exc: Exception) -> Response:
    exc = cast(HTTPException, exc)
    if exc.status_code == 404:
        message = (
            f"No endpoint at {request.method} {request.url.path}. Predict with POST "
            "/v1/models/{model}/predict; the API is listed at /docs."
        )
    elif exc.status_code == 405:
        message = f"{request.method} is not allowed on {request.url.path}."
    else:
        message = str(exc.detail)
    response = error_response(
        exc.status_code, {"error": message, "code": f"http_{exc.status_code}"}
    )
    for name, value in (exc.headers or {}).items():
        response.headers[name] = value
    if exc.status_code == 405:  # every method of the path, not only the first route's
        response.headers["Allow"] = ", ".join(allowed_methods(request))
    return response


def allowed_methods(request: Request) -> list[str]:
    """The methods of the path the router matched (as documented: every route of it)."""
    routes = request.app.router.routes
    path = None
    for route in routes:
        match, _ = route.matches(request.scope)
        if match is not Match.NONE:
            path = getattr(route, "path", None)
            break
    methods: set[str] = set()
    for route in routes:
        if path is not None and getattr(route, "path", None) == path:
            methods |= getattr(route, "methods", None) or set()
    return sorted(methods)


async def validation_error(request: Request, exc: Exception) -> Response:
    """FastAPI's refusal of a body or parameter: one sentence naming each field, and `fields`."""
    problems = [field_problem(e) for e in cast(RequestValidationError, exc).errors()]
    shown = "; ".join(_sentence(p) for p in problems[:20])
    more = f"; and {len(problems) - 20} more" if len(problems) > 20 else ""
    body = {
        "error": f"Request refused: {shown}{more}. The accepted bodies are described at /docs.",
        "code": "invalid_request",
        "fields": [p.to_json() for p in problems],
    }
    return error_response(422, body, request_id_of(request))


def field_problem(error: Mapping[str, Any]) -> FieldProblem:
    """One pydantic error as a FieldProblem: `arms[0].weight`, in words a person reads."""
    loc = tuple(error.get("loc") or ())
    where = _where(loc)
    kind = str(error.get("type", ""))
    message = str(error.get("msg", "Input is not valid"))
    received = _shown(error.get("input"))
    if kind == "json_invalid":
        reason = (error.get("ctx") or {}).get("error", "a syntax error")
        at = f" at character {loc[-1]}" if len(loc) > 1 else ""
        return FieldProblem("body", f"is not valid JSON ({reason}{at})")
    if kind == "missing":
        return FieldProblem(where, "is missing" if where != "body" else "is empty; send JSON")
    if kind == "extra_forbidden":
        return FieldProblem(where, "is not a field here; remove it (or check its spelling)")
    if kind in ("model_attributes_type", "dict_type"):
        return FieldProblem(where, "must be a JSON object", received=received)
    if message.startswith("Input "):  # "Input should be …" reads well after the field's name
        return FieldProblem(where, message.removeprefix("Input "), received=received)
    return FieldProblem(where, f"is invalid: {message[:1].lower()}{message[1:]}", received=received)


def _where(loc: tuple[Any, ...]) -> str:
    """`arms[0].weight` (body), or `query reason`, from pydantic's location tuple."""
    source, *rest = loc or ("body",)
    path = ""
    for part in rest:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    if source == "body":
        return path or "body"
    return f"{source} {path}".strip()


def _sentence(problem: FieldProblem) -> str:
    got = f" (got {problem.received!r})" if problem.received is not None else ""
    return f"{problem.field!r} {problem.problem}{got}"


def _shown(value: Any) -> Any:
    """The value received, if it is short enough to repeat in a message."""
    if isinstance(value, str | int | float | bool) and len(str(value)) <= 60:
        # JSON has room for any integer, orjson only for 64 bits: a larger one as its text.
        return str(value) if type(value) is int and not -(2**63) <= value < 2**64 else value
    return None


async def unexpected_error(request: Request, exc: Exception) -> Response:
    rid = request_id_of(request)
    log.error("unexpected error on request %s", rid, exc_info=exc)
    body = {
        "error": f"Internal error (request id {rid}); the details are in the server log.",
        "code": "internal_error",
    }
    return error_response(500, body, rid)
