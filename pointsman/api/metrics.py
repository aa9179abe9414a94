"""GET /metrics: Prometheus text exposition of every worker's metrics (see monitoring)."""

from __future__ import annotations

import anyio.to_thread
from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from pointsman.api.common import catalog_of, endpoint, project_of
from pointsman.monitoring.exposition import scrape


async def metrics(request: Request, rid: str) -> Response:
    """Every family in the Prometheus text format 0.0.4 (what every scraper reads)."""
    catalog, worker = catalog_of(request), request.app.state.worker

    def collect() -> bytes:
        worker.sample_metrics()  # this worker's sampled figures, fresh
        project = project_of(request)
        window_s = project.settings.quality_window_s
        return scrape(lambda: catalog.snapshot.routes, project.engine, window_s)

    body = await anyio.to_thread.run_sync(collect)
    return Response(body, media_type=CONTENT_TYPE_PLAIN_0_0_4)


def routes() -> list[BaseRoute]:
    return [Route("/metrics", endpoint(metrics), methods=["GET"])]
