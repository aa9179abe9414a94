"""Settings: each option once, with its default, environment variable and help text.

Read once by the CLI (or `build_app`) from, in order of precedence: command-line flags,
`POINTSMAN_*` environment variables, the project's `pointsman.toml`, the defaults below.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from pointsman.errors import ConfigError

SETTINGS_FILE = "pointsman.toml"


class Settings(BaseSettings):
    """Everything an operator can set. Every field is documented in docs/settings.md."""

    model_config = SettingsConfigDict(env_prefix="POINTSMAN_", extra="forbid")

    project: Path = Field(
        default=Path("."),
        description="Project folder: holds pointsman.toml, the SQLite database and artifacts.",
    )
    database_url: str = Field(
        default="",
        description="SQLAlchemy URL of the store. Empty: SQLite file pointsman.db in the "
        "project. PostgreSQL: postgresql+psycopg://user@host:5432/db.",
    )
    artifact_dir: str = Field(
        default="artifacts",
        description="Folder of stored model artifacts, relative to the project folder.",
    )
    default_model: str = Field(
        default="",
        description="Model answering MLflow's bare /invocations. Empty: the only deployed model.",
    )
    host: str = Field(default="127.0.0.1", description="Address `pointsman serve` binds to.")
    port: int = Field(default=8080, ge=0, le=65535, description="Port `pointsman serve` binds.")
    workers: int = Field(default=1, ge=1, le=64, description="Worker processes for serve.")
    max_body_bytes: int = Field(
        default=16 * 1024 * 1024,
        ge=1024,
        description="Largest request body accepted; larger bodies get 413.",
    )
    inline_max_rows: int = Field(
        default=64,
        ge=0,
        description="Batches up to this many rows run on the event loop; larger ones in a "
        "thread, so one big batch cannot stall small requests.",
    )
    refresh_interval_s: float = Field(
        default=0.5,
        gt=0,
        description="How often a server checks the store's change counter for new routes.",
    )
    shadow_queue_size: int = Field(
        default=1000,
        ge=1,
        description="Shadow copies waiting to run; past this, copies are dropped and counted "
        "so that shadows never slow the primary.",
    )
    log_level: str = Field(default="info", description="Server log level.")

    def project_path(self) -> Path:
        return self.project.expanduser().resolve()

    def resolved_database_url(self) -> str:
        """The store URL, defaulting to the project's SQLite file."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.project_path() / 'pointsman.db'}"

    def artifact_path(self) -> Path:
        path = Path(self.artifact_dir).expanduser()
        return path if path.is_absolute() else self.project_path() / path


def load_settings(project: Path | None = None, **overrides: Any) -> Settings:
    """Settings for a project: its pointsman.toml, then environment, then `overrides`."""
    try:
        base = Settings() if project is None else Settings(project=project)
        folder = base.project_path()
        values: dict[str, Any] = {}
        file = folder / SETTINGS_FILE
        if file.exists():
            try:
                values = tomllib.loads(file.read_text())
            except tomllib.TOMLDecodeError as exc:
                raise ConfigError(f"{file} is not valid TOML: {exc}") from exc
        env_set = base.model_fields_set
        values = {k: v for k, v in values.items() if k not in env_set}
        merged = {**values, **{k: getattr(base, k) for k in env_set}}
        merged.update({k: v for k, v in overrides.items() if v is not None})
        merged["project"] = folder
        return Settings(**merged)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise ConfigError(f"Invalid settings: {problems}.") from exc


def write_settings_file(folder: Path, values: dict[str, Any]) -> Path:
    """Write a commented pointsman.toml holding `values`."""
    lines = ["# pointsman project settings; every option is in docs/settings.md", ""]
    for key, value in values.items():
        if isinstance(value, str):
            escaped = value.replace("\\", "\\\\").replace('"', '\\"')
            lines.append(f'{key} = "{escaped}"')
        else:
            lines.append(f"{key} = {value}")
    path = folder / SETTINGS_FILE
    path.write_text("\n".join(lines) + "\n")
    return path
