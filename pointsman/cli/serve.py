"""`pointsman serve`: the HTTP server for every deployed model."""

from __future__ import annotations

import contextlib
import json
import logging.config
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

import click
import uvicorn

from pointsman.alerts import RuleBook
from pointsman.alerts.watch import rule_configs
from pointsman.api.access import BANNER
from pointsman.api.app import build_app
from pointsman.api.http_protocol import OneSendProtocol
from pointsman.api.redirect import start_redirect_server
from pointsman.cli.context import Context, pass_context
from pointsman.cli.granian_server import run_granian
from pointsman.cli.output import console
from pointsman.cli.workers import run_workers
from pointsman.errors import ConfigError
from pointsman.logstore.log_process import LogProcess
from pointsman.monitoring import metrics
from pointsman.monitoring.exposition import prepare_multiprocess_dir, remove_multiprocess_dir
from pointsman.monitoring.logs import logging_config
from pointsman.project import open_project
from pointsman.runners import RunDir
from pointsman.runners.directory import new_run_dir
from pointsman.runners.remote import RemoteRunners
from pointsman.runners.serving import build_supervisor
from pointsman.runners.spec import usable_cpus
from pointsman.settings import Settings
from pointsman.store.changes import listener_for


@click.command()
@click.option("--host", help="Address to bind (default 127.0.0.1; 0.0.0.0 for all).")
@click.option("--port", type=int, help="Port (default 8080).")
@click.option("--workers", type=int, help="HTTP worker processes (default: one per CPU).")
@click.option("--tls-cert", help="PEM certificate file: serve HTTPS only (with --tls-key).")
@click.option("--tls-key", help="PEM private key file of --tls-cert.")
@click.option(
    "--tls-redirect-port", type=int, help="Also redirect plain HTTP on this port to HTTPS."
)
@click.option(
    "--log-format", type=click.Choice(["text", "json"]), help="Server log: text or JSON lines."
)
@click.option(
    "--access-log/--no-access-log", default=None, help="One log line per answered request."
)
@click.option(
    "--http-server",
    type=click.Choice(["uvicorn", "granian"]),
    help="HTTP server to run on (default uvicorn; granian needs pointsman[granian]).",
)
@pass_context
def serve(
    ctx: Context,
    host: str | None,
    port: int | None,
    workers: int | None,
    tls_cert: str | None,
    tls_key: str | None,
    tls_redirect_port: int | None,
    log_format: str | None,
    access_log: bool | None,
    http_server: str | None,
) -> None:
    """Serve every deployed model over HTTP (HTTPS with --tls-cert and --tls-key)."""
    settings = ctx.settings(
        host=host,
        port=port,
        workers=workers,
        tls_cert=tls_cert,
        tls_key=tls_key,
        tls_redirect_port=tls_redirect_port,
        log_format=log_format,
        access_log=access_log,
        http_server=http_server,
    )
    if not settings.workers:  # the default: use the machine
        settings = settings.model_copy(update={"workers": usable_cpus()})
    tls = tls_files(settings)
    # Fail here, readably, rather than inside a worker; closed before serving starts.
    with open_project(settings) as project:
        RuleBook(project.engine, rule_configs(settings))  # and on a bad [[alerts]] table
        RemoteRunners(settings.remote_runners, settings.runner_secret)  # and remote_runners
        deployed = sorted(project.routes.all_current())
        enforcement = project.enforcement.describe()
    # Once the settings are known good: a refused start leaves the caller's logging alone.
    logging.config.dictConfig(logging_config(settings.log_format, settings.server_log_level))
    base = f"{'https' if tls['certfile'] else 'http'}://{settings.host}:{settings.port}"
    console.print(f"pointsman serving {', '.join(deployed) or 'no deployed model yet'} on {base}")
    for model in deployed:
        console.print(f"  POST {base}/v1/models/{model}/predict")
    console.print(f"  {settings.workers} HTTP worker{'s' if settings.workers > 1 else ''} "
                  f"on {settings.http_server}; "
                  f"model runners: limits enforced by {enforcement}")  # fmt: skip
    if not settings.auth:
        console.print(f"[bold red]{BANNER}[/bold red] (auth = false in the settings)")
    if tls["certfile"] and settings.tls_redirect_port:
        start_redirect_server(settings.host, settings.tls_redirect_port, settings.port)
        console.print(f"  plain HTTP on port {settings.tls_redirect_port} redirects to HTTPS")
    # One process serves alone only on uvicorn: granian's worker is a process of its own.
    alone = settings.workers == 1 and settings.http_server == "uvicorn"
    # Summed over the processes on a scrape: the workers' and the runner supervisor's.
    metrics_dir = prepare_multiprocess_dir(1 if alone else settings.workers + 1)
    # The prediction log is shipped and rolled up off the HTTP workers, in a process of its
    # own, whatever their number; stopped after them, it ships what they left.
    log_process = LogProcess(
        settings, logging_config(settings.log_format, settings.server_log_level)
    )
    log_process.start()
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    terminated = False
    try:
        if alone:
            run(settings, tls)  # the app supervises its runners itself
        else:
            with supervised_runners(settings):
                run(settings, tls)
    except Terminated:
        terminated = True
    finally:
        signal.signal(signal.SIGTERM, previous)  # a second SIGTERM ends the stop at once
        log_process.stop()
        remove_multiprocess_dir(metrics_dir)
    if terminated:
        signal.raise_signal(signal.SIGTERM)  # the exit status a supervisor expects of it


