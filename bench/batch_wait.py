"""Which `max_wait_ms` to default to: the same server with each value, side by side.

`max_wait_ms` lets a runner that already has several calls queued wait that long for more
before calling the model (batching.py). Waiting can only pay off when calls arrive together
faster than the model answers; it always costs the waiting calls latency. This runs
`pointsman serve` on copies of one demo project that differ only in
`[runners.churn] max_wait_ms`, and drives each with single-row requests at concurrency 1, 8
and 64 (wrk), the servers alternating round by round; medians are printed with each value's
throughput and p99 as a ratio to `max_wait_ms = 0`. See bench/README.md.

    .venv/bin/python bench/batch_wait.py [--waits 0,1,2,5] [--quick] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from harness import (
    BODY,
    VENV_BIN,
    WRK_SCRIPT,
    TreeServer,
    free_port,
    machine,
    make_demo,
    make_key,
    run_wrk,
    stop_all,
)


@dataclass
class Run:
    rps: float
    p50_ms: float
    p99_ms: float
    cpu_ms: float
    errors: int


@dataclass
class Cell:
    concurrency: int
    runs: dict[float, list[Run]] = field(default_factory=dict)

    def median(self, wait: float, metric: str) -> float:
        return float(statistics.median(getattr(r, metric) for r in self.runs[wait]))


def project_with_wait(project: Path, tmp: Path, wait: float) -> Path:
    copy = tmp / f"wait-{wait:g}"
    shutil.copytree(project, copy)
    with (copy / "pointsman.toml").open("a") as toml:
        toml.write(f"\n[runners.churn]\nmax_wait_ms = {wait:g}\n")
    return copy


def measure(server: TreeServer, args: argparse.Namespace, concurrency: int, script: Path) -> Run:
    run_wrk(server.url, script, concurrency, args.warmup, 1)
    cpu0 = server.cpu_s()
    raw = run_wrk(server.url, script, concurrency, args.duration, 1)
    n = max(raw["requests"], 1)
    return Run(
        rps=raw["requests"] / (raw["duration_us"] / 1e6),
        p50_ms=raw["p50_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000,
        cpu_ms=(server.cpu_s() - cpu0) * 1000 / n,
        errors=sum(raw["errors"].values()),
    )


def print_table(cells: list[Cell], waits: list[float]) -> None:
    print("| max_wait_ms | conc | req/s | p50 ms | p99 ms | CPU ms/req | req/s vs 0 | p99 vs 0 |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for cell in cells:
        base_rps, base_p99 = cell.median(waits[0], "rps"), cell.median(waits[0], "p99_ms")
        for wait in waits:
            rps, p50, p99, cpu = (
                cell.median(wait, m) for m in ("rps", "p50_ms", "p99_ms", "cpu_ms")
            )
            print(
                f"| {wait:g} | {cell.concurrency} | {rps:,.0f} | {p50:.2f} | {p99:.1f} | "
                f"{cpu:.2f} | {rps / base_rps:.2f} | {p99 / base_p99:.2f} |"
            )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--waits", default="0,1,2,5", help="max_wait_ms values; the first is the base")
    p.add_argument("--concurrency", default="1,8,64", help="connections, comma-separated")
    p.add_argument("--quick", action="store_true", help="1 s warm-up + 3 s measured, 2 rounds")
    p.add_argument("--warmup", type=float, default=3.0, help="seconds of discarded load")
    p.add_argument("--duration", type=float, default=8.0, help="measured seconds per run")
    p.add_argument("--rounds", type=int, default=3, help="runs of each server per cell")
    p.add_argument("--json", type=Path, help="also write the results to this JSON file")
    args = p.parse_args(argv)
    if args.quick:
        args.warmup, args.duration, args.rounds = 1.0, 3.0, 2
    args.waits = [float(w) for w in args.waits.split(",")]
    args.concurrency = [int(c) for c in args.concurrency.split(",")]
    if any(not 0 <= w <= 1000 for w in args.waits) or len(args.waits) < 2:
        p.error("--waits takes at least two values from 0 to 1000")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if shutil.which("wrk") is None:
        print("wrk not found: apt-get install -y wrk", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    info = machine()
    with tempfile.TemporaryDirectory(prefix="pointsman-wait-") as tmp_name:
        tmp = Path(tmp_name)
        project = make_demo(tmp / "demo")
        key = make_key(project)
        script = tmp / "post.lua"
        script.write_text(WRK_SCRIPT % (key, BODY))
        env = {**os.environ, "POINTSMAN_SERVER_LOG_LEVEL": "warning"}
        servers: dict[float, TreeServer] = {}
        for wait in args.waits:
            folder, port = project_with_wait(project, tmp, wait), free_port()
            argv = [str(VENV_BIN / "pointsman"), "--project", str(folder), "serve"]
            argv += ["--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
            log = tmp / f"wait-{wait:g}.log"
            path = "/v1/models/churn/predict"
            servers[wait] = TreeServer(f"wait {wait:g}", argv, env, path, port, log, key)
        cells = [Cell(c, {w: [] for w in args.waits}) for c in args.concurrency]
        try:
            for server in servers.values():
                server.start()
            for cell in cells:
                for round_ in range(args.rounds):
                    order = args.waits if round_ % 2 == 0 else args.waits[::-1]
                    for wait in order:
                        run = measure(servers[wait], args, cell.concurrency, script)
                        cell.runs[wait].append(run)
                        print(
                            f"  c={cell.concurrency:<3} max_wait_ms={wait:<5g} {run.rps:8.0f} "
                            f"req/s p50 {run.p50_ms:6.2f} ms p99 {run.p99_ms:7.1f} ms "
                            f"cpu {run.cpu_ms:.2f} ms errors {run.errors}",
                            file=sys.stderr,
                            flush=True,
                        )
        finally:
            stop_all([*servers.values()])
    print(f"machine: {info['cpus']} CPUs, load at start {info['loadavg_at_start'][0]:.2f}")
    print_table(cells, args.waits)
    if args.json:
        payload = {
            "machine": info,
            "cells": [
                {"concurrency": c.concurrency, "runs": {f"{w:g}": [r.__dict__ for r in v]
                                                        for w, v in c.runs.items()}}
                for c in cells
            ],
        }  # fmt: skip
        args.json.write_text(json.dumps(payload, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
