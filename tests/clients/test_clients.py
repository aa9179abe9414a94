"""Third-party clients, unchanged, against `pointsman serve` on loopback.

Each client runs in its own virtual environment under .venvs/ (made by scripts/client-venvs
from tests/clients/requirements-*.txt), because their pins clash with pointsman's. The client
scripts next to this file do the asserting; here we serve the models and check they exit 0.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pointsman.auth import KeyBook
from pointsman.demo.churn import TARGET
from pointsman.project import init_project, open_project
from pointsman.registry import Submission
from pointsman.settings import load_settings
from tests.conftest import Server, register_iris, skip_or_fail

pytestmark = pytest.mark.clients

HERE = Path(__file__).resolve().parent
VENVS = HERE.parents[1] / ".venvs"
CLIENT_TIMEOUT_S = 60
# Model name → folder made by make_mlflow_model.py; the first answers the bare /invocations.
MLFLOW_MODELS = {"iris-mlflow": "default", "iris-skops": "skops"}


def client_python(venv: str) -> Path | None:
    """The venv's python if scripts/client-venvs installed the current requirements into it."""
    python = VENVS / venv / "bin" / "python"
    stamp = VENVS / venv / ".requirements.sha256"
    requirements = HERE / f"requirements-{venv}.txt"
    digest = hashlib.sha256(requirements.read_bytes()).hexdigest()
    if python.exists() and stamp.exists() and stamp.read_text().strip() == digest:
        return python
    return None


def require_client(venv: str) -> Path:
    python = client_python(venv)
    if python is None:
        skip_or_fail(f"client venv .venvs/{venv} missing; run scripts/client-venvs")
    assert python is not None
    return python


@dataclass
class Served:
    url: str
    mlflow_folders: dict[str, Path]  # pointsman model → the MLflow folder it was imported from
    key: str  # predict:* and read:*; the scripts read it from POINTSMAN_KEY


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory,
    iris_files: tuple[Path, Path],
    churn_files: list[tuple[Path, Path]],
) -> Iterator[Served]:
    """iris, churn v1 and the two MLflow iris folders, registered, deployed and served."""
    tmp = tmp_path_factory.mktemp("clients")
    mlflow_python = client_python("mlflow")
    maker = None
    if mlflow_python is not None:  # mlflow saves its models while we register the others
        maker = subprocess.Popen(
            [mlflow_python, HERE / "make_mlflow_model.py", tmp / "mlflow"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
    folder, _ = init_project(tmp / "project")
    project = open_project(load_settings(folder))
    folders: dict[str, Path] = {}
    try:
        register_iris(project, iris_files)
        churn_model, churn_data = churn_files[0]
        project.registry.register(
            Submission(
                model="churn", path=churn_model, training_data=churn_data, target=TARGET, user="t"
            )
        )
        if maker is not None:
            output, _ = maker.communicate(timeout=CLIENT_TIMEOUT_S)
            assert maker.returncode == 0, f"make_mlflow_model.py failed:\n{output}"
            for name, sub in MLFLOW_MODELS.items():
                folders[name] = tmp / "mlflow" / sub
                project.registry.register(Submission(model=name, path=folders[name], user="t"))
        for name in ["iris", "churn", *folders]:
            project.routes.deploy(name, 1, "test")
        key, _ = KeyBook(project.engine).create("clients", ["predict:*", "read:*"], "test")
    finally:
        if maker is not None and maker.poll() is None:
            maker.kill()
            maker.communicate()
        project.close()
    server = Server(folder, env={"POINTSMAN_DEFAULT_MODEL": next(iter(MLFLOW_MODELS))})
    try:
        yield Served(server.url, folders, key)
    finally:
        server.stop()


def run_client(venv: str, script: str, key: str, *args: str) -> None:
    """Run a client script with its venv's python and the API key; it must exit 0."""
    python = require_client(venv)
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}
    env["POINTSMAN_KEY"] = key
    env.pop("PYTHONPATH", None)
    try:
        done = subprocess.run(
            [python, HERE / script, *args],
            capture_output=True,
            text=True,
            timeout=CLIENT_TIMEOUT_S,
            env=env,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{script} still running after {CLIENT_TIMEOUT_S} s:\n{exc.stdout}{exc.stderr}")
    assert done.returncode == 0, f"{script} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"


def test_tritonclient_http_and_aio_work_unchanged(served: Served) -> None:
    run_client("triton", "run_triton.py", served.key, served.url, "iris", "churn")


def test_kserve_rest_client_v2_and_v1_work_unchanged(served: Served) -> None:
    run_client("kserve", "run_kserve.py", served.key, served.url, "iris")


def test_mlflow_scoring_client_gets_mlflows_own_predictions(served: Served) -> None:
    require_client("mlflow")
    models = [f"{name}={folder}" for name, folder in served.mlflow_folders.items()]
    run_client("mlflow", "run_mlflow.py", served.key, served.url, *models)
