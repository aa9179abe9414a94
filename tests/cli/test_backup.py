"""`pointsman backup` and `pointsman restore`, on SQLite (online, while written to) and on
PostgreSQL (pg_dump, pg_restore), checked by `pointsman artifacts verify` after the restore."""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from pointsman.auth import KeyBook
from pointsman.cli.main import cli
from pointsman.project import Project
from tests.conftest import fresh_postgres_database, register_iris


def run(*args: str, code: int = 0) -> Result:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result


def new_project(tmp_path: Path, request: pytest.FixtureRequest, kind: str) -> Path:
    url = "" if kind == "sqlite" else fresh_postgres_database(request)
    folder = tmp_path / "restored"
    run("init", str(folder), *(["--database-url", url] if url else []))
    return folder


def test_backup_then_restore_into_a_new_project_verifies(
    project: Project, iris_files: tuple[Path, Path], tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    project.routes.deploy("iris", register_iris(project, iris_files), "test")
    kind = project.engine.dialect.name
    source = ["--project", str(project.settings.project_path())]
    # Writers keep writing while the backup runs (servers go on serving).
    stop = threading.Event()
    written = []

    def write() -> None:
        book = KeyBook(project.engine)
        while not stop.is_set():
            book.create(f"k{len(written)}", ["predict:iris"], "load")
            written.append(1)

    writer = threading.Thread(target=write)
    writer.start()
    try:
        out = tmp_path / "backup"
        manifest = json.loads(run(*source, "backup", str(out), "--json").output)
    finally:
        stop.set()
        writer.join()
    assert written, "the writer never wrote"
    assert manifest["store"] == kind
    (artifact,) = [f for f in manifest["files"] if f["kind"] == "artifact"]
    assert artifact["model"] == "iris" and artifact["version"] == 1
    assert len(artifact["sha256"]) == 64
    if kind == "sqlite":
        with sqlite3.connect(out / "pointsman.db") as copy:
            assert copy.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    # A non-empty store is not overwritten without --force.
    refused = run(*source, "restore", str(out), code=1)
    assert "already holds 1 model" in refused.output and "--force" in refused.output

    target = new_project(tmp_path, request, kind)
    dest = ["--project", str(target)]
    done = json.loads(run(*dest, "restore", str(out), "--json").output)
    assert done["problems"] == [] and done["versions"] == 1 and done["files_copied"] >= 1
    assert "all match" in run(*dest, "artifacts", "verify").output
    assert "iris" in run(*dest, "models").output
    shown = json.loads(run(*dest, "route", "iris", "--json").output)
    assert shown["revision"] >= 1


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_damaged_backup_is_refused_naming_the_file(
    project: Project, iris_files: tuple[Path, Path], tmp_path: Path
) -> None:
    register_iris(project, iris_files)
    out = tmp_path / "backup"
    run("--project", str(project.settings.project_path()), "backup", str(out))
    manifest = json.loads((out / "manifest.json").read_text())
    path = out / "artifacts" / manifest["files"][0]["path"]
    path.write_bytes(path.read_bytes() + b"!")
    target = tmp_path / "other"
    run("init", str(target))
    refused = run("--project", str(target), "restore", str(out), code=1)
    assert "damaged" in refused.output and "iris v1 artifact" in refused.output
    assert run("--project", str(target), "models").output.count("iris") == 0


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_backup_refuses_a_folder_that_is_not_empty(project: Project, tmp_path: Path) -> None:
    out = tmp_path / "busy"
    out.mkdir()
    (out / "x").write_text("x")
    refused = run("--project", str(project.settings.project_path()), "backup", str(out), code=1)
    assert "not empty" in refused.output
