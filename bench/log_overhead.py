"""The prediction log's cost per request: logging on vs off, side by side in one run.

The same demo project (churn version 1 deployed) is served twice at once, by a server with
the prediction log on (the default: every record spooled with one os.write before the
answer, shipped to SQLite once a second) and one with `log_predictions = false`:

1. in process: single-row `Pipeline.predict` calls through two pipelines (log on, log off),
   alternating blocks, median per call: what the record costs on the request path;
2. over HTTP: wrk at concurrency 1 (p50, the issue's target: under 100 µs added) and 64
   (throughput, target: under 10 % lost), alternating the two servers, median of rounds.

    .venv/bin/python bench/log_overhead.py [--rounds 3] [--json out.json]
    .venv/bin/python bench/log_overhead.py --baseline main     # and main's code, side by side

With `--baseline REF` the same is measured, in the same run, for the code of git revision REF
(exported from this repository, run with this interpreter and its packages, on a demo project
of its own): four servers alternate under wrk, and each code's on / off ratio is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import BODY, ROOT, VENV_BIN, WRK_DONE, Server, free_port, machine, run_wrk
from harness import in_process as harness_in_process

MAX_ADDED_P50_US = 100.0
MIN_RATIO = 0.90
SIDES = ("on", "off")
# Both servers run with API keys off (this measures the log, not auth): no Authorization.
WRK_SCRIPT = (
    """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = [==[%s]==]
"""
    + WRK_DONE
)


# -- in process -----------------------------------------------------------------------------
def in_process(project: Path, rounds: int, calls: int) -> dict[str, Any]:
    from pointsman.protocols import Payload, native
    from pointsman.settings import load_settings
    from pointsman.types import Outcome

    sides = contextlib.ExitStack()
    pipelines = {}
    for side in SIDES:
        settings = load_settings(project, log_predictions=side == "on", auth=False)
        pipelines[side] = sides.enter_context(harness_in_process(settings))
    body = BODY.encode()

    async def block(side: str) -> tuple[float, float]:
        """Wall and CPU µs per call (CPU time is the figure a noisy neighbour moves least)."""
        pipeline = pipelines[side]
        target = pipeline.catalog.target("churn")
        start, cpu = time.perf_counter(), time.process_time()
        for _ in range(calls):
            payload = Payload(native.CODEC, body, {})
            await pipeline.predict(target, payload, Outcome("bench"))
        wall = (time.perf_counter() - start) / calls * 1e6
        return wall, (time.process_time() - cpu) / calls * 1e6

    async def run() -> dict[str, list[float]]:
        times: dict[str, list[float]] = {f"{s}_{k}": [] for s in SIDES for k in ("wall", "cpu")}
        for side in SIDES:
            await block(side)  # warm up
        for i in range(rounds):
            for side in SIDES if i % 2 == 0 else SIDES[::-1]:
                wall, cpu = await block(side)
                times[f"{side}_wall"].append(wall)
                times[f"{side}_cpu"].append(cpu)
            pipelines["on"].log.ship()  # type: ignore[union-attr]  # as the server would
        return times

    async def record_alone() -> list[float]:
        """The record itself: redact, build, serialize, one os.write; µs per record."""
        pipeline = pipelines["on"]
        assert pipeline.log is not None
        target = pipeline.catalog.target("churn")
        outcome = Outcome("bench")
        answer = await pipeline.predict(target, Payload(native.CODEC, body, {}), outcome)
        blocks = []
        for _ in range(rounds):
            start = time.perf_counter()
            for _ in range(calls):
                pipeline.log.answered(answer, outcome)
            blocks.append((time.perf_counter() - start) / calls * 1e6)
            pipeline.log.ship()
        return blocks

    async def both() -> tuple[dict[str, list[float]], list[float]]:
        return await run(), await record_alone()  # one loop: the runner links belong to it

    try:
        times, alone = asyncio.run(both())
    finally:
        sides.close()
    med = {k: statistics.median(v) for k, v in times.items()}
    return {
        "on_us": med["on_wall"],
        "off_us": med["off_wall"],
        "added_us": med["on_wall"] - med["off_wall"],
        "on_cpu_us": med["on_cpu"],
        "off_cpu_us": med["off_cpu"],
        "added_cpu_us": med["on_cpu"] - med["off_cpu"],
        "record_alone_us": statistics.median(alone),
        "runs": times,
        "record_alone_runs": alone,
    }


# -- the code under test -------------------------------------------------------------------
@dataclass
class Tree:
    """A version of the code: this checkout, or a git revision exported beside it."""

    name: str
    source: Path  # the folder its `pointsman` package is imported from
    project: Path = Path()
    env: dict[str, str] = field(default_factory=dict)  # PYTHONPATH for an exported revision


def export(ref: str, folder: Path) -> Path:
    """The files of git revision `ref` of this repository, in `folder`."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", ref], capture_output=True, check=True
    ).stdout
    folder.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(folder, filter="data")
    return folder


