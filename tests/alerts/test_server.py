"""End to end: a real `pointsman serve` with two workers sends each alert exactly once."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx

from pointsman.project import init_project, open_project
from pointsman.settings import load_settings
from tests.conftest import IRIS_COLUMNS, Server, admin_headers, register_iris

RULE = """
alerts_interval_s = 0.5

[[alerts]]
name = "traffic"
model = "iris"
when = "request_rate > 0"
window = "2s"
cooldown = "0"
notify = ["webhook={url}"]
"""


def wait_for(check: Any, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return False


def test_two_workers_fire_once_and_resolve_once(
    tmp_path: Path, iris_files: tuple[Path, Path], receivers: Any
) -> None:
    hook = receivers()
    folder, _ = init_project(tmp_path / "project")
    with (folder / "pointsman.toml").open("a") as f:
        f.write(RULE.format(url=hook.url))
    project = open_project(load_settings(folder))
    try:
        project.routes.deploy("iris", register_iris(project, iris_files), "t")
        headers = admin_headers(project)
    finally:
        project.close()
    server = Server(folder, workers=2)
    row = dict.fromkeys(IRIS_COLUMNS, 1.0)
    try:
        with httpx.Client(base_url=server.url, timeout=5, headers=headers) as client:
            deadline = time.monotonic() + 15
            while not hook.bodies() and time.monotonic() < deadline:
                assert client.post("/v1/models/iris/predict", json={"rows": [row]}).is_success
                time.sleep(0.05)
        assert [b["status"] for b in hook.bodies()] == ["firing"]
        # no more traffic: the 2s window empties and the alert resolves, once
        assert wait_for(lambda: len(hook.bodies()) >= 2, 15), server.log.read_text()
        time.sleep(2)  # room for a duplicate from the other worker, were there one
        assert [b["status"] for b in hook.bodies()] == ["firing", "resolved"]
        with httpx.Client(base_url=server.url, timeout=5, headers=headers) as client:
            history = client.get("/v1/admin/alerts/history").json()
        assert [h["event"] for h in history] == ["resolved", "firing"]
    finally:
        server.stop()
