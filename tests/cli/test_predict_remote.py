"""`pointsman predict --url` sends the API key (--key or $POINTSMAN_KEY)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from pointsman.auth import KeyBook
from pointsman.cli.main import cli
from pointsman.project import Project
from tests.conftest import IRIS_COLUMNS, Server, register_iris


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """SQLite only: this is about the client side of the key."""
    return f"sqlite:///{tmp_path / 'pointsman.db'}"


def test_predict_against_a_server_with_a_key(
    project: Project, iris_files: tuple[Path, Path]
) -> None:
    project.routes.deploy("iris", register_iris(project, iris_files), "t")
    key, _ = KeyBook(project.engine).create("cli", ["predict:iris"], "t")
    body = json.dumps({"rows": [dict(zip(IRIS_COLUMNS, [5.1, 3.5, 1.4, 0.2], strict=True))]})
    server = Server(project.settings.project_path())
    try:
        args = ["predict", "iris", body, "--url", server.url, "--json"]
        refused = CliRunner().invoke(cli, args)
        assert refused.exit_code == 1 and "401" in refused.output
        assert "Authorization: Bearer" in refused.output
        done = CliRunner().invoke(cli, [*args, "--key", key])
        assert done.exit_code == 0, done.output
        assert json.loads(done.output)["predictions"] == [0]
        from_env = CliRunner().invoke(cli, args, env={"POINTSMAN_KEY": key})
        assert from_env.exit_code == 0, from_env.output
    finally:
        server.stop()
