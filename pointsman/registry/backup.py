"""Backup and restore of a project's store and artifacts, as one folder with a manifest.

A backup folder holds the database (SQLite: a copy made through SQLite's online backup
API, consistent while servers write; PostgreSQL: a `pg_dump` custom-format archive), every
stored file of every version (artifact, compiled artifact, kept reference sample) under the
same relative paths as in the artifact store, and `manifest.json` listing each file with
its sha256, written last: a folder without one is an unfinished backup.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine

from pointsman import __version__
from pointsman.errors import ConfigError, InvalidBackup
from pointsman.registry.artifacts import ArtifactStore, sha256_of
from pointsman.registry.versions import VersionRecord
from pointsman.store.revision import head_revision
from pointsman.store.tables import models

MANIFEST = "manifest.json"
FORMAT = "pointsman-backup"
SQLITE_FILE = "pointsman.db"
PG_FILE = "database.dump"
ARTIFACTS = "artifacts"


@dataclass(frozen=True)
class StoredFile:
    """One file a version needs, as the artifact store holds it."""

    kind: str  # artifact | compiled | sample
    model: str
    version: int
    path: str  # relative to the artifact store, and to the backup's artifacts/ folder
    sha256: str


def stored_files(versions: list[VersionRecord]) -> list[StoredFile]:
    """Every file of `versions`: the artifact, and the compiled one and its sample if kept."""
    out = []
    for v in versions:
        out.append(StoredFile("artifact", v.model, v.number, v.artifact, v.sha256))
        compiled = v.compiled or {}
        if compiled.get("artifact") and compiled.get("sha256"):
            out.append(StoredFile("compiled", v.model, v.number, compiled["artifact"],
                                  compiled["sha256"]))  # fmt: skip
        sample = compiled.get("sample") or {}
        if sample.get("artifact") and sample.get("sha256"):
            out.append(StoredFile("sample", v.model, v.number, sample["artifact"],
                                  sample["sha256"]))  # fmt: skip
    return out


# -- backup -------------------------------------------------------------------------------
def backup(
    engine: Engine, store: ArtifactStore, versions: list[VersionRecord], out: Path
) -> dict[str, Any]:
    """Write a backup of the store and artifacts into the new folder `out`; its manifest."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InvalidBackup(f"{out} already exists and is not empty: name a new folder.")
    out.mkdir(parents=True, exist_ok=True)
    started = datetime.now(UTC)
    dialect = engine.dialect.name
    if dialect == "sqlite":
        database = SQLITE_FILE
        sqlite_copy(sqlite_path(engine.url), out / database)
    elif dialect == "postgresql":
        database = PG_FILE
        pg_dump(engine.url, out / database)
    else:
        raise ConfigError(f"Backup knows SQLite and PostgreSQL stores, not {dialect}.")
    # After the database: every version in the copy had its files stored before its row.
    files = []
    for f in stored_files(versions):
        source = store.verified(f.path, f.sha256)  # downloaded first from S3; checked
        target = out / ARTIFACTS / f.path
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, dirs_exist_ok=True)
        else:
            shutil.copy2(source, target)
        files.append({**asdict(f), "bytes": _size(target)})
    manifest = {
        "format": FORMAT,
        "pointsman_version": __version__,
        "created_at": started.isoformat(),
        "store": dialect,
        "database": database,
        "database_sha256": sha256_of(out / database),
        "migration": head_revision(),
        "artifact_store": store.describe(),
        "files": files,
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def sqlite_path(url: URL) -> Path:
    if not url.database or url.database == ":memory:":
        raise ConfigError("This SQLite store lives in memory: there is no file to back up.")
    return Path(url.database)


def sqlite_copy(source: Path, target: Path) -> None:
    """SQLite's online backup: a consistent copy while other connections write."""
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    dst = sqlite3.connect(target)
    try:
        with dst:
            src.backup(dst, pages=1024)  # in steps: writers wait at most one step
    finally:
        dst.close()
        src.close()


def pg_dump(url: URL, target: Path) -> None:
    """`pg_dump` in its custom format (restored with pg_restore), or ConfigError if absent."""
    tool = _tool("pg_dump")
    _run([tool, "--format=custom", "--no-owner", "--no-privileges", "--file", str(target),
          "--dbname", _libpq(url)], url, "pg_dump")  # fmt: skip


# -- restore ------------------------------------------------------------------------------
def read_manifest(folder: Path) -> dict[str, Any]:
    """The backup's manifest, after checking every file in it against its sha256."""
    path = folder / MANIFEST
    if not path.is_file():
        raise InvalidBackup(
            f"{folder} has no {MANIFEST}: not a pointsman backup, or one that did not finish."
        )
    try:
        manifest: dict[str, Any] = json.loads(path.read_text())
    except ValueError as exc:
        raise InvalidBackup(f"{path} is not valid JSON ({exc}).") from exc
    if manifest.get("format") != FORMAT:
        raise InvalidBackup(f"{path} is not a pointsman backup manifest.")
    problems = []
    database = folder / str(manifest["database"])
    if not database.exists():
        problems.append(f"the database file {database.name} is missing")
    elif sha256_of(database) != manifest["database_sha256"]:
        problems.append(f"the database file {database.name} was altered")
    for f in manifest["files"]:
        copy = folder / ARTIFACTS / f["path"]
        if not copy.exists():
            problems.append(f"{f['model']} v{f['version']} {f['kind']} {f['path']} is missing")
        elif sha256_of(copy) != f["sha256"]:
            problems.append(f"{f['model']} v{f['version']} {f['kind']} {f['path']} was altered")
    if problems:
        raise InvalidBackup(f"The backup in {folder} is damaged: " + "; ".join(problems) + ".")
    return manifest


def check_empty(engine: Engine) -> None:
    """InvalidBackup unless the target store holds no model (restore replaces everything)."""
    with engine.connect() as conn:
        if not sa.inspect(conn).has_table(models.name):
            return
        count = conn.execute(sa.select(sa.func.count()).select_from(models)).scalar() or 0
    if count:
        raise InvalidBackup(
            f"The target store already holds {count} model(s); a restore replaces it all. "
            "Restore into a new project, or pass --force to overwrite this one."
        )


def restore_database(manifest: dict[str, Any], folder: Path, url: URL) -> None:
    """The backup's database into the store at `url` (of the same kind); servers stopped."""
    kind = manifest["store"]
    target = url.get_backend_name()
    if kind != target:
        raise InvalidBackup(
            f"This backup is of a {kind} store and the project's store is {target}: restore "
            f"it into a {kind} store (to move stores, restore first, then copy the data)."
        )
    source = folder / str(manifest["database"])
    if kind == "sqlite":
        path = sqlite_path(url)
        path.parent.mkdir(parents=True, exist_ok=True)
        src, dst = sqlite3.connect(source), sqlite3.connect(path)
        try:
            with dst:
                src.backup(dst)
        finally:
            dst.close()
            src.close()
        return
    tool = _tool("pg_restore")
    _run([tool, "--clean", "--if-exists", "--no-owner", "--no-privileges", "--single-transaction",
          "--dbname", _libpq(url), str(source)], url, "pg_restore")  # fmt: skip


def restore_files(manifest: dict[str, Any], folder: Path, store: ArtifactStore) -> int:
    """Every listed file into the artifact store (those already there and intact kept)."""
    put = 0
    for f in manifest["files"]:
        copy = folder / ARTIFACTS / f["path"]
        if store.is_local(f["path"]):
            target = store.path_of(f["path"])
            if target.exists() and sha256_of(target) == f["sha256"]:
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.exists():
                shutil.rmtree(target) if target.is_dir() else target.unlink()
            if copy.is_dir():
                shutil.copytree(copy, target)
            else:
                shutil.copy2(copy, target)
        else:
            sha, rel = store.put(copy)
            if (sha, rel) != (f["sha256"], f["path"]):
                raise InvalidBackup(f"{f['path']} went to {rel} in the artifact store.")
            store.publish(rel)
        put += 1
    return put


# -- the PostgreSQL tools -----------------------------------------------------------------
def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise ConfigError(
            f"{name} is not installed (it comes with the PostgreSQL client: apt install "
            "postgresql-client). Without it, back up the database with your own PostgreSQL "
            "tooling and the artifacts folder alongside: docs/reliability.md, 'Backup and "
            "restore'."
        )
    return found


def _libpq(url: URL) -> str:
    """The URL libpq reads, without the password (passed in PGPASSWORD, out of `ps`)."""
    plain = url.set(drivername="postgresql", password=None)
    return plain.render_as_string(hide_password=False)


def _run(command: list[str], url: URL, what: str) -> None:
    env = dict(os.environ)
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        detail = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise InvalidBackup(f"{what} failed (exit {done.returncode}): {detail}")


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size
