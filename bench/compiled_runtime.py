"""The compiled runtime against the original, through the served path, in one run.

A fresh demo project (churn v1 deployed, compiled at register: it agreed) is served twice by
`pointsman serve` with every default feature on (keys, validation, prediction log, metrics):
once as it is (`runtime = auto`: the compiled ONNX artifact answers) and once from a copy
whose pointsman.toml sets `[runners.churn] runtime = "original"`. wrk sends single-row
requests at concurrency 1 to each in turn, round after round; the medians are printed with
the issue's target (p50 <= 1.0 ms at concurrency 1 with the compiled runtime).

It also times `pointsman register` of the same model file into fresh projects, compiling
(the default) and not (`--no-compile`), to say what compiling adds. See
bench/README.md.

    .venv/bin/python bench/compiled_runtime.py [--rounds 3] [--duration 8] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from harness import (
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

TARGET_P50_MS = 1.0  # issue 14: p50 at concurrency 1 with the compiled runtime
RUNTIMES = ("compiled", "original")
CHECK_FIGURES = (
    "agreed",
    "rows",
    "label_agreement",
    "max_probability_diff",
    "precision",
    "seconds",
)


def pointsman(*args: str) -> subprocess.CompletedProcess[str]:
    argv = [str(VENV_BIN / "pointsman"), *args]
    return subprocess.run(argv, check=True, capture_output=True, text=True, cwd=ROOT)


def original_copy(project: Path, tmp: Path) -> Path:
    """A copy of the demo project whose churn runners run the original artifact."""
    copy = tmp / "original"
    shutil.copytree(project, copy)
    with (copy / "pointsman.toml").open("a") as toml:
        toml.write('\n[runners.churn]\nruntime = "original"\n')
    return copy


def server(name: str, project: Path, logs: Path, key: str, workers: int) -> Server:
    port = free_port()
    argv = [str(VENV_BIN / "pointsman"), "--project", str(project), "serve"]
    argv += ["--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]
    env = {**os.environ, "POINTSMAN_SERVER_LOG_LEVEL": "warning"}
    return Server(name, argv, env, "/v1/models/churn/predict", port, logs / f"{name}.log", key)


def runtime_of(project: Path) -> str:
    """Which runtime answered the newest logged request (the prediction record says it)."""
    done = pointsman("--project", str(project), "log", "churn", "--json", "--limit", "1")
    records = json.loads(done.stdout)
    items = records if isinstance(records, list) else records.get("predictions", [])
    return str(items[0].get("runtime")) if items else "?"


def time_register(model_file: Path, data: Path, tmp: Path, compile_: bool, n: int) -> list[float]:
    """Seconds of `n` registrations of the model file into fresh projects."""
    seconds = []
    for i in range(n):
        folder = tmp / f"register-{compile_}-{i}"
        pointsman("init", str(folder))
        start = time.perf_counter()
        pointsman("--project", str(folder), "register", "churn", str(model_file),
                  "--training-data", str(data), "--target", "churned",
                  "--compile" if compile_ else "--no-compile")  # fmt: skip
        seconds.append(time.perf_counter() - start)
    return seconds


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--warmup", type=float, default=3.0, help="seconds of discarded load")
    p.add_argument("--duration", type=float, default=8.0, help="measured seconds per run")
    p.add_argument("--rounds", type=int, default=3, help="runs of each runtime")
    p.add_argument("--workers", type=int, default=1, help="HTTP worker processes")
    p.add_argument("--registers", type=int, default=3, help="timed registrations of each kind")
    p.add_argument("--wrk-threads", type=int, default=1)
    p.add_argument("--json", type=Path, help="also write the results to this JSON file")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if shutil.which("wrk") is None:
        print("wrk not found: apt-get install -y wrk", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="pointsman-compiled-") as tmp_name:
        tmp = Path(tmp_name)
        project = make_demo(tmp / "demo")
        model_file = next((project / "models").glob("churn_v1*.joblib"))
        data = project / "models" / "churn_train.csv"
        shown = json.loads(
            pointsman("--project", str(project), "show", "churn", "1", "--json").stdout
        )
        compiled = shown["compiled"]
        key = make_key(project)
        projects = {"compiled": project, "original": original_copy(project, tmp)}
        script = tmp / "bench.lua"
        script.write_text(WRK_SCRIPT % (key, BODY))
        servers = {
            name: server(name, folder, tmp, key, args.workers) for name, folder in projects.items()
        }
        runs: dict[str, list[Run]] = {name: [] for name in RUNTIMES}
        answered_by: dict[str, str] = {}
        try:
            for s in servers.values():
                s.start()
            answers = {name: s.predict() for name, s in servers.items()}
            for round_ in range(args.rounds):
                for name in RUNTIMES:
                    run = measure(servers[name], args, 1, script)
                    runs[name].append(run)
                    progress(f"round {round_ + 1} {name}", run)
        finally:
            for s in servers.values():
                s.stop()
        for name, folder in projects.items():
            answered_by[name] = runtime_of(folder)
        with_compile = time_register(model_file, data, tmp, True, args.registers)
        without = time_register(model_file, data, tmp, False, args.registers)

    result: dict[str, Any] = {
        "machine": machine(),
        "workers": args.workers,
        "compiled_check": {k: compiled.get(k) for k in CHECK_FIGURES},
        "answered_by": answered_by,
        "same_answer": answers["compiled"]["predictions"] == answers["original"]["predictions"],
        "c1": {
            name: {
                "p50_ms": statistics.median(r.p50_ms for r in rs),
                "p99_ms": statistics.median(r.p99_ms for r in rs),
                "rps": statistics.median(r.rps for r in rs),
                "cpu_ms": statistics.median(r.cpu_ms for r in rs),
                "errors": sum(r.errors for r in rs),
            }
            for name, rs in runs.items()
        },
        "register_s": {
            "compiling": statistics.median(with_compile),
            "not_compiling": statistics.median(without),
        },
    }
    c1 = result["c1"]
    print(f"machine: {result['machine']['cpus']} CPUs; {args.workers} HTTP worker(s); "
          f"medians of {args.rounds} rounds of {args.duration:g} s")  # fmt: skip
    print(f"compiled check: {result['compiled_check']}")
    print(f"prediction records say: {answered_by}")
    print("| runtime (c=1, 1 row) | p50 ms | p99 ms | req/s | server CPU ms/req |")
    print("|---|---|---|---|---|")
    for name in RUNTIMES:
        x = c1[name]
        print(f"| {name} | {x['p50_ms']:.2f} | {x['p99_ms']:.2f} | {x['rps']:.0f} | "
              f"{x['cpu_ms']:.2f} |")  # fmt: skip
    ratio = c1["original"]["p50_ms"] / c1["compiled"]["p50_ms"]
    reg = result["register_s"]
    print(f"compiled p50 is {ratio:.2f}x faster; target p50 <= {TARGET_P50_MS} ms: "
          f"{'PASS' if c1['compiled']['p50_ms'] <= TARGET_P50_MS else 'MISSED'}")  # fmt: skip
    added = reg["compiling"] - reg["not_compiling"]
    print(f"register: {reg['compiling']:.2f} s compiling, {reg['not_compiling']:.2f} s not "
          f"(+{added:.2f} s, medians of {args.registers})")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
