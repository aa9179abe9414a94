"""Runners for the command being run: started on demand, stopped when it ends."""

from __future__ import annotations

import click

from pointsman.project import Project
from pointsman.runners.session import RunnerSession


def runner_session(project: Project) -> RunnerSession:
    """A session of runner processes under the project's limits, closed with the command."""
    session = RunnerSession(project.registry.artifacts, project.enforcement, project.runners.spec)
    return click.get_current_context().with_resource(session)
