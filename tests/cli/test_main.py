"""The command table: lazy, yet it lists every command with its own short help."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import click
import pytest

from pointsman.cli import main
from pointsman.cli.main import TABLE, cli
from pointsman.project import init_project, open_project
from pointsman.settings import load_settings
from tests.conftest import ProjectTemplates, register_iris

CLI_FOLDER = Path(main.__file__).parent
# What `pointsman --help` must not load: the server, the data and model libraries.
HEAVY = ("pandas", "sklearn", "numpy", "scipy", "fastapi", "uvicorn", "pyarrow", "onnxruntime")
# What commands that only read the store must not load either.
NOT_FOR_READING = (*HEAVY, "alembic", "prometheus_client", "httpx")
# What `--help` does without, and on SQLite `models`, `versions MODEL` and `route MODEL
# [--history] (cli/fastread.py).
NOT_FOR_A_GLANCE = ("sqlalchemy", "pydantic", "pydantic_settings", "numpy", "pandas")


def real_commands() -> dict[str, click.Command]:
    """Every command the modules of pointsman/cli declare in their COMMANDS, by name."""
    found: dict[str, click.Command] = {}
    for path in sorted(CLI_FOLDER.glob("*.py")):
        module = importlib.import_module(f"pointsman.cli.{path.stem}")
        for command in getattr(module, "COMMANDS", []):
            assert command.name is not None
            found[command.name] = command
    return found


def loaded_modules(*args: str, cwd: Path | None = None) -> list[str]:
    """The modules `pointsman ARGS` has imported when it exits, run in a fresh process."""
    code = (
        "import atexit, json, sys\n"
        "atexit.register(lambda: print(json.dumps(sorted(sys.modules)), file=sys.stderr))\n"
        f"sys.argv = ['pointsman', *{list(args)!r}]\n"
        "from pointsman.cli.main import main\n"
        "main()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=cwd
    )
    assert done.returncode == 0, done.stderr
    modules: list[str] = json.loads(done.stderr.strip().splitlines()[-1])
    return modules


def test_the_table_names_every_command_and_each_resolves_to_it() -> None:
    commands = real_commands()
    assert sorted(TABLE) == sorted(commands)
    ctx = click.Context(cli, info_name="pointsman")
    for name, command in commands.items():
        assert cli.get_command(ctx, name) is command
    assert cli.get_command(ctx, "nope") is None


@pytest.mark.parametrize("name", sorted(TABLE))
def test_the_short_help_in_the_table_is_the_commands_own(name: str) -> None:
    command = real_commands()[name]
    first_paragraph = " ".join((command.help or "").partition("\n\n")[0].split())
    assert TABLE[name][1] == first_paragraph, f"update pointsman/cli/main.py for {name}"


def test_help_lists_the_commands_as_click_would_with_them_all_loaded() -> None:
    eager = click.Group("pointsman", commands=real_commands())
    for width in (60, 80, 100):
        ctx = click.Context(cli, info_name="pointsman", terminal_width=width)
        lazy_text, eager_text = click.HelpFormatter(width=width), click.HelpFormatter(width=width)
        cli.format_commands(ctx, lazy_text)
        eager.format_commands(click.Context(eager, terminal_width=width), eager_text)
        assert lazy_text.getvalue() == eager_text.getvalue()


def test_help_loads_no_command_and_none_of_the_heavy_libraries() -> None:
    modules = loaded_modules("--help")
    assert "pointsman.cli.main" in modules
    assert [m for m in modules if m.split(".")[0] in HEAVY] == []
    commands = {f"pointsman.cli.{spec.partition(':')[0]}" for spec, _ in TABLE.values()}
    assert sorted(commands & set(modules)) == []


@pytest.fixture
def deployed(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    project_templates: ProjectTemplates,
    iris_files: tuple[Path, Path],
) -> Path:
    """A project (SQLite) with iris version 1 deployed, its schema already at head: a copy of
    its own of one prepared once per run."""

    def prepare(folder: Path, _: str) -> None:
        init_project(folder)
        with open_project(load_settings(folder)) as project:
            project.routes.deploy("iris", register_iris(project, iris_files), "test")

    return project_templates.copy(request, "iris-deployed", "sqlite", prepare, tmp_path)


@pytest.mark.parametrize("args", [["models"], ["route", "iris"], ["route", "iris", "--history"]])
def test_reading_commands_load_neither_the_server_nor_numpy_nor_alembic(
    deployed: Path, args: list[str]
) -> None:
    modules = loaded_modules("--project", str(deployed), *args)
    assert [m for m in modules if m.split(".")[0] in NOT_FOR_READING] == []


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["models"],
        ["versions", "iris"],
        ["route", "iris"],
        ["route", "iris", "--history"],
    ],
)
def test_help_and_the_reading_commands_load_neither_sqlalchemy_nor_pydantic(
    deployed: Path, args: list[str]
) -> None:
    modules = loaded_modules("--project", str(deployed), *args)
    assert "pointsman.cli.main" in modules
    assert [m for m in modules if m.split(".")[0] in NOT_FOR_A_GLANCE] == []
