"""What every command gets: the global options, the settings and the open project."""

from __future__ import annotations

from collections.abc import Callable
from functools import update_wrapper
from pathlib import Path
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar

import click

from pointsman.cli.fastread import FastRead

if TYPE_CHECKING:
    from pointsman.project import Project
    from pointsman.settings import Settings

P = ParamSpec("P")
R = TypeVar("R")


class Context:
    """What every command gets: where the project is, and whether to show tracebacks."""

    def __init__(self, folder: Path | None, debug: bool) -> None:
        self.folder = folder
        self.debug = debug

    @classmethod
    def current(cls) -> Context:
        """The Context of the running command, from the global options (--project, --debug)."""
        root = click.get_current_context().find_root()
        if not isinstance(root.obj, cls):
            root.obj = cls(root.params.get("project"), bool(root.params.get("debug")))
        return root.obj

    def settings(self, **overrides: Any) -> Settings:
        """The settings of the project folder (`--project`), with `overrides` on top."""
        # pydantic loads here, not with the module: commands that read through `fastread`
        # run without it (and without SQLAlchemy, which `project` loads).
        from pointsman.settings import load_settings

        return load_settings(self.folder, **overrides)

    def fast_read(self) -> FastRead | None:
        """The project's SQLite store read without SQLAlchemy, closed when the command ends;
        None when the command has to open the project (`fastread` says when)."""
        reader = FastRead.open(self.folder)
        return None if reader is None else click.get_current_context().with_resource(reader)

    def project(self) -> Project:
        """The project, open until the command ends; closed then even if the command fails."""
        from pointsman.project import open_project

        return click.get_current_context().with_resource(open_project(self.settings()))


def pass_context(command: Callable[Concatenate[Context, P], R]) -> Callable[P, R]:
    """Give the decorated command the Context as its first argument."""

    def with_context(*args: P.args, **kwargs: P.kwargs) -> R:
        return command(Context.current(), *args, **kwargs)

    return update_wrapper(with_context, command)
