"""build_app: the ASGI application serving every deployed model of a project."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import anyio.to_thread
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp

from pointsman import __version__
from pointsman.api import (
    access,
    admin,
    alerts,
    console,
    errors,
    health,
    inference,
    jobs,
    keys,
    metrics,
    mlflow,
    openapi_models,
    outcomes,
    predictions,
    runners,
    uploads,
    v1,
    v2,
)
from pointsman.api.fastpath import ServingApp, fast_routes
from pointsman.api.openapi import build_openapi
from pointsman.catalog import Catalog
from pointsman.errors import PointsmanError
from pointsman.logstore.roller import Roller
from pointsman.logstore.shipping import Shipping
from pointsman.monitoring.exposition import worker_exits
from pointsman.pipeline import build_pipeline
from pointsman.project import open_project
from pointsman.runners import RunDir
from pointsman.runners.directory import new_run_dir
from pointsman.runners.remote import RemoteRunners
from pointsman.runners.serving import build_supervisor
from pointsman.settings import Settings, load_settings
from pointsman.store.changes import listener_for
from pointsman.ui import ConsoleParts, console_mount
from pointsman.worker import Worker

log = logging.getLogger("pointsman.api")


def build_app(settings: Settings, *, ships_log: bool = True) -> FastAPI:
    """The app for the project `settings` point at; models load in its lifespan.

    `ships_log`: False when `pointsman serve` ships and rolls up the prediction log in a
    process of its own (an app with runners of its own does both in threads otherwise).
    """

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # `pointsman serve` supervises the runners and names their folder; an app on its
        # own (tests, another ASGI server) supervises runners of its own.
        own = not settings.runner_dir
        run_dir = RunDir(new_run_dir() if own else Path(settings.runner_dir))
        remote = RemoteRunners(settings.remote_runners, settings.runner_secret)
        preflight = remote.local_only(run_dir.preflight)
        project = await anyio.to_thread.run_sync(
            functools.partial(open_project, settings, preflight=preflight)
        )
        # One listening connection per process: pushed changes reach worker and supervisor.
        listener = listener_for(project.engine, settings.listen_for_changes)
        supervisor = build_supervisor(project, run_dir, listener) if own else None
        # Alone, the app also ships and rolls up the prediction log (else `pointsman serve`
        # does, in its log process).
        alone = own and ships_log
        shipping = None
        if alone and settings.log_predictions:
            shipping = Shipping(settings, project.engine)
        roller = None
        if alone:
            roller = Roller(project.engine, outage=shipping.outage if shipping else None)
        if supervisor is not None:
            supervisor.start()
        if roller is not None:
            roller.start()
        if shipping is not None:
            shipping.start()
        catalog = Catalog(project, run_dir)
        await anyio.to_thread.run_sync(catalog.refresh)
        await wait_ready(catalog, settings.startup_wait_s)
        pipeline = build_pipeline(catalog, settings, shipping)
        await anyio.to_thread.run_sync(access.open_gate, gate, project)
        worker = Worker(project, catalog, pipeline, gate.keys, listener)
        worker.start()
        if listener is not None:
            listener.start()
        app.state.project, app.state.catalog = project, catalog
        app.state.pipeline, app.state.worker = pipeline, worker
        app.state.listener = listener
        app.state.console = ConsoleParts(gate.keys, invoke, settings.ui_session_hours)
        # What start-up built lives as long as the server: out of the collector's sight, a
        # full collection no longer walks it (it took ~100 ms under load, stalling /healthz).
        gc.freeze()
        log.info("serving %s", ", ".join(catalog.deployed_models()) or "no deployed model yet")
        try:
            yield
        finally:
            if listener is not None:
                await anyio.to_thread.run_sync(listener.stop)
            await worker.stop()
            pipeline.close()
            catalog.close()
            await access.close_gate(gate)
            if shipping is not None:  # after the pipeline closed its spool: ships it whole
                await anyio.to_thread.run_sync(shipping.stop)
            if roller is not None:  # after the last shipping
                await anyio.to_thread.run_sync(roller.stop)
            if supervisor is not None:
                await anyio.to_thread.run_sync(supervisor.stop)
                run_dir.remove()
            project.close()
            worker_exits()

    app = ServingApp(
        title="pointsman",
        version=__version__,
        lifespan=lifespan,
        description="One stable endpoint per model, in four protocols.",
    )
    # The predict paths are plain Starlette routes: no per-request dependency solving.
    modules = (
        health,
        inference,
        v1,
        v2,
        mlflow,
        admin,
        uploads,
        runners,
        keys,
        predictions,
        outcomes,
        alerts,
        jobs,
        metrics,
    )
    for module in modules:
        app.router.routes.extend(module.routes())
    gate = access.Gate(enabled=settings.auth)
    openapi_models.use_openapi_route(app, gate)
    table = access.table_for(settings.metrics_open)
    access.protect(app.router.routes, gate, table)
    app.fast_routes = fast_routes(inference.routes(), gate, table)
    app.has_access_log = settings.access_log

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build_openapi(app, table, settings.max_rows_per_request)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    # The console checks its own session (a cookie, not a key) on every page.
    app.router.routes.append(console_mount())
    invoke = console.invoker(app)
    app.add_exception_handler(PointsmanError, errors.pointsman_error)
    app.add_exception_handler(HTTPException, errors.http_error)
    app.add_exception_handler(RequestValidationError, errors.validation_error)
    app.add_exception_handler(Exception, errors.unexpected_error)
    return app


async def wait_ready(catalog: Catalog, wait_s: float) -> None:
    """Up to `wait_s`: until every routed version has a warm runner (then serve anyway)."""
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline and not catalog.readiness()["ready"]:
        if catalog.remote:
            await catalog.connect()  # remote runners are ready once this process is connected
        if catalog.has_failed():
            return  # a version that cannot load will not be ready by waiting
        await asyncio.sleep(0.05)


def app_from_environment() -> FastAPI:
    """Factory for `uvicorn --factory` and worker processes: settings from POINTSMAN_*."""
    return build_app(load_settings())


def proxied_app_from_environment() -> ASGIApp:
    """The same, behind uvicorn's proxy-header handling, for a server without it (granian):
    X-Forwarded-For and -Proto from FORWARDED_ALLOW_IPS (default 127.0.0.1), as on uvicorn."""
    from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

    trusted = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
    app: Any = app_from_environment()  # uvicorn types ASGI apps apart from Starlette
    proxied: Any = ProxyHeadersMiddleware(app, trusted_hosts=trusted)
    return cast(ASGIApp, proxied)
