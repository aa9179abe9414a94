"""A project served in-process as a server wires it: runners, catalog, pipeline, canary."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from pointsman.api.app import wait_ready
from pointsman.catalog import Catalog
from pointsman.pipeline import Pipeline, build_pipeline
from pointsman.project import Project
from pointsman.protocols import FramePayload
from pointsman.routing import Policy
from pointsman.routing.canary import CanaryController
from pointsman.routing.revisions import RouteBook
from pointsman.runners import RunDir
from pointsman.runners.directory import new_run_dir
from pointsman.runners.serving import build_supervisor
from pointsman.types import Frame, Outcome, Prediction


@dataclass
class Serving:
    """What the tests drive: the parts of one server process, without HTTP."""

    project: Project
    catalog: Catalog
    pipeline: Pipeline
    canary: CanaryController

    def apply(self, model: str, policy: Policy) -> None:
        """Write `policy` as a new route revision and take it, as the route poll would."""
        self.project.routes.apply(model, policy, "test", "test")
        self.catalog.refresh()

    async def predict(
        self,
        model: str,
        frame: Frame,
        request_id: str | None = None,
        *,
        version: int | None = None,
        outcome: Outcome | None = None,
    ) -> Prediction:
        target = self.catalog.target(model, version)
        return await self.pipeline.predict(
            target, FramePayload(frame), outcome or Outcome("test"), request_id=request_id
        )


@asynccontextmanager
async def serving(project: Project, shadow_drain: bool = True) -> AsyncIterator[Serving]:
    """`project` served in this event loop; the shadow queue drained unless told not to."""
    run_dir = RunDir(new_run_dir())
    # Route changes wait for the new versions' runners, as they do through a server.
    project.routes = RouteBook(project.engine, project.registry, run_dir.preflight)
    supervisor = build_supervisor(project, run_dir)
    supervisor.start()
    catalog = Catalog(project, run_dir)
    catalog.refresh()
    await wait_ready(catalog, 60)  # as a server started with startup_wait_s does
    pipeline = build_pipeline(catalog, project.settings)
    canary = CanaryController(project.engine, project.routes, pipeline.stats.worker)
    drain = None
    if shadow_drain and pipeline.shadows is not None:
        drain = asyncio.create_task(pipeline.shadows.drain_forever(pipeline.run_shadow))
    try:
        yield Serving(project, catalog, pipeline, canary)
    finally:
        if drain is not None:
            drain.cancel()
        pipeline.close()
        catalog.close()
        await asyncio.to_thread(supervisor.stop)
        run_dir.remove()
