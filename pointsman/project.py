"""A project on disk: settings file, store and artifact folder, opened together."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from pointsman.errors import ConfigError, ProjectNotFound
from pointsman.registry import Submission
from pointsman.registry.models import Registry
from pointsman.registry.register import CompileJob, Prepared, compile_json, prepare_json
from pointsman.registry.stores import build_artifact_store
from pointsman.routing.revisions import Preflight, RouteBook
from pointsman.runners import RunnerBook, limits
from pointsman.settings import SETTINGS_FILE, Settings, write_settings_file
from pointsman.store.engine import connect, upgrade_to_head


@dataclass
class Project:
    """The store and artifacts of one project, migrated to the current schema."""

    settings: Settings
    engine: Engine
    registry: Registry
    routes: RouteBook
    runners: RunnerBook
    enforcement: limits.Enforcement

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Project:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_project(
    settings: Settings, *, must_exist: bool = True, preflight: Preflight | None = None
) -> Project:
    """Open the project the settings point at, applying pending migrations.

    `preflight` loads versions about to be routed; by default in runners of this command's
    own (a server passes one that asks its supervisor, which then keeps them running).
    """
    folder = settings.project_path()
    if must_exist and not (folder / SETTINGS_FILE).exists():
        raise ProjectNotFound(str(folder))
    engine = connect(settings.resolved_database_url())
    try:
        upgrade_to_head(engine)
        runners = RunnerBook(engine, settings.runners)
    except BaseException:
        engine.dispose()
        raise
    try:
        artifacts = build_artifact_store(settings)
    except BaseException:
        engine.dispose()
        raise
    enforcement = limits.detect(settings.runner_cgroup)

    def checked(sub: Submission, stored: Path, workdir: Path) -> Prepared:
        """Load, smoke-test and compile a new version in a process under its model's runner
        limits."""
        from pointsman.runners.oneoff import run_limited  # the forkserver: not for reading

        spec = runners.spec(sub.model)
        reply = run_limited(prepare_json, (sub, stored, workdir), spec, spec.load_timeout_s)
        return Prepared.from_json(reply)

    def compiled(job: CompileJob, workdir: Path) -> dict[str, Any]:
        """Compile a stored version in a process under its model's runner limits."""
        from pointsman.runners.oneoff import run_limited

        spec = runners.spec(job.model)
        reply: dict[str, Any] = run_limited(compile_json, (job, workdir), spec, spec.load_timeout_s)
        return reply

    registry = Registry(engine, artifacts, checked, compiled)

    def in_runners(model: str, numbers: list[int]) -> None:
        from pointsman.runners import session  # the supervisor: only for route changes

        wanted = [(registry.get_version(model, n), runners.spec(model, n)) for n in numbers]
        session.preflight(artifacts, enforcement, wanted)

    routes = RouteBook(engine, registry, preflight or in_runners)
    return Project(settings, engine, registry, routes, runners, enforcement)


def init_project(folder: Path, database_url: str = "") -> tuple[Path, bool]:
    """Create a project in `folder` (settings file, store, artifact folder); idempotent."""
    folder = folder.expanduser().resolve()
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"{folder} exists and is not a folder.")
    folder.mkdir(parents=True, exist_ok=True)
    file = folder / SETTINGS_FILE
    created = not file.exists()
    if created:
        values: dict[str, object] = {"artifact_dir": "artifacts"}
        if database_url:
            values["database_url"] = database_url
        write_settings_file(folder, values)
    return folder, created
