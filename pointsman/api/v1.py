"""KServe V1 / TensorFlow Serving: server liveness, the model list and a model's status.

Predicting (`POST /v1/models/{model}:predict`) is the inference endpoint over `v1.CODEC`.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from pointsman.api.common import catalog_of, endpoint, json_response


async def server_live(request: Request, rid: str) -> Response:
    return json_response({"status": "alive"}, rid)


async def model_list(request: Request, rid: str) -> Response:
    """The deployed models (V1 and V2 alike)."""
    return json_response({"models": catalog_of(request).deployed_models()}, rid)


async def model_status(request: Request, rid: str) -> Response:
    """KServe's {name, ready} plus TF Serving's model_version_status."""
    catalog = catalog_of(request)
    params = request.path_params
    version = catalog.get_version(params["model"], params.get("version"))
    is_ready = catalog.is_version_ready(version)
    body = {
        "name": version.model,
        "ready": is_ready,
        "model_version_status": [
            {
                "version": str(version.number),
                "state": "AVAILABLE" if is_ready else "UNAVAILABLE",
                "status": {"error_code": "OK" if is_ready else "UNAVAILABLE", "error_message": ""},
            }
        ],
    }
    if not is_ready:
        body["error"] = f"Model {version.model!r} version {version.number} is not ready."
    return json_response(body, rid, version.number, status=200 if is_ready else 503)


def routes() -> list[BaseRoute]:
    return [
        Route("/", endpoint(server_live), methods=["GET"]),
        Route("/v1/models", endpoint(model_list), methods=["GET"]),
        Route("/v1/models/{model}", endpoint(model_status), methods=["GET"]),
        Route("/v1/models/{model}/versions/{version}", endpoint(model_status), methods=["GET"]),
    ]
