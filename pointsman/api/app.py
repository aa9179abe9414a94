"""build_app: the ASGI application serving every deployed model of a project."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import anyio.to_thread
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException

from pointsman import __version__
from pointsman.api import (
    access,
    admin,
    alerts,
    errors,
    health,
    keys,
    metrics,
    mlflow,
    predict,
    predictions,
    v1,
    v2,
)
from pointsman.errors import PointsmanError
from pointsman.monitoring.exposition import worker_exits
from pointsman.pipeline import Pipeline
from pointsman.project import open_project
from pointsman.settings import Settings, load_settings

log = logging.getLogger("pointsman.api")


def build_app(settings: Settings) -> FastAPI:
    """The app for the project `settings` point at; models load in its lifespan."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        project = await anyio.to_thread.run_sync(open_project, settings)
        pipeline = Pipeline(project)
        app.state.project = project
        await anyio.to_thread.run_sync(pipeline.start)
        app.state.pipeline = pipeline
        await anyio.to_thread.run_sync(access.open_gate, gate, project)
        background = asyncio.create_task(pipeline.run_background())
        key_poll = asyncio.create_task(access.poll_keys(gate, settings.refresh_interval_s))
        log.info("serving %s", ", ".join(pipeline.deployed_models()) or "no deployed model yet")
        try:
            yield
        finally:
            for task in (background, key_poll):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            access.close_gate(gate)
            pipeline.close()
            project.close()
            worker_exits()

    app = FastAPI(
        title="pointsman",
        version=__version__,
        lifespan=lifespan,
        description="One stable endpoint per model, in four protocols.",
    )
    # The predict paths are plain Starlette routes: no per-request dependency solving.
    modules = (health, predict, v1, v2, mlflow, admin, keys, predictions, alerts, metrics)
    for module in modules:
        app.router.routes.extend(module.routes())
    gate = access.Gate(enabled=settings.auth)
    access.protect(app.router.routes, gate, access.table_for(settings.metrics_open))
    app.add_exception_handler(PointsmanError, errors.pointsman_error)
    app.add_exception_handler(HTTPException, errors.http_error)
    app.add_exception_handler(RequestValidationError, errors.validation_error)
    app.add_exception_handler(Exception, errors.unexpected_error)
    return app


def app_from_environment() -> FastAPI:
    """Factory for `uvicorn --factory` and worker processes: settings from POINTSMAN_*."""
    return build_app(load_settings())
