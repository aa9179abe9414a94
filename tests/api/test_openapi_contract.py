"""Schemathesis over the app's whole OpenAPI document, against a real server on 127.0.0.1:
`--checks all` passes with a valid admin key and without one (a bounded, seeded run).

Every operation is in the run: the predict paths of each protocol (with the key, iris's own
and its version 1's pinned ones, whose bodies and examples the document gives from its
signature, MLflow's CSV as a pattern of text), the admin API and the tar upload of
a version. Where JSON Schema cannot say why a schema-valid request is refused (a value the
route's policy refuses, weights that must sum to 100, bytes that are no tar archive), the
run accepts 400 or 422 only with the codes listed in contract_hooks.py. The key's name is
one no generated value will hit, and a key cannot revoke itself: the run keeps its key.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from pointsman.api.app import build_app
from pointsman.auth import KeyBook
from pointsman.project import Project
from tests.conftest import register_iris

CONFIG = """
seed = 19
hooks = "{hooks}"
[generation]
max-examples = 3
deterministic = true

# The operations a schema-valid request may still be refused by (400 or 422), with the codes
# that may refuse it: contract_hooks.REFUSALS, which this regex lists. One filter per table:
# schemathesis ORs include-path with include-method (that once left out every POST).
[[operations]]
include-name-regex = "{refused}"
checks.positive_data_acceptance.expected-statuses = [
  "2xx", "401", "403", "404", "409", "429", "400", "422"
]
"""
REFUSED = (
    r"^(POST .*(predict|infer|invocations)|POST .*/(canary|jobs|outcomes|versions)"
    r"|PUT .*/(route|runners)|GET /v1/predictions)$"
)
HOOKS = Path(__file__).with_name("contract_hooks.py")
NO_KEY_PHASES = "examples,coverage"


@pytest.fixture
def server_url(project: Project, iris_files: tuple[Path, Path]) -> Iterator[str]:
    """The app under uvicorn in a thread, on a free port of 127.0.0.1."""
    project.routes.deploy("iris", register_iris(project, iris_files), "test")
    config = uvicorn.Config(
        build_app(project.settings), host="127.0.0.1", port=0, log_level="warning"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(30)


def schemathesis(url: str, config: Path, folder: Path, *options: str) -> subprocess.Popen[str]:
    """A run of `st` over the document, started (the runs with and without a key overlap)."""
    st = shutil.which("st", path=str(Path(sys.executable).parent))
    assert st, "schemathesis is a dev dependency: scripts/setup dev"
    command = [st, "--config-file", str(config), "run", f"{url}/openapi.json", "--checks", "all"]
    command += options
    # Each run in a folder of its own: schemathesis keeps its cache (.schemathesis/) there.
    folder.mkdir()
    return subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=folder
    )


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_every_check_passes_over_the_whole_document_with_and_without_a_key(
    project: Project, server_url: str, tmp_path: Path
) -> None:
    # A name no generated path parameter will hit: the run cannot revoke its own key.
    name = f"contract-{uuid.uuid4().hex}"
    key, _ = KeyBook(project.engine).create(name, ["admin"], "test")
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG.format(hooks=HOOKS, refused=REFUSED))
    document = httpx.get(f"{server_url}/openapi.json").json()
    assert "/v1/models/{model}/predict" in document["paths"]
    assert "/v2/models/{model}/infer" in document["paths"]
    assert "/v1/models/iris/predict" not in document["paths"]
    assert "401" in document["paths"]["/v1/admin/keys"]["get"]["responses"]
    headers = {"Authorization": f"Bearer {key}"}
    deadline = time.monotonic() + 30
    while httpx.get(f"{server_url}/v1/admin/keys", headers=headers).status_code == 401:
        assert time.monotonic() < deadline, "the server did not learn the new key"
        time.sleep(0.1)  # keys reach the server's cache within its refresh interval
    keyed = httpx.get(f"{server_url}/openapi.json", headers=headers)
    for path in (
        "/v1/models/iris/predict",
        "/v1/models/iris:predict",
        "/v2/models/iris/infer",
        "/v1/models/iris/versions/1/predict",
        "/v1/models/iris/versions/1:predict",
        "/v2/models/iris/versions/1/infer",
    ):
        assert path in keyed.json()["paths"]
    assert "text/csv" in keyed.json()["paths"]["/invocations"]["post"]["requestBody"]["content"]
    runs = [
        schemathesis(
            server_url, config, tmp_path / "with-key", "-H", f"Authorization: Bearer {key}"
        ),
        # Without a key every body is refused before it is read (401): no fuzzing of bodies.
        schemathesis(server_url, config, tmp_path / "without", "--phases", NO_KEY_PHASES),
    ]
    try:
        for run in runs:
            stdout, stderr = run.communicate(timeout=600)
            assert run.returncode == 0, stdout[-6000:] + stderr[-2000:]
            assert " passed" in stdout
    finally:
        for run in runs:  # the other run, when one failed
            if run.poll() is None:
                run.kill()
                run.wait()
    answer = httpx.get(f"{server_url}/v1/admin/keys", headers=headers)
    assert answer.status_code == 200, answer.text
