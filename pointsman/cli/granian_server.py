"""`pointsman serve --http-server granian`: the same app on granian's Rust HTTP server.

granian always runs the app in worker processes of its own, so the runners, the rollups and
the change listener stay in the serve process (`serve.supervised_runners`) and every worker
rebuilds the app from the environment, as uvicorn's workers do. uvicorn's proxy-header
handling is kept in front of the app, so a client's address reads the same on both servers.
A worker dies with the serve process (as uvicorn's single process does): a killed serve leaves
no orphan worker listening, nor, through it, the runners' forkserver.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
from multiprocessing import forkserver
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
    forget_parents_forkserver()
    return proxied_app_from_environment()


def forget_parents_forkserver() -> None:
    """granian forks its workers from the serve process, whose forkserver (the runners') is
    not the worker's child: using it (a registration's checked load) fails with
    ChildProcessError. The worker starts its own on first use, as uvicorn's spawned do."""
    state: Any = forkserver._forkserver
    alive = state._forkserver_alive_fd
    if alive is not None:
        with contextlib.suppress(OSError):
            os.close(alive)
    preload = state._preload_modules
    state.__init__()
    state._preload_modules = preload


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
