"""`pointsman serve --http-server granian`: the same app on granian's Rust HTTP server.

granian always runs the app in worker processes of its own, so the runners and the change
listener stay in the serve process (`serve.supervised_runners`; the prediction log has its
own process on either server) and every worker rebuilds the app from the environment, as
uvicorn's workers do. uvicorn's proxy-header
handling is kept in front of the app, so a client's address reads the same on both servers.
Workers are spawned, not forked, and die with the serve process (as uvicorn's single process
does): a killed serve leaves no orphan worker listening.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
from pathlib import Path
from typing import Any

from pointsman.errors import ConfigError
from pointsman.monitoring.logs import logging_config
from pointsman.settings import Settings

TARGET = "pointsman.cli.granian_server:worker_app"
PR_SET_PDEATHSIG = 1
KEEP_ALIVE_S = 5  # uvicorn's timeout_keep_alive


def worker_app() -> Any:
    """The app of one granian worker, which ends when the serve process does, even killed."""
    from pointsman.api.app import proxied_app_from_environment

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        # Killed as it was: no clean stop, so its heartbeat ends as a killed front's does.
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux
        pass
    if str(os.getppid()) != os.environ.get("POINTSMAN_SERVE_PID"):
        sys.exit("pointsman serve stopped before this granian worker started")
    return proxied_app_from_environment()


def run_granian(settings: Settings, tls: dict[str, str | None]) -> None:
    try:
        from granian import Granian
        from granian.constants import Interfaces, Loops, SSLProtocols
        from granian.http import HTTP1Settings
        from granian.log import LogLevels
    except ImportError:
        raise ConfigError(
            "http_server = granian needs the granian package: pip install 'pointsman[granian]' "
            "(or serve on uvicorn, the default: --http-server uvicorn)."
        ) from None
    os.environ["POINTSMAN_SERVE_PID"] = str(os.getpid())  # the workers' parent
    # granian starts its workers with the default start method. Forked, a worker would
    # inherit this process's threads' locks (the runner supervisor's, the log's) mid-use and
    # its forkserver, which is not the worker's child; spawned, it starts clean, as
    # uvicorn's workers do.
    multiprocessing.set_start_method("spawn", force=True)
    level = settings.server_log_level.lower()
    server = Granian(
        TARGET,
        factory=True,
        address=settings.host,
        port=settings.port,
        interface=Interfaces.ASGI,
        workers=settings.workers,
        loop=Loops.uvloop,
        # uvicorn closes a keep-alive connection idle 5 s; granian's only bound is this one
        # (its default 30 s), which also times the reading of each request's headers.
        http1_settings=HTTP1Settings(header_read_timeout=KEEP_ALIVE_S * 1000),
        log_level=LogLevels("debug" if level == "trace" else level),
        log_dictconfig=logging_config(settings.log_format, settings.server_log_level),
        log_access=False,  # pointsman's own access log (`access_log`) when asked for
        ssl_cert=Path(tls["certfile"]) if tls["certfile"] else None,
        ssl_key=Path(tls["keyfile"]) if tls["keyfile"] else None,
        ssl_protocol_min=SSLProtocols.tls12,  # granian's default is 1.3; uvicorn takes 1.2 too
        respawn_failed_workers=True,  # a killed worker comes back, as under uvicorn
        working_dir=Path(os.getcwd()),
    )
    server.serve()
