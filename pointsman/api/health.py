"""/healthz (the process answers) and /readyz (every routed version loaded and answering)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from pointsman.api.common import guarded, json_response, pipeline_of


async def healthz(request: Request, rid: str) -> Response:
    return json_response({"status": "ok"}, rid)


async def readyz(request: Request, rid: str) -> Response:
    report = pipeline_of(request).readiness()
    if not report["ready"]:
        bad = [f"{k}: {v}" for k, v in report["versions"].items() if v != "ready"]
        report["error"] = "Not ready: " + "; ".join(bad)
    return json_response(report, rid, status=200 if report["ready"] else 503)


def routes() -> list[BaseRoute]:
    return [
        Route("/healthz", guarded(healthz), methods=["GET"]),
        Route("/readyz", guarded(readyz), methods=["GET"]),
    ]
