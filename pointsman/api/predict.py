"""Native endpoints: POST /v1/models/{model}/predict and the version-pinned form."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from pointsman.api.common import guarded, json_response, pipeline_of, read_body
from pointsman.protocols import native


async def predict(request: Request, rid: str) -> Response:
    """Predict with the version the model's route chooses (or the pinned one)."""
    pipeline = pipeline_of(request)
    params = request.path_params
    record = pipeline.record_of(params["model"], params.get("version"))
    body = await read_body(request, pipeline.settings.max_body_bytes)
    frame = native.decode(body, record.signature)
    prediction = await pipeline.predict(record, frame, rid)
    return json_response(native.encode(prediction), rid, record.number)


def routes() -> list[BaseRoute]:
    endpoint = guarded(predict)
    return [
        Route("/v1/models/{model}/predict", endpoint, methods=["POST"]),
        Route("/v1/models/{model}/versions/{version}/predict", endpoint, methods=["POST"]),
    ]
