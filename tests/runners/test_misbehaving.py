"""Misbehaving models next to a healthy one, served for real under load (issue: runners).

Each bad model misbehaves only on a row with x = 13 (its training data has x in [0, 1), so
registration's smoke test and the runner's warm-up pass). For each: the healthy model keeps
answering every request with its p99 within 2x of its steady state, /healthz answers within
50 ms throughout, the bad model's caller gets the documented error (or the fallback's answer)
within its time limit, and the runner is restarted, counted in /metrics and alerted on.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

from pointsman.project import Project, init_project, open_project
from pointsman.registry import Submission
from pointsman.settings import load_settings
from tests.api.conftest import register_churn
from tests.conftest import Server, admin_headers

BAD = '''
import ctypes, os, time

if os.path.exists({import_switch!r}):
    raise ImportError("this model cannot be imported today")


class Bad:
    """Answers 0 for every row, and misbehaves ({how}) on a row with x = 13."""

    classes_ = [0, 1]

    def predict(self, frame):
        if (frame["x"] == 13).any():
            self.misbehave()
        return [0] * len(frame)

    def misbehave(self):
        how = {how!r}
        if how == "spin":
            while True:
                pass
        if how == "sleep":
            time.sleep(3600)
        if how == "memory":
            hoard = []
            while True:
                hoard.append(bytearray(32 << 20))
        if how == "disk":
            with open("junk.bin", "wb") as out:
                while True:
                    out.write(b"0" * (1 << 20))
        if how == "exit":
            os._exit(3)
        if how == "segfault":
            ctypes.string_at(0)
'''

# model: (behaviour, what its caller gets: status, error code, phrase; restart reason)
CASES = {
    "spin": ("spin", 504, "runner_timeout", "time limit of 1 s", "cpu"),
    "sleeper": ("sleep", 504, "runner_timeout", "time limit of 1 s", "timeout"),
    "hoarder": ("memory", 503, "runner_failed", "ran out of memory (limit 512 MiB)", "oom"),
    "writer": ("disk", 503, "runner_failed", "disk limit of 8 MiB", "disk"),
    "quitter": ("exit", 503, "runner_failed", "crashed", "crash"),
    "segv": ("segfault", 503, "runner_failed", "crashed", "crash"),
}
TOML = """
alerts_interval_s = 0.5

[[alerts]]
name = "restarts"
model = "*"
when = "runner_restarts > 0"
window = "5m"

[runners."*"]
timeout = "1s"
memory = "512MiB"  # a runner starts at ~350 MiB of data: a hog hits it fast
disk = "8MiB"

