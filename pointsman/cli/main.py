"""The `pointsman` command: global options, error handling and the table of commands.

Each command's module is imported only when that command runs: `pointsman --help` lists them
from the table below, so that it answers at once instead of loading the server, pandas and
scikit-learn first (click's "lazily loading subcommands").
"""

from __future__ import annotations

import atexit
import gc
import importlib
import logging
import os
import sys
import threading
from pathlib import Path
from typing import Any

import click

from pointsman import __version__
from pointsman.cli.output import err_console
from pointsman.errors import PointsmanError

# name: ("module:attribute", the first paragraph of its docstring, for --help).
# tests/cli/test_main.py checks these against the commands themselves.
TABLE: dict[str, tuple[str, str]] = {
    "ab": (
        "ab:ab",
        "Which arm of MODEL wins: quality per arm, difference, significance, sample needed.",
    ),
    "alerts": (
        "alerts:alerts",
        "Alert rules: a metric over a window, a severity, and who to tell.",
    ),
    "artifacts": (
        "artifacts:artifacts",
        "Stored artifacts: check them against the sha256 each version recorded.",
    ),
    "audit": (
        "audit:audit",
        "Every admin action: register, deploy, route changes, promote, rollback, keys.",
    ),
    "backup": (
        "backup:backup",
        "Back up the store and every version's artifacts into the new folder OUT, while servers "
        "keep serving (SQLite: its online backup; PostgreSQL: pg_dump).",
    ),
    "batch": (
        "batch:batch",
        "Score every row of INPUT (CSV/Parquet files, a folder, a glob, s3://, URL#table) with "
        "MODEL into OUTPUT: kept columns, prediction, probabilities, version, status and job id.",
    ),
    "bench": (
        "bench:bench",
        "Time VERSIONs of MODEL against the version in force, side by side in one run.",
    ),
    "canary": (
        "canary:canary",
        "Move VERSION of MODEL through traffic steps while its gates hold against the baseline.",
    ),
    "compile": (
        "models:compile_version",
        "Compile VERSION of MODEL to ONNX and check it against the original, row for row.",
    ),
    "demo": (
        "demo:demo",
        "Create FOLDER with a churn model in two versions, deploy v1 and serve it.",
    ),
    "deploy": (
        "routes:deploy",
        "Make VERSION the version that answers MODEL (a new route revision).",
    ),
    "diff": (
        "diff:diff",
        "Compare B's answers with A's on a test set, row by row and on average.",
    ),
    "drift": (
        "drift:drift",
        "Compare MODEL's recent inputs and predictions with each version's training data.",
    ),
    "explain": (
        "explain:explain",
        "What a request got, from which exact version, and whether that version still says so.",
    ),
    "export": (
        "export:export",
        "Write a model's prediction records, oldest first, one row per request and role.",
    ),
    "gate": (
        "gate:gate",
        "Validate the test set, diff VERSION against the version in force and benchmark them.",
    ),
    "init": (
        "project:init",
        "Create a project in FOLDER (default: --project or the current folder).",
    ),
    "jobs": (
        "batch:jobs",
        "Batch jobs, newest first: `pointsman jobs`, `jobs show ID`, `jobs resume ID`, "
        "`jobs cancel ID`.",
    ),
    "keys": ("keys:keys", "API keys: who may call which model, and how often."),
    "kubernetes": (
        "kubernetes:kubernetes",
        "Kubernetes manifests: `pointsman kubernetes render` writes the routed versions' runners.",
    ),
    "log": (
        "log:log",
        "The prediction log: `pointsman log MODEL [filters]`, `pointsman log prune`.",
    ),
    "migrate": (
        "project:migrate",
        "Apply the store's pending migrations and say which revision it is at.",
    ),
    "models": ("models:list_models", "List models, their versions and what is deployed."),
    "outcomes": (
        "outcomes:outcomes",
        "Outcomes: the true values of predictions, by request id or by the route's outcome key.",
    ),
    "predict": (
        "predict:predict",
        'Predict with MODEL on PAYLOAD ({"rows": [...]} or {"columns": [...], "data": [...]}).',
    ),
    "profile": (
        "validate:profile",
        "Show the reference profile of MODEL VERSION (default: the routed one).",
    ),
    "promote": (
        "routes:promote",
        "Make VERSION the sole primary of MODEL; a running canary of it ends as promoted.",
    ),
    "quality": (
        "quality:quality",
        "Score MODEL's predictions against their outcomes, per version, role and window.",
    ),
    "register": ("models:register", "Store ARTIFACT as a new version of MODEL."),
    "replay": (
        "replay:replay",
        "Run logged inputs on version --to; report agreement, changed labels, probability and "
        "latency differences (answered records only; shadows unless --role says otherwise).",
    ),
    "restore": (
        "backup:restore",
        "Restore a backup made by `pointsman backup` into this project (servers stopped), then "
        "verify every artifact against its sha256. Exit 1 if one does not match.",
    ),
    "rollback": (
        "routes:rollback",
        "Put MODEL's previous route revision back in force (as a new revision).",
    ),
    "route": (
        "routes:route",
        "Show or change MODEL's traffic policy; options not given keep their current values.",
    ),
    "runner": (
        "runner:runner",
        "One version's runner on its own: `pointsman runner serve MODEL VERSION --listen ...`.",
    ),
    "runners": (
        "runners:runners",
        "Show or change the runner processes of MODEL: replicas, CPU, memory, time per call.",
    ),
    "serve": (
        "serve:serve",
        "Serve every deployed model over HTTP (HTTPS with --tls-cert and --tls-key).",
    ),
    "show": ("models:show", "Show one version: signature, profile, lineage."),
    "validate": (
        "validate:validate",
        "Check every row of DATA (CSV or Parquet) as the server checks requests to MODEL.",
    ),
    "versions": ("models:list_versions", "List the versions of MODEL."),
}


