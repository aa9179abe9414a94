"""What every endpoint shares: body reading with limits, request ids, JSON responses."""

from __future__ import annotations

import asyncio
import gzip
import time
import zlib
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from pointsman.api.errors import (
    JSON,
    error_response,
    request_id_of,
    unexpected_error,
)
from pointsman.errors import (
    BadRequest,
    PayloadTooLarge,
    PointsmanError,
    RequestTimedOut,
    TooManyRows,
)
from pointsman.monitoring import metrics
from pointsman.pipeline import Pipeline, request_trace
from pointsman.protocols.mlflow import to_mlflow_error
from pointsman.settings import Settings
from pointsman.types import Frame, Prediction

Handler = Callable[[Request, str], Awaitable[Response]]


def pipeline_of(request: Request) -> Pipeline:
    pipeline: Pipeline = request.app.state.pipeline
    return pipeline


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 past `limit` bytes (before reading it all)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(int(declared), limit)
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(size, limit)
        chunks.append(chunk)
    body = b"".join(chunks)
    encoding = request.headers.get("content-encoding", "").lower()
    if encoding in ("gzip", "deflate"):
        body = _decompress(body, encoding, limit)
    return body


def _decompress(body: bytes, encoding: str, limit: int) -> bytes:
    try:
        if encoding == "gzip":
            decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
        else:
            decoder = zlib.decompressobj()
        out = decoder.decompress(body, limit + 1)
    except (zlib.error, gzip.BadGzipFile) as exc:
        raise BadRequest(f"Body is not valid {encoding} data: {exc}.") from exc
    if len(out) > limit:
        raise PayloadTooLarge(len(out), limit)
    return out


def json_response(
    body: Any, request_id: str, version: int | None = None, status: int = 200
) -> Response:
    headers = {"X-Request-ID": request_id}
    if version is not None:
        headers["X-Model-Version"] = str(version)
    content = orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)
    return Response(content, status_code=status, media_type=JSON, headers=headers)


def prediction_response(body: Any, prediction: Prediction) -> Response:
    """A prediction's answer, with the version (and route revision, fallback) in headers."""
    headers = {
        "X-Request-ID": prediction.request_id,
        "X-Model-Version": str(prediction.version),
    }
    if prediction.route_revision is not None:
        headers["X-Route-Revision"] = str(prediction.route_revision)
    if prediction.findings:  # every protocol: the native body also lists them
        headers["X-Validation-Warnings"] = str(len(prediction.findings))
    if prediction.role == "fallback":
        headers["X-Fallback"] = str(prediction.extra.get("fallback", {}).get("reason", ""))
    content = orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)
    return Response(content, media_type=JSON, headers=headers)


def check_rows(frame: Frame, settings: Settings) -> Frame:
    """The frame, unless it has more rows than one request may carry (422)."""
    if frame.n_rows > settings.max_rows_per_request:
        raise TooManyRows(frame.n_rows, settings.max_rows_per_request)
    return frame


def routing_key(request: Request) -> str | None:
    return request.headers.get("x-routing-key")


def guarded(
    handler: Handler, mlflow: bool = False, protocol: str | None = None
) -> Callable[[Request], Awaitable[Response]]:
    """Run `handler`; every error becomes a JSON answer carrying the request id.

    With `protocol` the endpoint is an inference endpoint: each request is traced through
    the pipeline and counted in the metrics (status class, latency, model time, rows).
    """

    async def answer(request: Request, rid: str) -> Response:
        timeout_s = pipeline_of(request).settings.request_timeout_s
        try:
            try:
                # A timer, not a task: cheap on the hot path. A model running inline on the
                # event loop is only interrupted at its next await.
                async with asyncio.timeout(timeout_s):
                    return await handler(request, rid)
            except TimeoutError:
                raise RequestTimedOut(timeout_s, rid) from None
        except PointsmanError as exc:
            if mlflow:
                return error_response(*to_mlflow_error(exc), rid)
            return error_response(int(exc.status), exc.to_json(), rid)
        except Exception as exc:
            return await unexpected_error(request, exc)

    async def endpoint(request: Request) -> Response:
        return await answer(request, request_id_of(request))

    async def inference(request: Request) -> Response:
        pipeline = pipeline_of(request)
        start = time.perf_counter()
        metrics.INFLIGHT.inc()
        status = 500
        with request_trace(protocol=protocol) as trace:
            try:
                response = await answer(request, request_id_of(request))
                status = response.status_code
                return response
            finally:
                metrics.INFLIGHT.dec()
                model = trace.get("model") or known_model(request, pipeline)
                version = trace.get("version")
                pipeline.request_metrics.answered(
                    model, "" if version is None else str(version), trace.get("role", ""),
                    str(protocol), status, time.perf_counter() - start, trace.get("model_s"),
                    trace.get("rows"),
                )  # fmt: skip

    chosen = endpoint if protocol is None else inference
    chosen.__name__ = handler.__name__
    chosen.__doc__ = handler.__doc__
    return chosen


def known_model(request: Request, pipeline: Pipeline) -> str:
    """The model in the path when the catalog knows it: never an unbounded label value."""
    model = request.path_params.get("model")
    return model if model is not None and model in pipeline.catalog.versions else ""
