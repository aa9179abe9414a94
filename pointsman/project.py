"""A project on disk: settings file, store and artifact folder, opened together."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path

from sqlalchemy.engine import Engine

from pointsman.errors import ConfigError, ProjectNotFound
from pointsman.registry import ArtifactStore, Registry
from pointsman.registry.loading import preflight
from pointsman.routing import RouteBook
from pointsman.settings import SETTINGS_FILE, Settings, write_settings_file
from pointsman.store import connect, upgrade_to_head


@dataclass
class Project:
    """The store and artifacts of one project, migrated to the current schema."""

    settings: Settings
    engine: Engine
    registry: Registry
    routes: RouteBook

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Project:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_project(settings: Settings, *, must_exist: bool = True) -> Project:
    """Open the project the settings point at, applying pending migrations."""
    folder = settings.project_path()
    if must_exist and not (folder / SETTINGS_FILE).exists():
        raise ProjectNotFound(str(folder))
    engine = connect(settings.resolved_database_url())
    upgrade_to_head(engine)
    artifacts = settings.artifact_path()
    artifacts.mkdir(parents=True, exist_ok=True)
    registry = Registry(engine, ArtifactStore(artifacts))
    routes = RouteBook(engine, registry, partial(preflight, registry))
    return Project(settings, engine, registry, routes)


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
