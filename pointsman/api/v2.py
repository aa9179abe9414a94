"""Open Inference Protocol (KServe V2 / Triton): health, server and model metadata, readiness.

Inference (`POST /v2/models/{model}/infer`) is the inference endpoint over `v2.CODEC`.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from pointsman import __version__
from pointsman.api.common import catalog_of, endpoint, json_response
from pointsman.api.v1 import model_list
from pointsman.catalog import not_ready_message
from pointsman.errors import ModelNotReady
from pointsman.protocols import v2


async def live(request: Request, rid: str) -> Response:
    return json_response({"live": True}, rid)


async def ready(request: Request, rid: str) -> Response:
    report = catalog_of(request).readiness()
    if not report["ready"]:
        return json_response({"ready": False, "error": not_ready_message(report)}, rid, status=503)
    return json_response({"ready": True}, rid)


async def server_metadata(request: Request, rid: str) -> Response:
    return json_response(v2.server_metadata(__version__), rid)


async def model_metadata(request: Request, rid: str) -> Response:
    catalog = catalog_of(request)
    params = request.path_params
    version = catalog.get_version(params["model"], params.get("version"))
    numbers = [str(n) for n in sorted(catalog.snapshot.versions.get(version.model, {}))]
    body = v2.model_metadata(version.model, numbers, version.signature, version.platform)
    return json_response(body, rid, version.number)


async def model_ready(request: Request, rid: str) -> Response:
    catalog = catalog_of(request)
    params = request.path_params
    version = catalog.get_version(params["model"], params.get("version"))
    if params.get("version"):  # a pinned version no route holds is started on first use
        await catalog.wait_warm(version, catalog.spec_of(version).load_timeout_s)
    if not catalog.is_version_ready(version):
        raise ModelNotReady(version.model, str(version.number), "not loaded")
    return json_response({"name": version.model, "ready": True}, rid, version.number)


def routes() -> list[BaseRoute]:
    out: list[BaseRoute] = [
        Route("/v2/health/live", endpoint(live), methods=["GET"]),
        Route("/v2/health/ready", endpoint(ready), methods=["GET"]),
        Route("/v2", endpoint(server_metadata), methods=["GET"]),
        Route("/v2/", endpoint(server_metadata), methods=["GET"]),
        Route("/v2/models", endpoint(model_list), methods=["GET"]),
    ]
    for prefix in ("/v2/models/{model}", "/v2/models/{model}/versions/{version}"):
        out += [
            Route(prefix, endpoint(model_metadata), methods=["GET"]),
            Route(prefix + "/ready", endpoint(model_ready), methods=["GET"]),
        ]
    return out
