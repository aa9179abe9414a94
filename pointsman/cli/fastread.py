"""The read-only commands' way to a SQLite store without SQLAlchemy or pydantic.

`pointsman models`, `versions MODEL` and `route MODEL [--history]` print what a few rows
say; importing SQLAlchemy and building the pydantic `Settings` took about half of their run.
So when the project's settings are ones read here exactly (plain text and on/off values, no
object store, no runner cgroup) and its store is a SQLite file at the newest schema, they
read the rows with the standard library's sqlite3 and build the same objects the full path
builds (`ModelSummary`, `VersionRecord` and `Route.from_row`), decoding each column as
SQLAlchemy's types do. Anything else (PostgreSQL, another setting, a pending migration, an
unknown model) returns None, and the command opens the project as every other command does,
which validates, migrates and words the errors. tests/cli/test_fastread.py holds the two
paths to the same output.
"""

from __future__ import annotations

import json
import os
import sqlite3
import tomllib
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace, TracebackType
from typing import Any
from urllib.parse import quote

from pointsman.registry.summary import ModelSummary
from pointsman.registry.versions import VersionRecord
from pointsman.routing.route import Route
from pointsman.store.revision import VERSION_TABLE, head_revision

SETTINGS_FILE = "pointsman.toml"  # settings.SETTINGS_FILE, which loads pydantic
ENV_PREFIX = "pointsman_"
# Settings any string (or, in pointsman.toml, any boolean) is valid for: skipping their
# validation loses nothing. tests/cli/test_fastread.py derives both sets from `Settings`.
TEXT = frozenset({
    "alerts_external_url", "artifact_dir", "artifact_store", "database_url", "default_model",
    "host", "log_hash_salt", "log_sink_source", "log_sink_url", "log_spool_dir",
    "redis_key_prefix", "redis_url", "runner_cgroup", "runner_dir", "runner_secret",
    "server_log_level", "smtp_from", "smtp_host", "smtp_password", "smtp_user", "tls_cert",
    "tls_key"
})  # fmt: skip
FLAGS = frozenset({
    "access_log", "auth", "listen_for_changes", "log_fsync", "log_predictions", "metrics_open",
    "smtp_starttls"
})  # fmt: skip
# Every other setting: set in the file or the environment, it sends the command the full way.
OTHER = frozenset({
    "alerts", "alerts_history_days", "alerts_interval_s", "alerts_lease_s", "drift_alert_psi",
    "drift_history_days", "drift_interval_s", "drift_max_rows", "drift_min_rows",
    "drift_warn_psi", "drift_window_s", "gate", "heartbeat_interval_s", "http_server",
    "listen_poll_interval_s", "log_format", "log_level", "log_redact", "log_retention_days",
    "log_segment_bytes", "log_ship_interval_s", "log_sink_queue_size", "log_sink_retries",
    "log_spool_budget_bytes", "log_spool_full_policy", "max_body_bytes", "max_rows_per_request",
    "max_upload_bytes", "metrics_max_clients", "port", "project", "quality_window_s",
    "rate_limit_replicas", "redis_down_policy", "refresh_interval_s", "remote_runners",
    "replica_down_after_s", "replica_down_notify", "replica_name", "request_timeout_s",
    "runner_drain_s", "runners", "shadow_queue_size", "smtp_port", "startup_wait_s",
    "tls_redirect_port", "ui_session_hours", "watchdog_every_s", "watchdog_notify", "workers"
})  # fmt: skip
SETTINGS = TEXT | FLAGS | OTHER
# The SQLAlchemy dialects whose URL names a file opened as sqlite3 opens it.
SQLITE_SCHEMES = ("sqlite://", "sqlite+pysqlite://")


# The columns read here that SQLAlchemy declares JSON and DateTime (store/tables.py; a test
# compares): decoded as its types decode them on SQLite.
JSON_COLUMNS = frozenset({"spec", "signature", "profile", "lineage", "input_example", "compiled"})
TIME_COLUMNS = frozenset({"created_at"})


