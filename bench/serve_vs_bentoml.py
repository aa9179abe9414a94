"""Issue 14's proof: pointsman (batching on and off), a minimal app and BentoML 1.4, one run.

Four servers answer the same churn model file of a demo project on the same rows:

- `pointsman`: `pointsman serve` with every default feature on (keys, validation, the
  prediction log, metrics) and the runner's batching at its defaults;
- `pm-nobatch`: the same on a copy of the project whose pointsman.toml sets
  `[runners.churn] max_batch_rows = 1` (one model call per request);
- `minimal`: bench/minimal_app.py under uvicorn, one `predict_proba` per request;
- `bentoml`: bench/bentoml_service.py under `bentoml serve`, in BentoML's own virtual
  environment (made on first use in a cache folder outside the repository), with adaptive
  batching (`@bentoml.api(batchable=True)`).

wrk drives single-row requests at concurrency 1, 8 and 64 and 16-row requests at 64; in each
cell the servers run in turn, round after round, and every figure printed is the median over
the rounds. See bench/README.md.

    .venv/bin/python bench/serve_vs_bentoml.py [--quick] [--json out.json]
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
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import (
    BENCH,
    ROW,
    VENV_BIN,
    WRK_SCRIPT,
    Run,
    Server,
    TreeServer,
    free_port,
    machine,
    make_demo,
    make_key,
    measure,
    progress,
    stop_all,
)

# Targets of issue 14 ("Proof"), on the 2-core machine.
MIN_RATIO_VS_BENTOML = 5.0  # pointsman req/s / BentoML req/s at concurrency 64
MAX_P99_MS = 50.0  # pointsman's p99 at concurrency 64

BENTOML_SPEC = "bentoml>=1.4,<1.5"
# The packages the joblib file needs, pinned to the versions of the interpreter running this.
MODEL_PACKAGES = ("scikit-learn", "joblib", "pandas", "numpy", "scipy")
DEFAULT_BENTOML_VENV = Path.home() / ".cache" / "pointsman-bench" / "bentoml"

POINTSMAN, NOBATCH, MINIMAL, BENTOML = "pointsman", "pm-nobatch", "minimal", "bentoml"
GRANIAN = "pm-granian"  # with --granian: pointsman on `--http-server granian`
ORDER = (POINTSMAN, NOBATCH, MINIMAL, BENTOML, GRANIAN)
TRAIN_CSV = "churn_train.csv"


# -- the rows ---------------------------------------------------------------------------------
def bench_rows(project: Path, n: int) -> list[dict[str, Any]]:
    """The single-row benchmark row, then the first n - 1 rows of the demo's training data."""
    import pandas as pd  # the pointsman venv has it; imported here to keep start-up light

    frame = pd.read_csv(project / "models" / TRAIN_CSV, nrows=n - 1)
    frame = frame.drop(columns=[c for c in frame.columns if c not in ROW])
    rows: list[dict[str, Any]] = json.loads(frame.to_json(orient="records"))
    return [ROW, *rows]


def body(rows: list[dict[str, Any]]) -> str:
    return json.dumps({"rows": rows})


# -- BentoML's environment ------------------------------------------------------------------
def installed_versions() -> dict[str, str]:
    from importlib.metadata import version

    return {name: version(name) for name in MODEL_PACKAGES}


def bentoml_venv(folder: Path) -> Path:
    """BentoML's own virtualenv, made on first use; the path of its `bentoml` command.

    It gets BentoML 1.4 and the model's packages at this interpreter's versions so that the
    joblib file loads the same there. An existing one is checked, not rebuilt.
    """
    pins = installed_versions()
    python = folder / "bin" / "python"
    check = (
        "import importlib.metadata as m, json, sys; "
        f"names = {[*MODEL_PACKAGES, 'bentoml']!r}; "
        "print(json.dumps({n: m.version(n) for n in names}))"
    )
    if python.exists():
        done = subprocess.run([python, "-c", check], capture_output=True, text=True)
        if done.returncode == 0:
            have = json.loads(done.stdout)
            if all(have[k] == v for k, v in pins.items()) and have["bentoml"].startswith("1.4."):
                return folder / "bin" / "bentoml"
    print(f"making BentoML's virtualenv in {folder} (a few minutes, once)", file=sys.stderr)
    folder.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(folder)], check=True)
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run(
        [*pip, BENTOML_SPEC, *(f"{k}=={v}" for k, v in pins.items())], check=True, timeout=1200
    )
    return folder / "bin" / "bentoml"


