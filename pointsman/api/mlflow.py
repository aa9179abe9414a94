"""MLflow scoring server: /ping, /health and /version.

Scoring (`POST /invocations`, `POST /v1/models/{model}/invocations`) is the inference
endpoint over `mlflow.CODEC`; bare /invocations answers with `Catalog.default_model`.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from pointsman import __version__
from pointsman.api.common import catalog_of


async def ping(request: Request) -> Response:
    ready = catalog_of(request).readiness()["ready"]
    return PlainTextResponse("\n", status_code=200 if ready else 503)


async def version(request: Request) -> Response:
    return PlainTextResponse(__version__)


def routes() -> list[BaseRoute]:
    return [
        Route("/ping", ping, methods=["GET"]),
        Route("/health", ping, methods=["GET"]),
        Route("/version", version, methods=["GET"]),
    ]
