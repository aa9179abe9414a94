"""Release tests run against a project: the sides resolved, the test set framed, the report."""

from __future__ import annotations

from typing import Any

import pandas as pd

from pointsman.errors import BadRequest
from pointsman.gates.bench import BenchLimits, BenchPlan, bench_failures, run_bench
from pointsman.gates.diff import DiffLimits, diff_report
from pointsman.gates.sides import Side, file_side, frame_for, version_side
from pointsman.project import Project
from pointsman.registry import VersionRecord
from pointsman.routing.agreement import Agreement
from pointsman.runners.session import RunnerSession
from pointsman.types import Frame
from pointsman.validation.policy import ValidationPolicy
from pointsman.validation.report import validate_table


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


def bench_frames(
    record: VersionRecord, data: pd.DataFrame | None, sizes: tuple[int, ...]
) -> dict[int, Frame]:
    """Frames of each size from the test set (or the version's input example), repeated."""
    if data is None:
        if not record.input_example:
            raise BadRequest(
                f"{record.model} version {record.number} has no input example; give --data "
                "with rows of its inputs."
            )
        data = pd.DataFrame(record.input_example)
    if data.empty:
        raise BadRequest("The test set has no rows; give --data with rows of the model's inputs.")
    out = {}
    for size in sizes:
        picked = data.iloc[[i % len(data) for i in range(size)]].reset_index(drop=True)
        out[size] = frame_for(record.signature, picked, "The test set")
    return out


def run_bench_check(
    project: Project,
    session: RunnerSession,
    model: str,
    numbers: list[str],
    data: pd.DataFrame | None,
    plan: BenchPlan,
    limits: BenchLimits,
) -> dict[str, Any]:
    """The benchmark of the version in force and `numbers`, side by side, and its verdict."""
    baseline = baseline_of(project, model)
    records = [baseline] + [
        r for r in (project.registry.get_version(model, n) for n in numbers)
        if r.number != baseline.number
    ]  # fmt: skip
    frames = bench_frames(baseline, data, plan.rows)
    results = run_bench(session, records, frames, plan)
    failures = bench_failures(results, f"v{baseline.number}", limits)
    return {
        "model": model,
        "baseline": f"v{baseline.number}",
        "plan": {"rows": list(plan.rows), "concurrency": list(plan.concurrency),
                 "requests": plan.requests},
        "limits": {"max_p99_ratio": limits.max_p99_ratio, "slack_ms": limits.slack_ms},
        "versions": results,
        "failures": failures,
        "passed": not failures,
    }  # fmt: skip


def run_gate(
    project: Project,
    session: RunnerSession,
    model: str,
    version: str,
    data: pd.DataFrame,
    target: str | None,
    text_source: bool = True,
) -> dict[str, Any]:
    """Validation of the test set, the differential test and the benchmark of `version`
    against the version in force, under the `[gate]` thresholds; one verdict."""
    limits = project.settings.gate
    record = project.registry.get_version(model, version)
    baseline = baseline_of(project, model)
    route = project.routes.find(model)
    policy = route.policy.validation if route else ValidationPolicy()
    features = data.drop(columns=[target]) if target else data
    checked = validate_table(
        model, record.number, features, record.signature, record.profile, policy,
        text_source=text_source,
    )  # fmt: skip
    refused = checked.refused_rows / checked.rows if checked.rows else 0.0
    validation = {"rows": checked.rows, "refused_rows": checked.refused_rows,
                  "flagged_rows": checked.flagged_rows, "refused_rate": refused}  # fmt: skip
    failures = []
    if refused > limits.max_refused_rate:
        failures.append(
            f"validation: {refused:.2%} of test rows would be refused "
            f"(allowed {limits.max_refused_rate:.2%})"
        )
    specs = (str(baseline.number), str(record.number))
    diff_limits = DiffLimits(limits.max_flip_rate, limits.max_mean_abs_diff)
    differential = run_diff(project, session, model, specs, data, target, diff_limits)
    failures += [f"diff: {f}" for f in differential["failures"]]
    plan = BenchPlan(
        tuple(limits.bench_rows), tuple(limits.bench_concurrency), limits.bench_requests
    )
    benchmark = run_bench_check(
        project, session, model, [str(record.number)], features, plan,
        BenchLimits(limits.max_p99_ratio, limits.bench_slack_ms),
    )  # fmt: skip
    failures += [f"bench: {f}" for f in benchmark["failures"]]
    return {
        "model": model, "version": record.number, "baseline": baseline.number,
        "thresholds": limits.model_dump(), "validation": validation, "diff": differential,
        "bench": benchmark, "failures": failures, "passed": not failures,
    }  # fmt: skip
