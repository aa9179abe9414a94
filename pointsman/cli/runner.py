"""`pointsman runner serve`: one version's runner as a process of its own, called over TCP.

On Kubernetes each model's runners are a Deployment of their own, sized and scaled apart
from the HTTP front; the front reaches them through `remote_runners`. The runner is
supervised here as beside a server: restarted when it dies, killed past its time limit.
"""

from __future__ import annotations

import signal
import threading
import time
from types import FrameType

import click

from pointsman.cli.context import Context, pass_context
from pointsman.cli.output import console
from pointsman.runners import RunDir
from pointsman.runners.directory import new_run_dir
from pointsman.runners.remote import DEFAULT_PORT, check_secret, split_address
from pointsman.runners.serving import events_of
from pointsman.runners.supervisor import Supervisor


@click.group("runner")
def runner() -> None:
    """One version's runner on its own: `pointsman runner serve MODEL VERSION --listen ...`."""


@runner.command("serve")
@click.argument("model")
@click.argument("version", type=int)
@click.option(
    "--listen",
    default=f"127.0.0.1:{DEFAULT_PORT}",
    show_default=True,
    help="host:port to listen on (0.0.0.0:7070 in a container).",
)
@pass_context
def serve(ctx: Context, model: str, version: int, listen: str) -> None:
    """Run VERSION of MODEL in a runner listening on TCP; callers prove runner_secret.

    Its limits are the version's runner settings (`pointsman runners`), read at start; one
    runner per process (more: more processes, or Deployment replicas). It listens once the
    version is loaded and warm, so a TCP probe on the port is a readiness check. SIGTERM:
    it answers what it holds, then stops.
    """
    settings = ctx.settings()
    secret = check_secret(settings.runner_secret, "pointsman runner serve")
    split_address(listen, "--listen")
    project = ctx.project()
    record = project.registry.get_version(model, version)
    spec = project.runners.spec(model, version).with_changes({"replicas": 1})
    wanted = {(model, version): (record, spec)}
    run_dir = RunDir(new_run_dir())
    supervisor = Supervisor(
        run_dir, project.registry.artifacts, lambda: wanted, project.enforcement,
        drain_s=0.0, on_event=events_of(project), listen=listen, secret=secret,
    )  # fmt: skip
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, on_signal)
    console.print(f"runner of {model} version {version} ({spec.describe()}) loading; "
                  f"it will listen on {listen}")  # fmt: skip
    supervisor.start()
    try:
        told = ""
        while not stop.wait(0.1):
            told = _tell(supervisor, listen, told)
    finally:
        supervisor.stop(timeout_s=spec.timeout_s + 5)
        run_dir.remove()


def _tell(supervisor: Supervisor, listen: str, told: str) -> str:
    """Print the runner's state when it changes (ready, or why not)."""
    runners = list(supervisor.runners.values())
    if not runners:
        return told
    state, error = runners[0].state, runners[0].error
    now = f"{state}: {error}" if error else state
    if now != told:
        stamp = time.strftime("%H:%M:%S")
        if state == "ready":
            console.print(f"{stamp} ready: listening on {listen}")
        elif error:
            console.print(f"{stamp} {state}: {error}")
    return now


COMMANDS = [runner]
