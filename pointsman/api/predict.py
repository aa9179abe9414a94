"""Native endpoints: POST /v1/models/{model}/predict and the version-pinned form."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from pointsman.api.access import client_of
from pointsman.api.common import (
    check_rows,
    guarded,
    pipeline_of,
    prediction_response,
    read_body,
    routing_key,
)
from pointsman.protocols import native


async def predict(request: Request, rid: str) -> Response:
    """Predict with the version the model's route chooses (or the pinned one)."""
    pipeline = pipeline_of(request)
    params = request.path_params
    target = pipeline.target(params["model"], params.get("version"), routing_key(request))
    body = await read_body(request, pipeline.settings.max_body_bytes)
    frame = check_rows(native.decode(body, target.signature), pipeline.settings)
    prediction = await pipeline.predict(
        target,
        frame,
        rid,
        lambda signature: native.decode(body, signature),
        client=client_of(request),
    )
    return prediction_response(native.encode(prediction), prediction)


def routes() -> list[BaseRoute]:
    endpoint = guarded(predict, protocol="native")
    return [
        Route("/v1/models/{model}/predict", endpoint, methods=["POST"]),
        Route("/v1/models/{model}/versions/{version}/predict", endpoint, methods=["POST"]),
    ]
