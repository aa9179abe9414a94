"""KServe V1 / TensorFlow Serving endpoints: /v1/models/{model}:predict and status."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

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
from pointsman.protocols import v1


async def server_live(request: Request, rid: str) -> Response:
    return json_response({"status": "alive"}, rid)


async def model_list(request: Request, rid: str) -> Response:
    return json_response({"models": pipeline_of(request).deployed_models()}, rid)


async def model_status(request: Request, rid: str) -> Response:
    """KServe's {name, ready} plus TF Serving's model_version_status."""
    pipeline = pipeline_of(request)
    params = request.path_params
    record = pipeline.record_of(params["model"], params.get("version"))
    is_ready = pipeline.is_version_ready(record)
    body = {
        "name": record.model,
        "ready": is_ready,
        "model_version_status": [
            {
                "version": str(record.number),
                "state": "AVAILABLE" if is_ready else "UNAVAILABLE",
                "status": {"error_code": "OK" if is_ready else "UNAVAILABLE", "error_message": ""},
            }
        ],
    }
    if not is_ready:
        body["error"] = f"Model {record.model!r} version {record.number} is not ready."
    return json_response(body, rid, record.number, status=200 if is_ready else 503)


async def predict(request: Request, rid: str) -> Response:
    pipeline = pipeline_of(request)
    params = request.path_params
    target = pipeline.target(params["model"], params.get("version"), routing_key(request))
    body = await read_body(request, pipeline.settings.max_body_bytes)
    frame, style = v1.decode(body, target.signature)
    check_rows(frame, pipeline.settings)
    prediction = await pipeline.predict(
        target,
        frame,
        rid,
        lambda signature: v1.decode(body, signature)[0],
        client=client_of(request),
    )
    return prediction_response(v1.encode(prediction, style), prediction)


def routes() -> list[BaseRoute]:
    return [
        Route("/", guarded(server_live), methods=["GET"]),
        Route("/v1/models", guarded(model_list), methods=["GET"]),
        Route("/v1/models/{model}:predict", guarded(predict, protocol="v1"), methods=["POST"]),
        Route(
            "/v1/models/{model}/versions/{version}:predict",
            guarded(predict, protocol="v1"),
            methods=["POST"],
        ),
        Route("/v1/models/{model}", guarded(model_status), methods=["GET"]),
        Route("/v1/models/{model}/versions/{version}", guarded(model_status), methods=["GET"]),
    ]
