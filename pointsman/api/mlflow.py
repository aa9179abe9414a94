"""MLflow scoring endpoints: /invocations, /ping, /health, /version."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from pointsman import __version__
from pointsman.api.access import client_of
from pointsman.api.common import (
    check_rows,
    guarded,
    pipeline_of,
    prediction_response,
    read_body,
    routing_key,
)
from pointsman.errors import BadRequest, NotDeployed
from pointsman.protocols import mlflow


def default_model(request: Request) -> str:
    """The model behind bare /invocations: the setting, or the only deployed model."""
    pipeline = pipeline_of(request)
    if pipeline.settings.default_model:
        return pipeline.settings.default_model
    deployed = pipeline.deployed_models()
    if len(deployed) == 1:
        return deployed[0]
    if not deployed:
        raise NotDeployed("(default)", [])
    raise BadRequest(
        f"/invocations needs one model but {len(deployed)} are deployed "
        f"({', '.join(deployed)}); call /v1/models/{{model}}/invocations or set default_model."
    )


async def invocations(request: Request, rid: str) -> Response:
    pipeline = pipeline_of(request)
    model = request.path_params.get("model") or default_model(request)
    target = pipeline.target(model, None, routing_key(request))
    body = await read_body(request, pipeline.settings.max_body_bytes)
    content_type = request.headers.get("content-type")
    frame = check_rows(mlflow.decode(body, content_type, target.signature), pipeline.settings)
    prediction = await pipeline.predict(
        target,
        frame,
        rid,
        lambda signature: mlflow.decode(body, content_type, signature),
        client=client_of(request),
    )
    return prediction_response(mlflow.encode(prediction), prediction)


async def ping(request: Request) -> Response:
    ready = pipeline_of(request).readiness()["ready"]
    return PlainTextResponse("\n", status_code=200 if ready else 503)


async def version(request: Request) -> Response:
    return PlainTextResponse(__version__)


def routes() -> list[BaseRoute]:
    return [
        Route(
            "/invocations", guarded(invocations, mlflow=True, protocol="mlflow"), methods=["POST"]
        ),
        Route(
            "/v1/models/{model}/invocations",
            guarded(invocations, mlflow=True, protocol="mlflow"),
            methods=["POST"],
        ),
        Route("/ping", ping, methods=["GET"]),
        Route("/health", ping, methods=["GET"]),
        Route("/version", version, methods=["GET"]),
    ]