class Terminated(BaseException):
    """SIGTERM once uvicorn has shut down: a single-process uvicorn raises the signal again
    after its shutdown, which by default would end this process before the log process has
    shipped what the worker left."""


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    raise Terminated


@contextlib.contextmanager
def supervised_runners(settings: Settings) -> Iterator[None]:
    """The runners of every worker, supervised from this process; workers find them by the
    folder in POINTSMAN_RUNNER_DIR."""
    metrics.use_multiprocess_values()  # the supervisor's metrics summed with the workers'
    project = open_project(settings)
    run_dir = RunDir(new_run_dir())
    listener = listener_for(project.engine, settings.listen_for_changes)
    supervisor = build_supervisor(project, run_dir, listener)
    supervisor.start()
    if listener is not None:
        listener.start()
    os.environ["POINTSMAN_RUNNER_DIR"] = str(run_dir.root)
    try:
        yield
    finally:
        os.environ.pop("POINTSMAN_RUNNER_DIR", None)
        if listener is not None:
            listener.stop()
        supervisor.stop()
        run_dir.remove()
        project.close()


def run(settings: Settings, tls: dict[str, str | None]) -> None:
    """uvicorn in this process, or as a supervisor of `workers` processes; or granian."""
    if settings.http_server == "granian":
        hand_over(settings)
        run_granian(settings, tls)
        return
    if settings.workers == 1:
        uvicorn.run(
            build_app(settings, ships_log=False),  # the log process ships
            host=settings.host,
            port=settings.port,
            log_config=logging_config(settings.log_format, settings.server_log_level),
            log_level=settings.server_log_level,
            access_log=False,
            ssl_certfile=tls["certfile"],
            ssl_keyfile=tls["keyfile"],
            http=OneSendProtocol,  # an answer's head and body in one send
        )
        return
    hand_over(settings)
    config = uvicorn.Config(
        "pointsman.api.app:app_from_environment",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        log_config=logging_config(settings.log_format, settings.server_log_level),
        log_level=settings.server_log_level,
        access_log=False,
        ssl_certfile=tls["certfile"],
        ssl_keyfile=tls["keyfile"],
        http=OneSendProtocol,
    )
    run_workers(config)


def hand_over(settings: Settings) -> None:
    """Worker processes rebuild the app from the environment: hand the settings over there."""
    os.environ["POINTSMAN_PROJECT"] = str(settings.project_path())
    names = (
        "database_url", "default_model", "max_body_bytes", "auth", "startup_wait_s",
        "metrics_open", "access_log", "port",
    )  # fmt: skip
    for name in names:
        os.environ[f"POINTSMAN_{name.upper()}"] = str(getattr(settings, name))
    for name in settings.model_fields_set:  # prediction-log options given on the command line
        if name.startswith("log_"):
            value = settings.model_dump(mode="json")[name]
            text = value if isinstance(value, str) else json.dumps(value)
            os.environ[f"POINTSMAN_{name.upper()}"] = text


def tls_files(settings: Settings) -> dict[str, str | None]:
    """uvicorn's ssl options from the settings; ConfigError when half set or unreadable."""
    if not settings.tls_cert and not settings.tls_key:
        return {"certfile": None, "keyfile": None}
    if not (settings.tls_cert and settings.tls_key):
        raise ConfigError("TLS needs both --tls-cert and --tls-key (tls_cert, tls_key).")
    for what, name in (("certificate", settings.tls_cert), ("key", settings.tls_key)):
        if not Path(name).expanduser().is_file():
            raise ConfigError(f"TLS {what} file {name} does not exist.")
    cert = str(Path(settings.tls_cert).expanduser().resolve())
    key = str(Path(settings.tls_key).expanduser().resolve())
    return {"certfile": cert, "keyfile": key}


COMMANDS = [serve]
