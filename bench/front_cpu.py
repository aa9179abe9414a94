"""The front's CPU per request with a model that costs nothing, under each HTTP server.

Issue 14's "cheap front": what pointsman spends around the model (HTTP, key check, decode,
validation, routing, the prediction log, metrics), every default feature on, measured in the
live server rather than in a tight loop. The model is a Python class that answers zeros, so
whatever CPU the server uses is the front's; the runner's own CPU is counted apart.

Servers (the same project, app and key; one HTTP worker each, so per-process figures are
clean):

- `uvicorn`: `pointsman serve --workers 1` (uvicorn with uvloop and httptools, the default);
- `granian`: the same app under granian (Rust HTTP, `--interface asgi`), when it is installed;
- `baseline` (with `--baseline DIR`): `pointsman serve --workers 1` running the code of
  another checkout (say, the commit before a change), to measure a change side by side;
- `floor`: bench/floor_app.py under uvicorn (uvloop, httptools), a bare ASGI app answering a
  fixed prediction: the HTTP server's own cost, the least any Python front can spend.

wrk drives single-row requests at concurrency 1, 8 and 64; the servers alternate round by
round, and the figures printed are medians over the rounds. CPU comes from /proc: the
front is every process of the server's tree but the runners (the forkserver and its children),
which is the HTTP worker with its threads (supervisor, periodic jobs), for granian its
supervising parent, and the server's background processes (the prediction log's process,
which ships and rolls up, and the drift child); the HTTP worker's share is printed apart.
See bench/README.md.

    .venv/bin/python bench/front_cpu.py [--quick] [--servers uvicorn,granian] [--json out.json]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

from harness import (
    BODY,
    CLOCK_TICKS,
    ROOT,
    VENV_BIN,
    WRK_SCRIPT,
    Proc,
    TreeServer,
    free_port,
    machine,
    make_demo,
    process_tree,
    run_wrk,
    stop_all,
)

MAX_FRONT_CPU_MS = 0.3  # issue 14: the front's CPU per single-row request, no-op model

NOOP_MODEL = textwrap.dedent(
    """\
    import numpy as np


    class Noop:
        classes_ = [0, 1]

        def predict(self, frame):
            return np.zeros(len(frame), dtype=np.int64)

        def predict_proba(self, frame):
            out = np.zeros((len(frame), 2))
            out[:, 0] = 1.0
            return out
    """
)
SERVERS = ("uvicorn", "granian", "floor", "baseline")


def noop_project(folder: Path, code: Path | None = None) -> Path:
    """A demo project whose churn route answers with a no-op class (version 3), made by the
    code of checkout `code` (default: this one), so that its store is at that code's schema."""
    env = {**os.environ, **({"PYTHONPATH": str(code.resolve())} if code else {})}
    pointsman = [str(VENV_BIN / "pointsman")]
    demo = [*pointsman, "demo", str(folder), "--no-serve", "--port", "8080"]
    subprocess.run(demo, check=True, stdout=subprocess.DEVNULL, cwd=ROOT, env=env)
    (folder / "noop_model.py").write_text(NOOP_MODEL)
    pointsman += ["--project", str(folder)]
    register = [*pointsman, "register", "churn", f"{folder / 'noop_model.py'}:Noop"]
    register += ["--training-data", str(folder / "models" / "churn_train.csv")]
    register += ["--target", "churned"]
    for argv in (register, [*pointsman, "deploy", "churn", "3"]):
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, cwd=ROOT, env=env)
    return folder


def make_key(project: Path, code: Path | None = None) -> str:
    """A predict key, made by the code of checkout `code` (default: this one)."""
    env = {**os.environ, **({"PYTHONPATH": str(code.resolve())} if code else {})}
    argv = [str(VENV_BIN / "pointsman"), "--project", str(project), "keys", "create"]
    argv += [f"bench-{os.getpid()}", "--scope", "predict:churn", "--json"]
    done = subprocess.run(argv, check=True, capture_output=True, text=True, cwd=ROOT, env=env)
    key: str = json.loads(done.stdout)["key"]
    return key


