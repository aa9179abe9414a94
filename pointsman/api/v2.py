"""Open Inference Protocol (KServe V2 / Triton) endpoints under /v2."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from pointsman import __version__
from pointsman.api.access import client_of
from pointsman.api.common import (
    check_rows,
    guarded,
    json_response,
    pipeline_of,
    prediction_response,
    read_body,
    routing_key,
)
from pointsman.errors import ModelNotReady
from pointsman.protocols import v2


async def live(request: Request, rid: str) -> Response:
    return json_response({"live": True}, rid)


async def ready(request: Request, rid: str) -> Response:
    report = pipeline_of(request).readiness()
    if not report["ready"]:
        return json_response({"ready": False, "error": _not_ready(report)}, rid, status=503)
    return json_response({"ready": True}, rid)


def _not_ready(report: dict[str, object]) -> str:
    versions = report.get("versions")
    items = versions.items() if isinstance(versions, dict) else []
    bad = [f"{k} ({v})" for k, v in items if v != "ready"]
    return "Not ready: " + "; ".join(bad)


async def server_metadata(request: Request, rid: str) -> Response:
    return json_response(v2.server_metadata(__version__), rid)


async def model_list(request: Request, rid: str) -> Response:
    return json_response({"models": pipeline_of(request).deployed_models()}, rid)


async def model_metadata(request: Request, rid: str) -> Response:
    pipeline = pipeline_of(request)
    params = request.path_params
    record = pipeline.record_of(params["model"], params.get("version"))
    versions = [str(n) for n in sorted(pipeline.catalog.versions.get(record.model, {}))]
    body = v2.model_metadata(record.model, versions, record.signature, record.platform)
    return json_response(body, rid, record.number)


async def model_ready(request: Request, rid: str) -> Response:
    pipeline = pipeline_of(request)
    params = request.path_params
    record = pipeline.record_of(params["model"], params.get("version"))
    if params.get("version"):
        await pipeline.runtime_of(record)  # a pinned version is loaded on first use
    if not pipeline.is_version_ready(record):
        raise ModelNotReady(record.model, str(record.number), "not loaded")
    return json_response({"name": record.model, "ready": True}, rid, record.number)


async def infer(request: Request, rid: str) -> Response:
    pipeline = pipeline_of(request)
    params = request.path_params
    target = pipeline.target(params["model"], params.get("version"), routing_key(request))
    body = await read_body(request, pipeline.settings.max_body_bytes)
    header_length = v2.parse_header_length(request.headers.get("inference-header-content-length"))
    decoded = v2.decode(body, header_length, target.signature)
    check_rows(decoded.frame, pipeline.settings)
    prediction = await pipeline.predict(
        target,
        decoded.frame,
        decoded.id or rid,
        lambda signature: v2.decode(body, header_length, signature).frame,
        client=client_of(request),
    )
    response = prediction_response(v2.encode(prediction, decoded), prediction)
    response.headers["X-Request-ID"] = rid
    return response


def routes() -> list[BaseRoute]:
    out: list[BaseRoute] = [
        Route("/v2/health/live", guarded(live), methods=["GET"]),
        Route("/v2/health/ready", guarded(ready), methods=["GET"]),
        Route("/v2", guarded(server_metadata), methods=["GET"]),
        Route("/v2/", guarded(server_metadata), methods=["GET"]),
        Route("/v2/models", guarded(model_list), methods=["GET"]),
    ]
    for prefix in ("/v2/models/{model}", "/v2/models/{model}/versions/{version}"):
        out += [
            Route(prefix, guarded(model_metadata), methods=["GET"]),
            Route(prefix + "/ready", guarded(model_ready), methods=["GET"]),
            Route(prefix + "/infer", guarded(infer, protocol="v2"), methods=["POST"]),
        ]
    return out
