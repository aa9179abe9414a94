"""`pointsman serve`: the HTTP server for every deployed model."""

from __future__ import annotations

import os

import click
import uvicorn

from pointsman.api.app import build_app
from pointsman.cli.context import Context, console, pass_context
from pointsman.project import open_project


@click.command()
@click.option("--host", help="Address to bind (default 127.0.0.1; 0.0.0.0 for all).")
@click.option("--port", type=int, help="Port (default 8080).")
@click.option("--workers", type=int, help="Worker processes (default 1).")
@pass_context
def serve(ctx: Context, host: str | None, port: int | None, workers: int | None) -> None:
    """Serve every deployed model over HTTP."""
    settings = ctx.settings(host=host, port=port, workers=workers)
    project = open_project(settings)  # fail here, readably, rather than inside a worker
    deployed = sorted(project.routes.all_current())
    project.close()
    base = f"http://{settings.host}:{settings.port}"
    console.print(f"pointsman serving {', '.join(deployed) or 'no deployed model yet'} on {base}")
    for model in deployed:
        console.print(f"  POST {base}/v1/models/{model}/predict")
    if settings.workers == 1:
        uvicorn.run(
            build_app(settings),
            host=settings.host,
            port=settings.port,
            log_level=settings.log_level,
            access_log=False,
        )
        return
    # Worker processes rebuild the app from the environment, so hand the settings over there.
    os.environ["POINTSMAN_PROJECT"] = str(settings.project_path())
    for name in ("database_url", "default_model", "max_body_bytes", "inline_max_rows"):
        os.environ[f"POINTSMAN_{name.upper()}"] = str(getattr(settings, name))
    uvicorn.run(
        "pointsman.api.app:app_from_environment",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        log_level=settings.log_level,
        access_log=False,
    )


COMMANDS = [serve]
