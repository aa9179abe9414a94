"""What every command shares: the context, the consoles, and error handling."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from pointsman.errors import PointsmanError
from pointsman.project import Project, open_project
from pointsman.settings import Settings, load_settings

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


class Context:
    """What every command gets: where the project is, and whether to show tracebacks."""

    def __init__(self, folder: Path | None, debug: bool) -> None:
        self.folder = folder
        self.debug = debug

    def settings(self, **overrides: Any) -> Settings:
        """The settings of the project folder (`--project`), with `overrides` on top."""
        return load_settings(self.folder, **overrides)

    def project(self) -> Project:
        """The project, open until the command ends; closed then even if the command fails."""
        return click.get_current_context().with_resource(open_project(self.settings()))


pass_context = click.make_pass_decorator(Context)


class Group(click.Group):
    """Turns every error into one readable line (the traceback only with --debug)."""

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
        except Exception as exc:
            if _debug(ctx):
                raise
            err_console.print(
                f"[red]unexpected error:[/red] {type(exc).__name__}: {exc} "
                "(run with --debug for the traceback)"
            )
            sys.exit(1)


def _debug(ctx: click.Context) -> bool:
    obj = ctx.find_object(Context)
    return bool(obj and obj.debug)
