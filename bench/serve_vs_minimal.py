"""Single-row native predict: `pointsman serve` against a minimal uvicorn app, side by side.

Both servers answer the same churn model file of a demo project with the same number of
uvicorn worker processes; wrk drives each at several concurrencies. Cells alternate the
servers (pointsman, minimal, pointsman, minimal, ...) so that a noisy machine hurts both
alike, and every figure printed is the median over the rounds. See bench/README.md.

    .venv/bin/python bench/serve_vs_minimal.py [--quick] [--core] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import (
    BENCH,
    BODY,
    ROOT,
    VENV_BIN,
    WRK_SCRIPT,
    Run,
    Server,
    free_port,
    machine,
    make_demo,
    make_key,
    measure,
    progress,
)

# Targets of the issue: pointsman keeps >= 85 % of the minimal app's throughput at every
# concurrency and adds under half a millisecond to the median latency of a lone caller.
MIN_RATIO = 0.85
MAX_ADDED_P50_MS = 0.5


# --core: the serving core alone, as issue 2 measured it (no key check, no prediction log;
# the route's validation is set to allow by `core_project`).
CORE_ENV = {"POINTSMAN_AUTH": "false", "POINTSMAN_LOG_PREDICTIONS": "false"}


def build_servers(
    project: Path, model_file: Path, workers: int, logs: Path, key: str, core: bool = False
) -> list[Server]:
    """pointsman serve and the minimal app, same worker count, same log level."""
    env = {
        **os.environ,
        "POINTSMAN_SERVER_LOG_LEVEL": "warning",
        "BENCH_MODEL_PATH": str(model_file),
    }
    pm_env = {**env, **(CORE_ENV if core else {})}
    pm_port, min_port = free_port(), free_port()
    pointsman = Server(
        "pointsman",
        [
            *(str(VENV_BIN / "pointsman"), "--project", str(project), "serve"),
            *("--host", "127.0.0.1", "--port", str(pm_port), "--workers", str(workers)),
        ],
        pm_env,
        "/v1/models/churn/predict",
        pm_port,
        logs / f"pointsman-w{workers}.log",
        key,
    )
    minimal = Server(
        "minimal",
        [
            *(sys.executable, "-m", "uvicorn", "minimal_app:app", "--app-dir", str(BENCH)),
            *("--host", "127.0.0.1", "--port", str(min_port), "--workers", str(workers)),
            *("--log-level", "warning", "--no-access-log"),
        ],
        env,
        "/predict",
        min_port,
        logs / f"minimal-w{workers}.log",
        key,
    )
    return [pointsman, minimal]


def check_same_answer(servers: list[Server]) -> None:
    """Both servers must serve the same model: equal labels and probabilities."""
    answers = [s.predict() for s in servers]
    first, *rest = answers
    for server, answer in zip(servers[1:], rest, strict=True):
        same_labels = answer["predictions"] == first["predictions"]
        same_proba = all(
            abs(a[k] - b[k]) < 1e-9
            for a, b in zip(answer["probabilities"], first["probabilities"], strict=True)
            for k in a
        )
        if not (same_labels and same_proba):
            raise RuntimeError(
                f"{server.name} answers {answer} but {servers[0].name} answers {first}: "
                "they do not serve the same model file."
            )


@dataclass
class Cell:
    """One (workers, concurrency) cell: every run of both servers and their medians."""

    workers: int
    concurrency: int
    runs: dict[str, list[Run]] = field(default_factory=dict)

    def median(self, server: str, metric: str) -> float:
        return float(statistics.median(getattr(r, metric) for r in self.runs[server]))

    @property
    def ratio(self) -> float:
        return self.median("pointsman", "rps") / self.median("minimal", "rps")

    @property
    def added_p50_ms(self) -> float:
        return self.median("pointsman", "p50_ms") - self.median("minimal", "p50_ms")

    @property
    def added_cpu_ms(self) -> float:
        return self.median("pointsman", "cpu_ms") - self.median("minimal", "cpu_ms")

    @property
    def errors(self) -> int:
        return sum(r.errors for runs in self.runs.values() for r in runs)

    def to_json(self) -> dict[str, Any]:
        servers = {
            name: {
                "rps": self.median(name, "rps"),
                "p50_ms": self.median(name, "p50_ms"),
                "p99_ms": self.median(name, "p99_ms"),
                "cpu_ms_per_request": self.median(name, "cpu_ms"),
                "runs": [vars(r) for r in runs],
            }
            for name, runs in self.runs.items()
        }
        return {
            "workers": self.workers,
            "concurrency": self.concurrency,
            **servers,
            "ratio": self.ratio,
            "added_p50_ms": self.added_p50_ms,
            "added_cpu_ms_per_request": self.added_cpu_ms,
            "errors": self.errors,
        }


def bench_workers(
    workers: int, args: argparse.Namespace, project: Path, model_file: Path, tmp: Path, key: str
) -> list[Cell]:
    """Start both servers with `workers` processes, run every concurrency, stop them."""
    servers = build_servers(project, model_file, workers, tmp, key, args.core)
    script = tmp / "post.lua"
    script.write_text(WRK_SCRIPT % (key, BODY))
    cells = []
    try:
        for server in servers:
            server.start()
        check_same_answer(servers)
        for concurrency in args.concurrency:
            cell = Cell(workers, concurrency, {s.name: [] for s in servers})
            for round_ in range(args.rounds):
                for server in servers:  # A, B, A, B, ...: drift and noise hit both
                    run = measure(server, args, concurrency, script)
                    cell.runs[server.name].append(run)
                    progress(f"w={workers} c={concurrency} round {round_ + 1}: {server.name}", run)
            cells.append(cell)
    finally:
        for server in servers:
            server.stop()
    return cells


# -- report ---------------------------------------------------------------------------------
def verdict(cells: list[Cell]) -> tuple[bool, list[str]]:
    """PASS when every cell keeps the ratio and every concurrency-1 cell the added p50."""
    misses = []
    for c in cells:
        where = f"workers={c.workers} concurrency={c.concurrency}"
        if c.ratio < MIN_RATIO:
            misses.append(f"{where}: throughput ratio {c.ratio:.2f} < {MIN_RATIO}")
        if c.concurrency == 1 and c.added_p50_ms >= MAX_ADDED_P50_MS:
            misses.append(f"{where}: added p50 {c.added_p50_ms:.2f} ms >= {MAX_ADDED_P50_MS} ms")
        if c.errors:
            misses.append(f"{where}: {c.errors} failed requests")
    return not misses, misses


METRICS = ("rps", "p50_ms", "p99_ms", "cpu_ms")


def print_table(cells: list[Cell]) -> None:
    side = f"{'req/s':>7} {'p50 ms':>7} {'p99 ms':>8} {'cpu ms':>6}"
    head = (
        f"{'workers':>7} {'conc':>4} | {side} | {side} | {'ratio':>5} {'+p50 ms':>7} {'+cpu ms':>7}"
    )
    print(f"{'':>12} | {'pointsman':^30} | {'minimal':^30} | pointsman - minimal")
    print(head)
    print("-" * len(head))
    for c in cells:
        pm, mn = ([c.median(name, m) for m in METRICS] for name in ("pointsman", "minimal"))
        print(
            f"{c.workers:>7} {c.concurrency:>4} | "
            f"{pm[0]:>7.1f} {pm[1]:>7.2f} {pm[2]:>8.2f} {pm[3]:>6.2f} | "
            f"{mn[0]:>7.1f} {mn[1]:>7.2f} {mn[2]:>8.2f} {mn[3]:>6.2f} | "
            f"{c.ratio:>5.2f} {c.added_p50_ms:>+7.2f} {c.added_cpu_ms:>+7.2f}"
        )
    print("cpu ms = server CPU time (user + system, all its processes) per request")


# -- main -------------------------------------------------------------------------------


def core_project(project: Path, tmp: Path) -> Path:
    """A copy of `project` whose churn route skips validation (for --core)."""
    copy = tmp / "core"
    shutil.copytree(project, copy)
    argv = [str(VENV_BIN / "pointsman"), "--project", str(copy), "route", "churn"]
    argv += ["--validation", "allow"]
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, cwd=ROOT)
    return copy


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="1 s warm-up + 2 s measure per cell")
    p.add_argument("--warmup", type=float, default=3.0, help="seconds of discarded load")
    p.add_argument("--duration", type=float, default=8.0, help="measured seconds per run")
    p.add_argument("--rounds", type=int, default=3, help="runs of each server per cell (>= 2)")
    p.add_argument("--workers", default="1,2", help="worker-process counts, comma-separated")
    p.add_argument("--concurrency", default="1,8,64", help="connections, comma-separated")
    p.add_argument("--wrk-threads", type=int, default=1, help="wrk threads (it shares the CPUs)")
    p.add_argument("--project", type=Path, help="existing demo project (default: a fresh one)")
    p.add_argument("--json", type=Path, help="also write the results to this JSON file")
    p.add_argument(
        "--core",
        action="store_true",
        help="pointsman without its per-request features: auth and the prediction log off, "
        "validation allow (on a copy of the project)",
    )
    args = p.parse_args(argv)
    if args.quick:
        args.warmup, args.duration = 1.0, 2.0
    args.workers = [int(w) for w in args.workers.split(",")]
    args.concurrency = [int(c) for c in args.concurrency.split(",")]
    if args.rounds < 2:
        p.error("--rounds must be at least 2: the servers alternate A, B, A, B")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if shutil.which("wrk") is None:
        print("wrk not found: apt-get install -y wrk", file=sys.stderr)
        return 2
    # A SIGTERM to the benchmark must still stop the servers: turn it into SystemExit.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    info = machine()
    with tempfile.TemporaryDirectory(prefix="pointsman-bench-") as tmp_name:
        tmp = Path(tmp_name)
        project = args.project.resolve() if args.project else make_demo(tmp / "demo")
        if args.core:
            project = core_project(project, tmp)
        model_file = project / "models" / "churn_v1_logreg.joblib"
        key = make_key(project)
        cells: list[Cell] = []
        for workers in args.workers:
            cells += bench_workers(workers, args, project, model_file, tmp, key)
    ok, misses = verdict(cells)
    print()
    print(
        f"single-row native predict, median of {args.rounds} runs per cell "
        f"({args.warmup:g} s warm-up + {args.duration:g} s measured)"
    )
    print(f"load generator: {info['load_generator']}, {args.wrk_threads} thread(s)")
    print(f"machine: {info['cpus']} CPUs ({info['cpu']}); wrk runs on the same CPUs")
    if args.core:
        print("pointsman: --core (no auth, no prediction log, validation allow)")
    print()
    print_table(cells)
    print()
    targets = f"ratio >= {MIN_RATIO} everywhere, added p50 < {MAX_ADDED_P50_MS} ms at conc 1"
    print(("PASS" if ok else "FAIL") + f" ({targets})")
    for miss in misses:
        print(f"  {miss}")
    if args.json:
        report = {
            "benchmark": "serve_vs_minimal",
            "config": {
                k: getattr(args, k)
                for k in (
                    "warmup",
                    "duration",
                    "rounds",
                    "workers",
                    "concurrency",
                    "wrk_threads",
                    "core",
                )
            },
            "machine": info,
            "targets": {"min_ratio": MIN_RATIO, "max_added_p50_ms": MAX_ADDED_P50_MS},
            "cells": [c.to_json() for c in cells],
            "pass": ok,
            "misses": misses,
        }
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
