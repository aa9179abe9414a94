"""Release tests run against a project: the sides resolved, the test set framed, the report."""

from __future__ import annotations

from typing import Any

import pandas as pd

from pointsman.gates.diff import DiffLimits, diff_report
from pointsman.gates.sides import Side, file_side, frame_for, version_side
from pointsman.project import Project
from pointsman.registry import VersionRecord
from pointsman.routing.agreement import Agreement
from pointsman.runners.session import RunnerSession


def resolve(project: Project, session: RunnerSession, model: str, spec: str) -> Side:
    """A version number of `model` (run in a runner) or a model file (loaded here)."""
    if spec.isdigit():
        return version_side(session, project.registry.get_version(model, spec))
    return file_side(spec)


def baseline_of(project: Project, model: str) -> VersionRecord:
    """The version in force: the route's primary, else the newest registered."""
    route = project.routes.find(model)
    if route is not None:
        return project.registry.get_version(model, route.primary)
    numbers = project.registry.version_numbers(model)  # ModelNotFound names the models
    return project.registry.get_version(model, max(numbers))


def run_diff(
    project: Project,
    session: RunnerSession,
    model: str,
    specs: tuple[str, str],
    data: pd.DataFrame,
    target: str | None,
    limits: DiffLimits,
) -> dict[str, Any]:
    """The differential test of B against A on `data` (framed by A's signature, or B's)."""
    sides = [resolve(project, session, model, spec) for spec in specs]
    framing = next(
        (project.registry.get_version(model, s) for s in specs if s.isdigit()),
        baseline_of(project, model),
    )
    features = data.drop(columns=[target]) if target else data
    frame = frame_for(framing.signature, features, "The test set")
    route = project.routes.find(model)
    agreement = route.policy.agreement if route else Agreement()
    a, b = (side.predict(frame) for side in sides)
    inputs = features[[n for n in framing.signature.names]]
    kept = inputs.assign(**{target: data[target]}) if target else inputs
    return {
        "model": model,
        **diff_report(kept, a, b, (sides[0].name, sides[1].name), agreement, target, limits),
    }