def build(
    name: str, project: Path, logs: Path, key: str, baseline: Path | None = None
) -> TreeServer:
    port = free_port()
    env = {**os.environ, "POINTSMAN_SERVER_LOG_LEVEL": "warning"}
    path = "/v1/models/churn/predict"
    if name in ("uvicorn", "baseline"):
        argv = [str(VENV_BIN / "pointsman"), "--project", str(project), "serve"]
        argv += ["--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
        if name == "baseline":
            # The console script puts PYTHONPATH before the installed package.
            assert baseline is not None
            env["PYTHONPATH"] = str(baseline.resolve())
    elif name == "floor":
        path = "/predict"
        argv = [sys.executable, "-m", "uvicorn", "floor_app:app", "--app-dir", str(ROOT / "bench")]
        argv += ["--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
        argv += ["--loop", "uvloop", "--http", "httptools", "--lifespan", "off"]
        argv += ["--log-level", "warning", "--no-access-log"]
    else:
        # The app supervises its own runners when no `pointsman serve` names their folder,
        # exactly as the single-worker uvicorn server does.
        env["POINTSMAN_PROJECT"] = str(project)
        argv = [str(VENV_BIN / "granian"), "--interface", "asgi", "--factory"]
        argv += ["--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
        argv += ["--loop", "uvloop", "--log-level", "warning"]
        argv += ["pointsman.api.app:app_from_environment"]
    return TreeServer(name, argv, env, path, port, logs / f"{name}.log", key)


def is_runner(proc: Proc) -> bool:
    try:
        cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"multiprocessing.forkserver" in cmdline or b"resource_tracker" in cmdline


def is_background(proc: Proc) -> bool:
    """A background process of the server (the log process, the drift child): spawned."""
    try:
        cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"spawn_main" in cmdline


def cpu_split(server: TreeServer) -> tuple[float, float, float]:
    """CPU seconds so far of (the front, the runners, the front's background processes) of
    `server`'s process tree."""
    assert server.proc is not None
    front = runners = background = 0
    for proc in process_tree(server.proc.pid):
        if is_runner(proc):
            runners += proc.cpu_ticks
        else:
            front += proc.cpu_ticks
            if is_background(proc):
                background += proc.cpu_ticks
    return front / CLOCK_TICKS, runners / CLOCK_TICKS, background / CLOCK_TICKS


@dataclass
class Run:
    rps: float
    p50_ms: float
    p99_ms: float
    front_ms: float  # the front's CPU per request
    http_ms: float  # of which the HTTP worker's (the front less its background processes)
    runner_ms: float
    errors: int


def measure(server: TreeServer, args: argparse.Namespace, concurrency: int, script: Path) -> Run:
    run_wrk(server.url, script, concurrency, args.warmup, 1)
    front0, runner0, back0 = cpu_split(server)
    raw = run_wrk(server.url, script, concurrency, args.duration, 1)
    front1, runner1, back1 = cpu_split(server)
    n = max(raw["requests"], 1)
    return Run(
        rps=raw["requests"] / (raw["duration_us"] / 1e6),
        p50_ms=raw["p50_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000,
        front_ms=(front1 - front0) * 1000 / n,
        http_ms=((front1 - back1) - (front0 - back0)) * 1000 / n,
        runner_ms=(runner1 - runner0) * 1000 / n,
        errors=sum(raw["errors"].values()),
    )


@dataclass
class Cell:
    concurrency: int
    runs: dict[str, list[Run]] = field(default_factory=dict)

    def median(self, server: str, metric: str) -> float:
        return float(statistics.median(getattr(r, metric) for r in self.runs[server]))


METRICS = ("rps", "p50_ms", "p99_ms", "front_ms", "http_ms", "runner_ms")


def print_table(cells: list[Cell], names: list[str]) -> None:
    print(
        "| server | conc | req/s | p50 ms | p99 ms | front CPU ms/req | of which HTTP worker "
        "| runner CPU ms/req |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for cell in cells:
        for name in names:
            rps, p50, p99, front, http, runner = (cell.median(name, m) for m in METRICS)
            print(
                f"| {name} | {cell.concurrency} | {rps:,.0f} | {p50:.2f} | {p99:.1f} | "
                f"{front:.3f} | {http:.3f} | {runner:.3f} |"
            )
    a = names[0]
    for b in names[1:]:
        for cell in cells:
            ratio = cell.median(a, "rps") / cell.median(b, "rps")
            cpu = cell.median(a, "front_ms") / cell.median(b, "front_ms")
            print(f"c={cell.concurrency}: {a}/{b} req/s {ratio:.2f}, front CPU {cpu:.2f}")


def verdicts(cells: list[Cell]) -> list[tuple[bool, str]]:
    out = []
    for cell in cells:
        front = cell.median("uvicorn", "front_ms")
        http = cell.median("uvicorn", "http_ms")
        out.append(
            (
                front <= MAX_FRONT_CPU_MS,
                f"front CPU at c={cell.concurrency}: {front:.3f} ms/req, HTTP worker "
                f"{http:.3f} (target <= {MAX_FRONT_CPU_MS} ms)",
            )
        )
    return out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="1 s warm-up + 3 s measured, 2 rounds")
    p.add_argument("--warmup", type=float, default=3.0, help="seconds of discarded load")
    p.add_argument("--duration", type=float, default=10.0, help="measured seconds per run")
    p.add_argument("--rounds", type=int, default=3, help="runs of each server per cell")
    p.add_argument("--concurrency", default="1,8,64", help="connections, comma-separated")
    p.add_argument(
        "--servers",
        default="uvicorn,granian,floor",
        help="uvicorn (pointsman's default server), granian (the same app on granian), floor "
        "(a bare ASGI app on uvicorn: the HTTP floor)",
    )
    p.add_argument(
        "--baseline",
        type=Path,
        help="another pointsman checkout whose code to serve side by side (adds `baseline`)",
    )
    p.add_argument(
        "--model",
        choices=("noop", "demo"),
        default="noop",
        help="noop: a model that costs nothing (the front alone); demo: the demo's deployed "
        "churn version 1 (a scikit-learn pipeline), for the capacity model of docs/deploy.md",
    )
    p.add_argument("--json", type=Path, help="also write the results to this JSON file")
    args = p.parse_args(argv)
    if args.quick:
        args.warmup, args.duration, args.rounds = 1.0, 3.0, 2
    args.concurrency = [int(c) for c in args.concurrency.split(",")]
    args.servers = [s for s in args.servers.split(",") if s]
    unknown = set(args.servers) - {"uvicorn", "granian", "floor"}
    if unknown or "uvicorn" not in args.servers:
        p.error(f"--servers takes uvicorn (always), granian and floor, not {','.join(unknown)}")
    if args.baseline is not None:
        if not (args.baseline / "pointsman" / "__init__.py").is_file():
            p.error(f"--baseline {args.baseline} is not a pointsman checkout")
        args.servers.append("baseline")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if shutil.which("wrk") is None:
        print("wrk not found: apt-get install -y wrk", file=sys.stderr)
        return 2
    if "granian" in args.servers and importlib.util.find_spec("granian") is None:
        print("granian is not installed (pip install granian): uvicorn only", file=sys.stderr)
        args.servers.remove("granian")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    info = machine()
    with tempfile.TemporaryDirectory(prefix="pointsman-front-") as tmp_name:
        tmp = Path(tmp_name)
        if args.model == "noop":
            project = noop_project(tmp / "demo")
        else:
            project = tmp / "demo"
            make_demo(project)
        key = make_key(project)
        scripts = {name: tmp / "post.lua" for name in args.servers}
        scripts["uvicorn"].write_text(WRK_SCRIPT % (key, BODY))
        servers = [build(name, project, tmp, key) for name in args.servers if name != "baseline"]
        if args.baseline is not None:  # its own project: the store at its code's schema
            if args.model != "noop":
                raise SystemExit("--baseline measures the no-op model only")
            theirs = noop_project(tmp / "baseline-demo", args.baseline)
            their_key = make_key(theirs, args.baseline)
            scripts["baseline"] = tmp / "post-baseline.lua"
            scripts["baseline"].write_text(WRK_SCRIPT % (their_key, BODY))
            servers.append(build("baseline", theirs, tmp, their_key, args.baseline))
        cells = [Cell(c, {s.name: [] for s in servers}) for c in args.concurrency]
        try:
            for server in servers:
                server.start()
            for cell in cells:
                for round_ in range(args.rounds):
                    for server in servers if round_ % 2 == 0 else servers[::-1]:
                        run = measure(server, args, cell.concurrency, scripts[server.name])
                        cell.runs[server.name].append(run)
                        print(
                            f"  c={cell.concurrency:<3} {server.name:<8} {run.rps:8.0f} req/s "
                            f"p50 {run.p50_ms:6.2f} ms p99 {run.p99_ms:7.1f} ms "
                            f"front {run.front_ms:.3f} ms (HTTP worker {run.http_ms:.3f}) "
                            f"runner {run.runner_ms:.3f} ms "
                            f"errors {run.errors}",
                            file=sys.stderr,
                            flush=True,
                        )
        finally:
            stop_all([*servers])
    names = [s.name for s in servers]
    print(f"machine: {info['cpus']} CPUs, load at start {info['loadavg_at_start'][0]:.2f}")
    print_table(cells, names)
    results = verdicts(cells)
    for ok, line in results:
        print(f"{'PASS' if ok else 'FAIL'}  {line}")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "machine": info,
                    "cells": [
                        {
                            "concurrency": c.concurrency,
                            "runs": {k: [r.__dict__ for r in v] for k, v in c.runs.items()},
                        }
                        for c in cells
                    ],
                },
                indent=2,
            )
        )
    return 0 if all(ok for ok, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())
