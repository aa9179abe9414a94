"""`pointsman serve --http-server granian`: the same app on granian's Rust HTTP server.

granian always runs the app in worker processes of its own, so the runners, the rollups and
the change listener stay in the serve process (`serve.supervised_runners`) and every worker
rebuilds the app from the environment, as uvicorn's workers do. uvicorn's proxy-header
handling is kept in front of the app, so a client's address reads the same on both servers.
"""

from __future__ import annotations

import os
from pathlib import Path

from pointsman.errors import ConfigError
from pointsman.monitoring.logs import logging_config
from pointsman.settings import Settings

TARGET = "pointsman.api.app:proxied_app_from_environment"


def run_granian(settings: Settings, tls: dict[str, str | None]) -> None:
    try:
        from granian import Granian
        from granian.constants import Interfaces, Loops
        from granian.log import LogLevels
    except ImportError:
        raise ConfigError(
            "http_server = granian needs the granian package: pip install 'pointsman[granian]' "
            "(or serve on uvicorn, the default: --http-server uvicorn)."
        ) from None
    level = settings.server_log_level.lower()
    server = Granian(
        TARGET,
        factory=True,
        address=settings.host,
        port=settings.port,
        interface=Interfaces.ASGI,
        workers=settings.workers,
        loop=Loops.uvloop,
        log_level=LogLevels("debug" if level == "trace" else level),
        log_dictconfig=logging_config(settings.log_format, settings.server_log_level),
        log_access=False,  # pointsman's own access log (`access_log`) when asked for
        ssl_cert=Path(tls["certfile"]) if tls["certfile"] else None,
        ssl_key=Path(tls["keyfile"]) if tls["keyfile"] else None,
        respawn_failed_workers=True,  # a killed worker comes back, as under uvicorn
        working_dir=Path(os.getcwd()),
    )
    server.serve()