# -- servers ----------------------------------------------------------------------------------
def nobatch_project(project: Path, tmp: Path) -> Path:
    """A copy of `project` (keys included) whose churn runner merges no calls."""
    copy = tmp / "nobatch"
    shutil.copytree(project, copy)
    with (copy / "pointsman.toml").open("a") as toml:
        toml.write("\n[runners.churn]\nmax_batch_rows = 1\n")
    return copy


def build_servers(
    project: Path,
    nobatch: Path,
    bentoml: Path,
    workers: int,
    logs: Path,
    key: str,
    granian: bool = False,
) -> list[Server]:
    model_file = project / "models" / "churn_v1_logreg.joblib"
    env = {
        **os.environ,
        "POINTSMAN_SERVER_LOG_LEVEL": "warning",
        "BENCH_MODEL_PATH": str(model_file),
        "BENCH_WORKERS": str(workers),
        "BENTOML_DO_NOT_TRACK": "True",
    }
    servers: list[Server] = []
    pointsmen = [(POINTSMAN, project), (NOBATCH, nobatch)]
    if granian:  # a copy of its own, as pm-nobatch has: no store or spool shared
        copy = logs / "granian"
        shutil.copytree(project, copy)
        pointsmen.append((GRANIAN, copy))
    for name, folder in pointsmen:
        port = free_port()
        argv = [str(VENV_BIN / "pointsman"), "--project", str(folder), "serve"]
        argv += ["--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]
        argv += ["--http-server", "granian"] if name == GRANIAN else []
        path = "/v1/models/churn/predict"
        servers.append(TreeServer(name, argv, env, path, port, logs / f"{name}.log", key))
    port = free_port()
    argv = [sys.executable, "-m", "uvicorn", "minimal_app:app", "--app-dir", str(BENCH)]
    argv += ["--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]
    argv += ["--log-level", "warning", "--no-access-log"]
    servers.append(TreeServer(MINIMAL, argv, env, "/predict", port, logs / f"{MINIMAL}.log", key))
    port = free_port()
    argv = [str(bentoml), "serve", "bentoml_service:Churn", "--working-dir", str(BENCH)]
    argv += ["--host", "127.0.0.1", "--port", str(port)]
    # BentoML's interpreter gets none of pointsman's import path.
    bento_env = {k: v for k, v in env.items() if k != "PYTHONPATH"}
    servers.append(
        TreeServer(BENTOML, argv, bento_env, "/predict", port, logs / f"{BENTOML}.log", key)
    )
    return servers


def post(server: Server, payload: str) -> Any:
    request = urllib.request.Request(
        server.url,
        payload.encode(),
        {"Content-Type": "application/json", "Authorization": f"Bearer {server.key}"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def labels_of(answer: Any) -> list[str]:
    """The labels of an answer: pointsman's and the minimal app's dict, or BentoML's list."""
    if isinstance(answer, dict):
        return [str(p) for p in answer["predictions"]]
    return [str(item["prediction"]) for item in answer]


def check_same_labels(servers: list[Server], rows: list[dict[str, Any]]) -> list[str]:
    """Every server must give the same label to every benchmark row; those labels."""
    answers = {s.name: labels_of(post(s, body(rows))) for s in servers}
    first = answers[servers[0].name]
    if len(first) != len(rows):
        raise RuntimeError(f"{servers[0].name} answered {len(first)} labels for {len(rows)} rows")
    for name, labels in answers.items():
        if labels != first:
            raise RuntimeError(f"{name} answers labels {labels}, {servers[0].name} {first}")
    return first


def metric_of(run: Run, metric: str) -> float:
    """A figure of a run; `ok_rps` counts only the answers that were not errors.

    wrk counts a 503 as a completed request, and a server shedding load answers those fast:
    its plain req/s would reward refusing work.
    """
    if metric == "ok_rps":
        return run.rps * max(run.requests - run.errors, 0) / max(run.requests, 1)
    value: float = getattr(run, metric)
    return value


# -- cells --------------------------------------------------------------------------------------
@dataclass
class Cell:
    """One (rows per request, concurrency) cell: every run of every server."""

    rows: int
    concurrency: int
    runs: dict[str, list[Run]] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"{self.rows} row{'s' if self.rows > 1 else ''} c={self.concurrency}"

    def median(self, server: str, metric: str) -> float:
        return float(statistics.median(metric_of(r, metric) for r in self.runs[server]))

    def ratio(self, a: str, b: str) -> float:
        return self.median(a, "ok_rps") / max(self.median(b, "ok_rps"), 1e-9)

    def errors(self, server: str) -> int:
        return sum(r.errors for r in self.runs[server])

    def error_kinds(self, server: str) -> dict[str, int]:
        """The failed requests of all the runs by wrk's kind (status = a non-2xx answer)."""
        kinds: dict[str, int] = {}
        for run in self.runs[server]:
            for kind, n in run.error_kinds.items():
                kinds[kind] = kinds.get(kind, 0) + n
        return kinds

    def to_json(self) -> dict[str, Any]:
        return {
            "rows_per_request": self.rows,
            "concurrency": self.concurrency,
            "servers": {
                name: {
                    "ok_rps": self.median(name, "ok_rps"),
                    "all_rps": self.median(name, "rps"),
                    "rows_per_s": self.median(name, "ok_rps") * self.rows,
                    "p50_ms": self.median(name, "p50_ms"),
                    "p99_ms": self.median(name, "p99_ms"),
                    "cpu_ms_per_request": self.median(name, "cpu_ms"),
                    "errors": self.errors(name),
                    "runs": [vars(r) for r in runs],
                }
                for name, runs in self.runs.items()
            },
            "ratio_pointsman_bentoml": self.ratio(POINTSMAN, BENTOML),
            "ratio_batching_on_off": self.ratio(POINTSMAN, NOBATCH),
        }


def bench(
    args: argparse.Namespace, servers: list[Server], tmp: Path, rows: list[Any]
) -> list[Cell]:
    cells = []
    for n_rows, concurrency in args.cells:
        script = tmp / f"post-{n_rows}.lua"
        script.write_text(WRK_SCRIPT % (servers[0].key, body(rows[:n_rows])))
        cell = Cell(n_rows, concurrency, {s.name: [] for s in servers})
        for round_ in range(args.rounds):
            for server in servers:  # A, B, C, D, A, B, ...: drift and noise hit all
                run = measure(server, args, concurrency, script)
                cell.runs[server.name].append(run)
                progress(f"{cell.name} round {round_ + 1}: {server.name}", run)
                # Calls whose connection wrk closed may still be running: let them finish
                # before the next server's warm-up.
                time.sleep(args.pause)
        cells.append(cell)
    return cells


# -- report -------------------------------------------------------------------------------------
def verdicts(cells: list[Cell]) -> list[tuple[bool, str]]:
    """One (passed, line) per target of the issue, then one for failed requests."""
    lines = []
    for c in cells:
        if c.concurrency != 64:
            continue
        ratio, p99 = c.ratio(POINTSMAN, BENTOML), c.median(POINTSMAN, "p99_ms")
        ok = ratio >= MIN_RATIO_VS_BENTOML and p99 <= MAX_P99_MS
        lines.append(
            (
                ok,
                f"{c.name}: pointsman {ratio:.2f}x BentoML's req/s (target >= "
                f"{MIN_RATIO_VS_BENTOML:g}x), p99 {p99:.1f} ms (target <= {MAX_P99_MS:g} ms)",
            )
        )
    slower = [c for c in cells if c.ratio(POINTSMAN, NOBATCH) < 1.0]
    ratios = ", ".join(f"{c.name} {c.ratio(POINTSMAN, NOBATCH):.2f}" for c in cells)
    lines.append((not slower, f"batching on never slower than off: on/off req/s {ratios}"))
    failed = {
        f"{name} {c.name}": c.error_kinds(name) for c in cells for name in c.runs if c.errors(name)
    }
    lines.append((not failed, f"no failed requests: {failed or 'none'}"))
    return lines


def print_table(cells: list[Cell], names: list[str]) -> None:
    head = f"{'cell':<14} {'server':<11} {'req/s':>8} {'rows/s':>8} {'p50 ms':>8} {'p99 ms':>9}"
    head += f" {'cpu ms':>7} {'failed':>7}"
    print(head)
    print("-" * len(head))
    for c in cells:
        for name in names:
            rps = c.median(name, "ok_rps")
            print(
                f"{c.name:<14} {name:<11} {rps:>8.1f} {rps * c.rows:>8.0f} "
                f"{c.median(name, 'p50_ms'):>8.2f} {c.median(name, 'p99_ms'):>9.2f} "
                f"{c.median(name, 'cpu_ms'):>7.2f} {c.errors(name):>7}"
            )
        print(
            f"{'':<14} ratios: pointsman/bentoml {c.ratio(POINTSMAN, BENTOML):.2f}, "
            f"batching on/off {c.ratio(POINTSMAN, NOBATCH):.2f}, "
            f"pointsman/minimal {c.ratio(POINTSMAN, MINIMAL):.2f}"
            + (f", pm-granian/bentoml {c.ratio(GRANIAN, BENTOML):.2f}" if GRANIAN in c.runs else "")
        )
    print("req/s = answers other than errors per second (a 503 is not counted)")
    print("cpu ms = server CPU time (user + system, all its processes) per request")
    print("failed = non-2xx answers, socket errors and timeouts over all the cell's runs")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="1 s warm-up + 2 s measured, 2 rounds")
    p.add_argument("--warmup", type=float, default=3.0, help="seconds of discarded load")
    p.add_argument("--duration", type=float, default=8.0, help="measured seconds per run")
    p.add_argument("--rounds", type=int, default=3, help="runs of each server per cell")
    p.add_argument(
        "--cells",
        default="1x1,1x8,1x64,16x64",
        help="ROWSxCONCURRENCY cells, comma-separated (rows per request x connections)",
    )
    p.add_argument(
        "--pause", type=float, default=1.0, help="idle seconds after each warm-up and each run"
    )
    p.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="HTTP workers of every server (default: one per CPU, as `pointsman serve`)",
    )
    p.add_argument("--wrk-threads", type=int, default=1, help="wrk threads (it shares the CPUs)")
    p.add_argument("--project", type=Path, help="existing demo project (default: a fresh one)")
    p.add_argument(
        "--bentoml-venv",
        type=Path,
        default=DEFAULT_BENTOML_VENV,
        help="BentoML's virtualenv (made there on first use)",
    )
    p.add_argument(
        "--granian",
        action="store_true",
        help="also pointsman on granian (`--http-server granian`; needs pointsman[granian])",
    )
    p.add_argument("--json", type=Path, help="also write the results to this JSON file")
    args = p.parse_args(argv)
    if args.quick:
        args.warmup, args.duration, args.rounds = 1.0, 2.0, 2
    args.cells = [tuple(int(x) for x in cell.split("x")) for cell in args.cells.split(",")]
    if args.rounds < 1:
        p.error("--rounds must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if shutil.which("wrk") is None:
        print("wrk not found: apt-get install -y wrk", file=sys.stderr)
        return 2
    # A SIGTERM to the benchmark must still stop the servers: turn it into SystemExit.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    bentoml = bentoml_venv(args.bentoml_venv)
    info = machine()
    info["model_packages"] = installed_versions()
    with tempfile.TemporaryDirectory(prefix="pointsman-bench-") as tmp_name:
        tmp = Path(tmp_name)
        project = args.project.resolve() if args.project else make_demo(tmp / "demo")
        key = make_key(project)
        nobatch = nobatch_project(project, tmp)
        rows = bench_rows(project, max(n for n, _ in args.cells))
        servers = build_servers(
            project, nobatch, bentoml, args.workers, tmp, key, granian=args.granian
        )
        try:
            for server in servers:
                server.start()
            labels = check_same_labels(servers, rows)
            cells = bench(args, servers, tmp, rows)
        finally:
            stop_all(servers)
    lines = verdicts(cells)
    print()
    print(
        f"native predict, median of {args.rounds} runs per cell ({args.warmup:g} s warm-up + "
        f"{args.duration:g} s measured), {args.workers} HTTP worker(s) per server"
    )
    print(f"load generator: {info['load_generator']}, {args.wrk_threads} thread(s)")
    print(f"machine: {info['cpus']} CPUs ({info['cpu']}); wrk runs on the same CPUs")
    print(f"every server gave the same labels to the {len(rows)} benchmark rows: {labels}")
    print()
    print_table(cells, [s.name for s in servers])
    print()
    for ok, line in lines:
        print(("PASS " if ok else "FAIL ") + line)
    passed = all(ok for ok, _ in lines)
    if args.json:
        report = {
            "benchmark": "serve_vs_bentoml",
            "config": {
                "warmup": args.warmup,
                "duration": args.duration,
                "rounds": args.rounds,
                "cells": args.cells,
                "workers": args.workers,
                "wrk_threads": args.wrk_threads,
                "bentoml": BENTOML_SPEC,
            },
            "machine": info,
            "targets": {"min_ratio_vs_bentoml": MIN_RATIO_VS_BENTOML, "max_p99_ms": MAX_P99_MS},
            "labels": labels,
            "cells": [c.to_json() for c in cells],
            "verdicts": [{"pass": ok, "what": line} for ok, line in lines],
            "pass": passed,
        }
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
