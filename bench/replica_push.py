"""How fast a route change reaches another replica: pushed (LISTEN/NOTIFY) against polled.

Two `pointsman serve` processes (replicas A and B, each with its own project folder, runners
and supervisor) share one fresh PostgreSQL database and one artifact folder. The churn route
is changed N times through A's admin API (weights only, both versions warm everywhere); after
each change B is asked, request after request, until it answers with the new route revision.
The delay is from just before A's PUT to B's first answer under the new revision, so it
includes A's write. Mode `push` polls only every 60 s (whatever arrives sooner was pushed);
mode `poll` switches listening off and polls at the default 0.5 s, for comparison.
See bench/README.md.

    .venv/bin/python bench/replica_push.py [--changes 50] [--modes push,poll] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

from pointsman.auth import KeyBook
from pointsman.demo.churn import TARGET, make_data, train_versions
from pointsman.project import init_project, open_project
from pointsman.registry import Submission
from pointsman.routing.policy import Arm, Policy
from pointsman.settings import load_settings, write_settings_file

MODEL = "churn"
PREDICT = f"/v1/models/{MODEL}/predict"
ROUTE = f"/v1/admin/models/{MODEL}/route"
MODES: dict[str, dict[str, object]] = {
    "push": {"refresh_interval_s": 60, "listen_poll_interval_s": 60},
    "poll": {"listen_for_changes": False},  # refresh_interval_s at its default, 0.5 s
}
LIMIT_S = 10.0  # a change not seen by then is a failure


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Replica:
    """`pointsman serve` on one project folder, on a free loopback port."""

    def __init__(self, folder: Path, workers: int) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = folder / "serve.log"
        argv = [sys.executable, "-m", "pointsman", "--project", str(folder), "serve"]
        argv += ["--port", str(self.port), "--workers", str(workers)]
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"replica exited early:\n{self.log.read_text()[-3000:]}")
            try:
                if httpx.get(self.url + "/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"replica not ready after 120 s:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


@dataclass(frozen=True)
class Setup:
    """The shared store's contents: an admin key, the artifact folder, a row churn takes."""

    key: str
    artifacts: str
    rows: list[dict[str, Any]]


def build_project(root: Path, database_url: str) -> Setup:
    """Churn v1 and v2 registered in the store and routed 50/50."""
    folder, _ = init_project(root / "store", database_url)
    project = open_project(load_settings(folder))
    try:
        for trained in train_versions(root / "train"):
            project.registry.register(
                Submission(
                    model=MODEL,
                    path=trained.path,
                    training_data=trained.training_data,
                    target=TARGET,
                    user="bench",
                )
            )
        policy = Policy(arms=(Arm(1, 50), Arm(2, 50)))
        project.routes.apply(MODEL, policy, "bench", "both versions warm")
        key, _ = KeyBook(project.engine).create("bench", ["admin"], "bench")
        artifacts = str(project.settings.artifact_path())
    finally:
        project.close()
    frame = make_data(1, 3).drop(columns=[TARGET])
    rows = json.loads(frame.to_json(orient="records"))
    return Setup(key, artifacts, rows)


def configure(folder: Path, database_url: str, artifacts: str, mode: str) -> None:
    values: dict[str, object] = {
        "database_url": database_url,
        "artifact_dir": artifacts,
        "startup_wait_s": 60,
        **MODES[mode],
    }
    folder.mkdir(exist_ok=True)
    write_settings_file(folder, values)


def run_mode(
    root: Path, database_url: str, setup: Setup, mode: str, changes: int, workers: int
) -> tuple[list[float], list[float]]:
    """Seconds from before each PUT on A to B's first answer under the new revision, and
    from A's answer (the change committed) to it."""
    folders = [root / f"{mode}-a", root / f"{mode}-b"]
    for folder in folders:
        configure(folder, database_url, setup.artifacts, mode)
    a = Replica(folders[0], workers)
    try:
        b = Replica(folders[1], workers)
    except BaseException:
        a.stop()
        raise
    headers = {"Authorization": f"Bearer {setup.key}"}
    body = {"rows": setup.rows}
    delays, after_commit = [], []
    try:
        with (
            httpx.Client(base_url=a.url, headers=headers, timeout=10) as to_a,
            httpx.Client(base_url=b.url, headers=headers, timeout=10) as to_b,
        ):
            for i in range(changes):
                weight = 40 + 20 * (i % 2)
                arms = [{"version": 1, "weight": weight}, {"version": 2, "weight": 100 - weight}]
                start = time.monotonic()
                r = to_a.put(ROUTE, json={"arms": arms, "reason": f"bench {i}"})
                r.raise_for_status()
                committed = time.monotonic()
                revision = r.json()["revision"]
                while True:
                    answer = to_b.post(PREDICT, json=body)
                    answer.raise_for_status()
                    if int(answer.headers["X-Route-Revision"]) == revision:
                        break
                    if time.monotonic() - start > LIMIT_S:
                        raise RuntimeError(f"B did not take revision {revision} in {LIMIT_S} s")
                seen = time.monotonic()
                delays.append(seen - start)
                after_commit.append(seen - committed)
                time.sleep(0.05)  # let the change settle before the next one
    finally:
        a.stop()
        b.stop()
    return delays, after_commit


def summary(delays: list[float]) -> dict[str, float]:
    ordered = sorted(delays)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] * 1000

    return {
        "changes": len(ordered),
        "p50_ms": round(at(0.50), 1),
        "p90_ms": round(at(0.90), 1),
        "p99_ms": round(at(0.99), 1),
        "max_ms": round(ordered[-1] * 1000, 1),
        "mean_ms": round(statistics.fmean(ordered) * 1000, 1),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--changes", type=int, default=50, help="route changes per mode")
    p.add_argument("--modes", default="push,poll", help="push, poll or both")
    p.add_argument("--workers", type=int, default=1, help="HTTP workers per replica")
    p.add_argument(
        "--postgres",
        default=os.environ.get(
            "POINTSMAN_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
        ),
        help="a PostgreSQL URL allowed to create databases",
    )
    p.add_argument("--json", type=Path, help="write the figures here too")
    args = p.parse_args(argv)
    admin = sa.create_engine(args.postgres, isolation_level="AUTOCOMMIT")
    name = f"pointsman_bench_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.engine.make_url(args.postgres).set(database=name).render_as_string(False)
    root = Path(tempfile.mkdtemp(prefix="pointsman-replicas-"))
    results: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "workers_per_replica": args.workers,
    }
    try:
        setup = build_project(root, url)
        for mode in args.modes.split(","):
            delays, after_commit = run_mode(root, url, setup, mode, args.changes, args.workers)
            results[mode] = {
                "from_put": summary(delays),
                "from_commit": summary(after_commit),
            }
            print(mode, json.dumps(results[mode]), flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
