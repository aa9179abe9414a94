"""The HTTP front never runs model code: after serving predictions, a server process has
imported neither scikit-learn, joblib, skops, onnxruntime nor mlflow (its runners did); and
its runners never outlive it, even when it is killed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from pointsman.project import Project
from tests.api.conftest import register_churn
from tests.conftest import Server

CODE = """
import asyncio, json, sys
import httpx
from pointsman.api.app import build_app
from pointsman.auth import KeyBook
from pointsman.project import open_project
from pointsman.settings import load_settings

settings = load_settings(sys.argv[1])
with open_project(settings) as project:
    key, _ = KeyBook(project.engine).create("front", ["admin"], "test")
row = {row!r}

async def main():
    app = build_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        headers = {{"Authorization": "Bearer " + key}}
        client = httpx.AsyncClient(transport=transport, base_url="http://x", headers=headers)
        async with client as c:
            for path in ("/v1/models/churn/predict", "/v1/models/churn/versions/2/predict"):
                r = await c.post(path, json={{"rows": [row]}})
                assert r.status_code == 200, r.text
            r = await c.post("/v2/models/churn/infer", json={{"inputs": [
                {{"name": k, "shape": [1], "datatype": "BYTES" if isinstance(v, str) else "FP64",
                  "data": [v]}} for k, v in row.items()]}})
            assert r.status_code == 200, r.text

asyncio.run(main())
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in
      ("sklearn", "joblib", "onnxruntime", "skops", "mlflow"))))
"""


def test_the_server_process_imports_no_model_library(
    project: Project, churn_files: list[tuple[Path, Path]]
) -> None:
    register_churn(project, churn_files)
    project.routes.deploy("churn", 1, "t")
    row = {
        "tenure_months": 3, "monthly_charges": 99.5, "support_calls": 4, "age": 31,
        "plan": "premium", "contract": "monthly", "region": "north",
    }  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-c", CODE.format(row=row), str(project.settings.project_path())],
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []


def descendants(pid: int) -> set[int]:
    """Every process below `pid`, from /proc."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    """Running, and not a zombie waiting for its (new) parent to reap it."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_a_killed_server_leaves_no_runner_behind(
    project: Project, churn_files: list[tuple[Path, Path]]
) -> None:
    register_churn(project, churn_files)
    project.routes.deploy("churn", 1, "t")
    server = Server(project.settings.project_path())
    try:
        below = descendants(server.process.pid)
        assert len(below) >= 2, below  # the forkserver and the runner (and a resource tracker)
        os.kill(server.process.pid, signal.SIGKILL)
        server.process.wait(10)
        deadline = time.monotonic() + 10
        while any(alive(p) for p in below) and time.monotonic() < deadline:
            time.sleep(0.05)
        left = {p: Path(f"/proc/{p}/cmdline").read_bytes()[:120] for p in below if alive(p)}
        assert not left, left
    finally:
        server.stop()
