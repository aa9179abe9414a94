"""/healthz (the process answers) and /readyz (every routed version loaded and answering)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from pointsman.api.common import catalog_of, endpoint, json_response
from pointsman.catalog import not_ready_message


async def healthz(request: Request, rid: str) -> Response:
    return json_response({"status": "ok"}, rid)


async def readyz(request: Request, rid: str) -> Response:
    report = catalog_of(request).readiness()
    if not report["ready"]:
        report["error"] = not_ready_message(report)
    return json_response(report, rid, status=200 if report["ready"] else 503)


def routes() -> list[BaseRoute]:
    return [
        Route("/healthz", endpoint(healthz), methods=["GET"]),
        Route("/readyz", endpoint(readyz), methods=["GET"]),
    ]
