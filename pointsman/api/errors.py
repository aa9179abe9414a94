"""The one place exceptions become HTTP responses: `{"error": ..., "code": ...}`."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from typing import cast

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from pointsman.errors import PointsmanError

log = logging.getLogger("pointsman.api")

JSON = "application/json"  # exactly this: the KServe SDK reads `error` only under this type


def error_response(
    status: int, body: Mapping[str, object], request_id: str | None = None
) -> Response:
    headers = {"X-Request-ID": request_id} if request_id else None
    return Response(orjson.dumps(body), status_code=status, media_type=JSON, headers=headers)


def request_id_of(request: Request) -> str:
    """The caller's X-Request-ID, or a new one; kept on the request for error responses."""
    rid = getattr(request.state, "request_id", None)
    if rid is None:
        rid = request.headers.get("x-request-id") or uuid.uuid4().hex
        request.state.request_id = rid
    return str(rid)


async def pointsman_error(request: Request, exc: Exception) -> Response:
    """Backstop for errors raised outside the guarded endpoints."""
    error = cast(PointsmanError, exc)
    return error_response(int(error.status), error.to_json(), request_id_of(request))


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
    return error_response(exc.status_code, {"error": message, "code": f"http_{exc.status_code}"})


async def unexpected_error(request: Request, exc: Exception) -> Response:
    rid = request_id_of(request)
    log.error("unexpected error on request %s", rid, exc_info=exc)
    body = {
        "error": f"Internal error (request id {rid}); the details are in the server log.",
        "code": "internal_error",
    }
    return error_response(500, body, rid)