def make_demo(tree: Tree, folder: Path) -> Path:
    """A fresh demo project made by the tree's own code (its store at its own revision)."""
    argv = [str(VENV_BIN / "pointsman"), "demo", str(folder), "--no-serve", "--port", "8080"]
    env = {**os.environ, **tree.env}
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, cwd=tree.source, env=env)
    return folder


def in_process_of(tree: Tree, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """`in_process` in a process importing the tree's code."""
    out = tmp / f"in-process-{tree.name}.json"
    argv = [sys.executable, str(Path(__file__).resolve()), "--in-process-only", str(tree.project)]
    argv += ["--rounds", str(args.rounds), "--calls", str(args.calls), "--json", str(out)]
    subprocess.run(argv, check=True, env={**os.environ, **tree.env}, timeout=3600)
    result: dict[str, Any] = json.loads(out.read_text())
    return result


# -- over HTTP ------------------------------------------------------------------------------
def over_http(trees: list[Tree], args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """Per concurrency, per tree: on / off medians and ratio (servers in turn, each round
    in another order)."""
    servers: dict[tuple[str, str], Server] = {}
    for tree in trees:
        for side in SIDES:
            env = {
                **os.environ,
                **tree.env,
                "POINTSMAN_SERVER_LOG_LEVEL": "warning",
                "POINTSMAN_AUTH": "false",
                "POINTSMAN_LOG_PREDICTIONS": "true" if side == "on" else "false",
            }
            port = free_port()
            argv = [str(VENV_BIN / "pointsman"), "--project", str(tree.project), "serve"]
            argv += ["--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
            path = "/v1/models/churn/predict"
            log = tmp / f"serve-{tree.name}-{side}.log"
            servers[tree.name, side] = Server(
                f"{tree.name} log {side}", argv, env, path, port, log, ""
            )
    script = tmp / "post.lua"
    script.write_text(WRK_SCRIPT % BODY)
    results: dict[str, Any] = {}
    order = list(servers)
    try:
        for server in servers.values():
            server.start()
        for concurrency in args.concurrency:
            runs: dict[tuple[str, str], list[dict[str, Any]]] = {key: [] for key in order}
            for server in servers.values():  # warm-up, discarded
                run_wrk(server.url, script, concurrency, args.warmup, 1)
            for i in range(args.rounds):
                for key in order[i % len(order) :] + order[: i % len(order)]:
                    server = servers[key]
                    cpu_before = server.cpu_s()
                    raw = run_wrk(server.url, script, concurrency, args.duration, 1)
                    raw["cpu_ms"] = (server.cpu_s() - cpu_before) * 1000 / max(raw["requests"], 1)
                    runs[key].append(raw)
                    rps = raw["requests"] / (raw["duration_us"] / 1e6)
                    print(
                        f"  conc {concurrency:>2} {server.name:<16} {rps:7.0f} req/s "
                        f"p50 {raw['p50_us'] / 1000:.3f} ms cpu {raw['cpu_ms']:.3f} ms/req",
                        file=sys.stderr,
                    )
            results[str(concurrency)] = {
                tree.name: summarize({side: runs[tree.name, side] for side in SIDES})
                for tree in trees
            }
    finally:
        for server in servers.values():
            server.stop()
    return results


def summarize(runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    def med(side: str, key: str) -> float:
        values = []
        for raw in runs[side]:
            seconds = raw["duration_us"] / 1e6
            values.append(raw["requests"] / seconds if key == "rps" else float(raw[key]))
        return statistics.median(values)

    errors = sum(sum(raw["errors"].values()) for side in runs for raw in runs[side])
    on, off = med("on", "rps"), med("off", "rps")
    return {
        "on_rps": on,
        "off_rps": off,
        "ratio": on / off,
        "on_p50_us": med("on", "p50_us"),
        "off_p50_us": med("off", "p50_us"),
        "added_p50_us": med("on", "p50_us") - med("off", "p50_us"),
        "on_cpu_ms": med("on", "cpu_ms"),
        "off_cpu_ms": med("off", "cpu_ms"),
        "errors": errors,
        "runs": runs,
    }


def stored_records(tree: Tree) -> int:
    code = (
        "import sys; from pointsman.logstore.query import LogQuery, count_predictions; "
        "from pointsman.project import open_project; from pointsman.settings import load_settings; "
        "p = open_project(load_settings(sys.argv[1])); "
        "print(count_predictions(p.engine, LogQuery(model='churn'))); p.close()"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(tree.project)], capture_output=True, text=True,
        check=True, env={**os.environ, **tree.env}, cwd=tree.source,
    )  # fmt: skip
    return int(done.stdout.split()[-1])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds per side")
    p.add_argument("--calls", type=int, default=3000, help="in-process calls per block")
    p.add_argument("--warmup", type=float, default=3.0, help="wrk warm-up seconds")
    p.add_argument("--duration", type=float, default=8.0, help="wrk measured seconds")
    p.add_argument("--concurrency", type=int, nargs="+", default=[1, 64])
    p.add_argument("--baseline", metavar="REF", help="also measure git revision REF, side by side")
    p.add_argument("--json", type=Path, help="also write the results to this JSON file")
    p.add_argument("--in-process-only", type=Path, metavar="PROJECT", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.in_process_only:  # the child of in_process_of
        local = in_process(args.in_process_only, max(args.rounds * 2, 5), args.calls)
        args.json.write_text(json.dumps(local))
        return 0
    if shutil.which("wrk") is None:
        print("wrk not found: apt-get install -y wrk", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with tempfile.TemporaryDirectory(prefix="pointsman-bench-") as tmp_name:
        tmp = Path(tmp_name)
        trees = [Tree("this", ROOT)]
        if args.baseline:
            source = export(args.baseline, tmp / "baseline-src")
            trees.append(Tree(args.baseline, source, env={"PYTHONPATH": str(source)}))
        for tree in trees:
            tree.project = make_demo(tree, tmp / f"demo-{len(tree.env)}")
        start = machine()
        local = {tree.name: in_process_of(tree, args, tmp) for tree in trees}
        http = over_http(trees, args, tmp)
        stored = {tree.name: stored_records(tree) for tree in trees}
    print()
    print("prediction log on vs off, single-row native predict of the demo's churn model")
    print(f"load average at start {start['loadavg_at_start']}, at end {os.getloadavg()}")
    for tree in trees:
        one = local[tree.name]
        print(
            f"[{tree.name}] in process (median of {len(one['runs']['on_wall'])} blocks of "
            f"{args.calls} calls): on {one['on_us']:.1f} µs, off {one['off_us']:.1f} µs, "
            f"added {one['added_us']:.1f} µs per request (CPU: on {one['on_cpu_us']:.1f}, "
            f"off {one['off_cpu_us']:.1f}, added {one['added_cpu_us']:.1f} µs); the record "
            f"alone {one['record_alone_us']:.1f} µs"
        )
    for concurrency, cells in http.items():
        for tree in trees:
            cell = cells[tree.name]
            print(
                f"[{tree.name}] HTTP conc {concurrency:>2} (median of {args.rounds}): on "
                f"{cell['on_rps']:.0f} req/s, off {cell['off_rps']:.0f} req/s, ratio "
                f"{cell['ratio']:.3f}; p50 {cell['on_p50_us']:.0f} vs {cell['off_p50_us']:.0f} µs "
                f"(added {cell['added_p50_us']:.0f} µs); CPU {cell['on_cpu_ms']:.3f} vs "
                f"{cell['off_cpu_ms']:.3f} ms/req; errors {cell['errors']}"
            )
    print(f"records in the store after the run: {stored}")
    mine = {c: cells["this"] for c, cells in http.items()}
    p50_ok = "1" not in mine or mine["1"]["added_p50_us"] < MAX_ADDED_P50_US
    ratio_ok = "64" not in mine or mine["64"]["ratio"] >= MIN_RATIO
    errors = sum(c["errors"] for c in mine.values())
    ok = p50_ok and ratio_ok and errors == 0 and stored["this"] > 0
    print(
        ("PASS" if ok else "FAIL")
        + f" (this code: p50 added < {MAX_ADDED_P50_US:g} µs at conc 1; throughput ratio >= "
        f"{MIN_RATIO} at conc 64; no errors; records stored)"
    )
    if args.json:
        report = {"benchmark": "log_overhead", "machine": start, "in_process": local,
                  "http": http, "stored": stored, "pass": ok}  # fmt: skip
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