[runners.churn]
timeout = "30s"
memory = "none"
"""


def register_bad(project: Project, folder: Path, model: str, how: str, switch: Path) -> int:
    source = folder / f"{model}.py"
    source.write_text(BAD.format(how=how, import_switch=str(switch)))
    data = folder / f"{model}.csv"
    rng = np.random.default_rng(0)
    pd.DataFrame({"x": rng.random(50), "y": rng.integers(0, 2, 50)}).to_csv(data, index=False)
    record, _ = project.registry.register(
        Submission(model=model, path=source, entrypoint="Bad", training_data=data,
                   target="y", user="t")
    )  # fmt: skip
    return record.number


class Load:
    """Users of the healthy model and a /healthz probe, each in a process of its own."""

    def __init__(self, url: str, headers: dict[str, str], folder: Path) -> None:
        key = headers["Authorization"].split()[1]
        self.stop_file = folder / "stop"
        self.outs = {mode: folder / f"{mode}.json" for mode in ("users", "probe")}
        command = [sys.executable, "-m", "tests.runners.load"]
        self.processes = [
            subprocess.Popen([*command, mode, url, key, str(out), str(self.stop_file)])
            for mode, out in self.outs.items()
        ]

    def finish(self) -> tuple[list[list[Any]], list[list[Any]]]:
        self.stop_file.touch()
        for process in self.processes:
            process.wait(30)
        return tuple(json.loads(out.read_text()) for out in self.outs.values())  # type: ignore[return-value]


def p99(samples: list[list[Any]], start: float = 0.0, end: float = float("inf")) -> float:
    window = sorted(s[1] for s in samples if start <= s[0] < end)
    return window[int(0.99 * (len(window) - 1))]


def restarts(metrics_text: str, model: str, reason: str) -> float:
    total = 0.0
    for line in metrics_text.splitlines():
        labels = f'model_name="{model}"' in line and f'reason="{reason}"' in line
        if line.startswith("pointsman_runner_restarts_total{") and labels:
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_bad_models_never_hurt_the_healthy_one(
    churn_files: list[tuple[Path, Path]], tmp_path: Path
) -> None:
    folder, _ = init_project(tmp_path / "project")
    with (folder / "pointsman.toml").open("a") as toml:
        toml.write(TOML)
    project = open_project(load_settings(folder))
    switch = tmp_path / "no-import"
    register_churn(project, churn_files)
    project.routes.deploy("churn", 1, "t")
    for model, (how, *_rest) in CASES.items():
        register_bad(project, tmp_path, model, how, switch)
        project.routes.deploy(model, 1, "t")
    # The spinner has a healthy second version to fall back on.
    register_bad(project, tmp_path, "spin", "none", switch)
    headers = admin_headers(project)
    project.close()

    server = Server(folder, workers=1)
    bad = {"rows": [{"x": 13.0}]}
    try:
        with httpx.Client(base_url=server.url, headers=headers, timeout=30) as client:
            _wait_ready(client)
            load = Load(server.url, headers, tmp_path)
            try:
                time.sleep(1)  # the load warms up
                calm = time.time()
                time.sleep(3)  # steady state
                bad_from = time.time()
                for model, (_how, status, code, phrase, reason) in CASES.items():
                    start = time.monotonic()
                    r = client.post(f"/v1/models/{model}/predict", json=bad)
                    took = time.monotonic() - start
                    assert r.status_code == status, (model, r.text)
                    body = r.json()
                    assert body["code"] == code and phrase in body["error"], (model, body)
                    assert r.headers["X-Request-ID"] in body["error"], body
                    assert took < 1.0 + 1.5, (model, took)  # within its time limit (1 s)
                    _wait_restarted(client, model, reason)
                    again = client.post(f"/v1/models/{model}/predict", json={"rows": [{"x": 0.5}]})
                    assert again.status_code == 200, (model, again.text)
                # With a fallback: the caller gets the healthy version's answer.
                r = client.put("/v1/admin/models/spin/route", json={
                    "arms": [{"version": 1}], "fallback": 2, "reason": "fallback"})  # fmt: skip
                assert r.status_code == 200, r.text
                time.sleep(1.5)  # servers take a new revision within a second
                r = client.post("/v1/models/spin/predict", json=bad)
                assert r.status_code == 200, r.text
                assert r.json()["version"] == 2 and r.json()["fallback"]["reason"] == "timeout"
                # An import that fails when the runner comes back: not ready, with the reason.
                switch.touch()
                r = client.post("/v1/models/quitter/predict", json=bad)
                assert r.status_code == 503
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline:
                    r = client.post("/v1/models/quitter/predict", json={"rows": [{"x": 0.5}]})
                    if "cannot be imported today" in r.text:
                        break
                    time.sleep(0.2)
                assert r.status_code == 503 and r.json()["code"] == "model_not_ready", r.text
                assert "ImportError: this model cannot be imported today" in r.json()["error"]
                ready = client.get("/readyz").json()
                assert "cannot be imported today" in str(ready), ready
            finally:
                users, probes = load.finish()
            metrics_text = client.get("/metrics").text
            assert restarts(metrics_text, "quitter", "load_failed") >= 1
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                fired = {h["model"] for h in client.get("/v1/admin/alerts/history").json()}
                if set(CASES) <= fired:
                    break
                time.sleep(0.2)
    finally:
        server.stop()

    failed = [s for s in users + probes if s[2]]
    assert not failed, failed[:5]
    steady, during = p99(users, calm, bad_from), p99(users, bad_from)
    health_ms = [s[1] * 1000 for s in probes]
    health = f"max {max(health_ms):.1f} ms, median {statistics.median(health_ms):.1f} ms"
    print(f"healthy p99: steady {steady * 1e3:.1f} ms, with bad models {during * 1e3:.1f} ms "
          f"({len(users)} requests); /healthz {health}")  # fmt: skip
    assert during <= 2 * steady, (steady, during)
    assert max(health_ms) < 50, sorted(health_ms)[-5:]
    assert set(CASES) <= fired, fired


def _wait_ready(client: httpx.Client) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        r = client.get("/readyz")
        if r.status_code == 200:
            return
        time.sleep(0.2)
    pytest.fail(f"not ready: {r.text}")


def _wait_restarted(client: httpx.Client, model: str, reason: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        text = client.get("/metrics").text
        ready = client.get(f"/v1/admin/models/{model}/runners").json()["specs"][1]["runners"]
        back = ready and ready[0]["state"] == "ready" and ready[0]["restarts"] >= 1
        if restarts(text, model, reason) >= 1 and back:
            return
        time.sleep(0.1)
    pytest.fail(f"{model}: no restart for {reason} in /metrics, or not ready again: {ready}")