class LazyGroup(click.Group):
    """Commands imported when they run; every error turned into one readable line."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(TABLE)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in TABLE:
            return None
        module, _, attribute = TABLE[cmd_name][0].partition(":")
        # Importing makes hardly any garbage, yet the collector would walk the new modules'
        # objects again and again as they are made (a tenth of a batch job's start-up).
        collecting = gc.isenabled()
        gc.disable()
        try:
            command = getattr(importlib.import_module(f"pointsman.cli.{module}"), attribute)
        finally:
            if collecting:
                gc.enable()
        if not isinstance(command, click.Command):
            raise TypeError(f"pointsman.cli.{module}.{attribute} is not a click command")
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The command list of --help, from the table: no command module is imported."""
        names = self.list_commands(ctx)
        limit = formatter.width - 6 - max(len(name) for name in names)
        # A stand-in per command shortens the text exactly as click shortens the real ones.
        rows = [(n, click.Command(n, help=TABLE[n][1]).get_short_help_str(limit)) for n in names]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except PointsmanError as exc:
            if _debug(ctx):
                raise
            err_console.print(f"[red]error:[/red] {exc.message}")
            sys.exit(1)
        except KeyboardInterrupt:
            sys.exit(130)
        except BrokenPipeError:  # `pointsman ... | head`: the reader left; say nothing more
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            sys.exit(141)
        except Exception as exc:
            if _debug(ctx):
                raise
            err_console.print(
                f"[red]unexpected error:[/red] {type(exc).__name__}: {exc} "
                "(run with --debug for the traceback)"
            )
            sys.exit(1)


def _debug(ctx: click.Context) -> bool:
    return bool(ctx.find_root().params.get("debug"))


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--project",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="POINTSMAN_PROJECT",
    help="Project folder (default: the current folder).",
)
@click.option("--debug", is_flag=True, help="Show tracebacks.")
@click.version_option(__version__, prog_name="pointsman")
def cli(project: Path | None, debug: bool) -> None:
    """pointsman: run trained models in production, one stable endpoint per model."""
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING)


_without_teardown = False


def exit_without_teardown() -> None:
    """Have this process end without the interpreter's teardown, which frees every object
    of every module one by one: half a CPU-second once pandas and scikit-learn are loaded.
    For a command whose work is written and closed when it returns (a batch job)."""
    global _without_teardown
    _without_teardown = True


def main() -> None:
    try:
        cli(prog_name="pointsman")
    except SystemExit as done:
        if _without_teardown:
            _exit_now(done.code)
        raise


def _exit_now(code: object) -> None:
    """os._exit once what an exit does that matters is done: the atexit handlers run and
    the output flushed. Not while a non-daemon thread runs: a normal exit waits for it."""
    if any(t is not threading.main_thread() and not t.daemon for t in threading.enumerate()):
        return
    status = code if isinstance(code, int) else 0 if code is None else 1
    if not isinstance(code, int | None):
        print(code, file=sys.stderr)  # as SystemExit("message") would
    atexit._run_exitfuncs()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (BrokenPipeError, ValueError):
        pass
    os._exit(status)