class FastRead:
    """A read-only look at a project's SQLite store at the newest schema."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self.connection = connection

    @classmethod
    def open(cls, folder: Path | None) -> FastRead | None:
        """The store of the project in `folder` (`--project`; None: as `Settings` finds it),
        or None when the full path has to open it."""
        file = store_file(folder)
        if file is None:
            return None
        try:
            # rw, not ro: it never creates the file either, and its close removes the WAL
            # files as the engine's does (only SELECTs are run); timeout: the engine's.
            uri = f"file:{quote(str(file))}?mode=rw"
            connection = sqlite3.connect(uri, uri=True, timeout=30)
        except sqlite3.Error:
            return None
        reader = cls(connection)
        current = reader.rows(f"SELECT version_num FROM {VERSION_TABLE}")
        if current is None or {row.version_num for row in current} != {head_revision()}:
            reader.close()  # a new store, or a migration pending: the full path applies it
            return None
        return reader

    def close(self) -> None:
        self.connection.close()

    def __enter__(self) -> FastRead:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def rows(self, query: str, *args: Any) -> list[SimpleNamespace] | None:
        """The rows of `query` with their columns decoded; None if SQLite refused (a busy or
        damaged store: the full path words it)."""
        try:
            cursor = self.connection.execute(query, args)
            names = [d[0] for d in cursor.description]
            return [SimpleNamespace(**dict(map(_decoded, names, row))) for row in cursor]
        except sqlite3.Error:
            return None

    def models(self) -> list[ModelSummary] | None:
        """`Registry.list_models`."""
        rows = self.rows(
            "SELECT m.name, m.created_at, c.n, c.latest, r.revision, r.spec "
            "FROM models m "
            "LEFT JOIN (SELECT model_id, count(*) AS n, max(number) AS latest "
            "           FROM versions GROUP BY model_id) c ON c.model_id = m.id "
            "LEFT JOIN (SELECT model_id, max(revision) AS revision "
            "           FROM routes GROUP BY model_id) l ON l.model_id = m.id "
            "LEFT JOIN routes r ON r.model_id = m.id AND r.revision = l.revision "
            "ORDER BY m.name"
        )
        return None if rows is None else [ModelSummary.from_row(r) for r in rows]

    def route(self, model: str) -> Route | None:
        """`RouteBook.find`; None also when the model is unknown or not deployed (the full
        path's errors list what there is)."""
        rows = self.rows(
            "SELECT r.revision, r.spec, r.reason, r.created_at, r.created_by "
            "FROM routes r JOIN models m ON m.id = r.model_id WHERE m.name = ? "
            "ORDER BY r.revision DESC LIMIT 1",
            model,
        )
        return Route.from_row(model, rows[0]) if rows else None

    def history(self, model: str) -> list[Route] | None:
        """`RouteBook.history`; None when the model is unknown (a row of NULLs when it has
        no route)."""
        rows = self.rows(
            "SELECT r.revision, r.spec, r.reason, r.created_at, r.created_by "
            "FROM models m LEFT JOIN routes r ON r.model_id = m.id WHERE m.name = ? "
            "ORDER BY r.revision",
            model,
        )
        if not rows:
            return None
        return [Route.from_row(model, r) for r in rows if r.revision is not None]

    def versions(self, model: str) -> list[VersionRecord] | None:
        """`Registry.list_versions`; None when the model is unknown."""
        rows = self.rows(
            "SELECT v.number, v.sha256, v.format, v.artifact, v.entrypoint, v.signature, "
            "v.profile, v.lineage, v.input_example, v.note, v.created_at, v.created_by, "
            "v.compiled FROM models m LEFT JOIN versions v ON v.model_id = m.id "
            "WHERE m.name = ? ORDER BY v.number",
            model,
        )
        if not rows:
            return None
        return [VersionRecord.from_row(model, r) for r in rows if r.number is not None]


def _decoded(name: str, value: Any) -> tuple[str, Any]:
    """SQLAlchemy's JSON type on SQLite is json.loads, its DateTime fromisoformat; NULL is
    None for both."""
    if value is not None and name in JSON_COLUMNS:
        value = json.loads(value)
    elif value is not None and name in TIME_COLUMNS:
        value = datetime.fromisoformat(value)
    return name, value


def store_file(folder: Path | None) -> Path | None:
    """The SQLite file of the project, if its settings are read here exactly: as
    `load_settings` merges them (the environment over pointsman.toml), and as the full path
    would open the project (no side effect or warning of opening it is skipped)."""
    env = _environment()
    if env is None:
        return None
    project = folder if folder is not None else Path(env.pop("project", "."))
    project = project.expanduser().resolve()
    file = project / SETTINGS_FILE
    try:
        in_file = tomllib.loads(file.read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None  # missing or broken: the full path says which
    values = {k: v for k, v in in_file.items() if k != "project"}  # the folder wins
    values.update(env)
    for name, value in values.items():
        text = name in TEXT and isinstance(value, str)
        flag = name in FLAGS and isinstance(value, bool)  # from the file; the env's are text
        if not (text or flag):
            return None
    if values.get("artifact_store") or values.get("runner_cgroup"):
        return None  # opening the project checks these (S3 URL, cgroup, with a warning)
    artifacts = Path(values.get("artifact_dir", "artifacts")).expanduser()
    if not (project / artifacts).is_dir():
        return None  # opening the project creates it
    url = values.get("database_url") or f"sqlite:///{project / 'pointsman.db'}"
    return _sqlite_file(url)


def _environment() -> dict[str, str] | None:
    """The settings `POINTSMAN_*` variables set, by name, as pydantic-settings reads them
    (case-insensitive); None when two spellings of one name are set."""
    found: dict[str, str] = {}
    for key, value in os.environ.items():
        name = key.lower().removeprefix(ENV_PREFIX)
        if key.lower().startswith(ENV_PREFIX) and name in SETTINGS:
            if name in found:
                return None
            found[name] = value
    return found


def _sqlite_file(url: str) -> Path | None:
    """The file a `sqlite:///PATH` URL names, as SQLAlchemy's pysqlite dialect opens it;
    None for another database, a URL with options, or one whose path is escaped."""
    scheme = next((s for s in SQLITE_SCHEMES if url.startswith(s)), None)
    if scheme is None:
        return None
    rest = url.removeprefix(scheme)
    if not rest.startswith("/") or any(c in rest for c in "?%"):
        return None  # a host, a query string (uri=true, ...), or %-escapes
    database = rest[1:]
    if database in ("", ":memory:"):
        return None
    return Path(os.path.abspath(database))
