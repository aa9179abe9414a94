"""The prediction log's cost per request: logging on vs off, side by side in one run.

The same demo project (churn version 1 deployed) is served twice at once, by a server with
the prediction log on (the default: every record spooled with one os.write before the
answer, shipped to SQLite once a second) and one with `log_predictions = false`:

1. in process: single-row `Pipeline.predict` calls through two pipelines (log on, log off),
   alternating blocks, median per call: what the record costs on the request path;
2. over HTTP: wrk at concurrency 1 (p50, the issue's target: under 100 µs added) and 64
   (throughput, target: under 10 % lost), alternating the two servers, median of rounds.

    .venv/bin/python bench/log_overhead.py [--rounds 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from harness import BODY, VENV_BIN, WRK_DONE, Server, free_port, make_demo, run_wrk
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


# -- over HTTP ------------------------------------------------------------------------------
def over_http(project: Path, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    servers = {}
    for side in SIDES:
        env = {
            **os.environ,
            "POINTSMAN_SERVER_LOG_LEVEL": "warning",
            "POINTSMAN_AUTH": "false",
            "POINTSMAN_LOG_PREDICTIONS": "true" if side == "on" else "false",
        }
        port = free_port()
        argv = [str(VENV_BIN / "pointsman"), "--project", str(project), "serve"]
        argv += ["--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
        path = "/v1/models/churn/predict"
        extra = {"key": ""} if "key" in Server.__dataclass_fields__ else {}
        servers[side] = Server(
            f"log {side}", argv, env, path, port, tmp / f"serve-{side}.log", **extra
        )
    script = tmp / "post.lua"
    script.write_text(WRK_SCRIPT % BODY)
    results: dict[str, Any] = {}
    try:
        for server in servers.values():
            server.start()
        for concurrency in args.concurrency:
            runs: dict[str, list[dict[str, Any]]] = {side: [] for side in SIDES}
            for server in servers.values():  # warm-up, discarded
                run_wrk(server.url, script, concurrency, args.warmup, 1)
            for i in range(args.rounds):
                for side in SIDES if i % 2 == 0 else SIDES[::-1]:
                    raw = run_wrk(servers[side].url, script, concurrency, args.duration, 1)
                    runs[side].append(raw)
                    rps = raw["requests"] / (raw["duration_us"] / 1e6)
                    print(
                        f"  conc {concurrency:>2} log {side:<3} {rps:7.0f} req/s "
                        f"p50 {raw['p50_us'] / 1000:.3f} ms",
                        file=sys.stderr,
                    )
            results[str(concurrency)] = summarize(runs)
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
        "errors": errors,
    }


def stored_records(project: Path) -> int:
    from pointsman.logstore.query import LogQuery, count_predictions
    from pointsman.project import open_project
    from pointsman.settings import load_settings

    opened = open_project(load_settings(project))
    try:
        return count_predictions(opened.engine, LogQuery(model="churn"))
    finally:
        opened.close()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds per side")
    p.add_argument("--calls", type=int, default=3000, help="in-process calls per block")
    p.add_argument("--warmup", type=float, default=3.0, help="wrk warm-up seconds")
    p.add_argument("--duration", type=float, default=8.0, help="wrk measured seconds")
    p.add_argument("--concurrency", type=int, nargs="+", default=[1, 64])
    p.add_argument("--json", type=Path, help="also write the results to this JSON file")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if shutil.which("wrk") is None:
        print("wrk not found: apt-get install -y wrk", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with tempfile.TemporaryDirectory(prefix="pointsman-bench-") as tmp_name:
        tmp = Path(tmp_name)
        project = make_demo(tmp / "demo")
        local = in_process(project, max(args.rounds * 2, 5), args.calls)
        print(f"in process: {json.dumps({k: v for k, v in local.items() if 'runs' not in k})}",
              file=sys.stderr)  # fmt: skip
        http = over_http(project, args, tmp)
        stored = stored_records(project)
    print()
    print("prediction log on vs off, single-row native predict of the demo's churn model")
    print(
        f"in process (median of {len(local['runs']['on_wall'])} blocks of {args.calls} calls): "
        f"on {local['on_us']:.1f} µs, off {local['off_us']:.1f} µs, "
        f"added {local['added_us']:.1f} µs per request (CPU: on {local['on_cpu_us']:.1f}, "
        f"off {local['off_cpu_us']:.1f}, added {local['added_cpu_us']:.1f} µs)"
    )
    print(
        f"the record alone (redact, build, orjson, one os.write): "
        f"{local['record_alone_us']:.1f} µs (median of {len(local['record_alone_runs'])} blocks)"
    )
    for concurrency, cell in http.items():
        print(
            f"HTTP conc {concurrency:>2} (median of {args.rounds}): on {cell['on_rps']:.0f} "
            f"req/s, off {cell['off_rps']:.0f} req/s, ratio {cell['ratio']:.3f}; p50 "
            f"{cell['on_p50_us']:.0f} vs {cell['off_p50_us']:.0f} µs "
            f"(added {cell['added_p50_us']:.0f} µs); errors {cell['errors']}"
        )
    print(f"records in the store after the run: {stored}")
    p50_ok = "1" not in http or http["1"]["added_p50_us"] < MAX_ADDED_P50_US
    ratio_ok = "64" not in http or http["64"]["ratio"] >= MIN_RATIO
    errors = sum(c["errors"] for c in http.values())
    ok = p50_ok and ratio_ok and errors == 0 and stored > 0
    print(
        ("PASS" if ok else "FAIL")
        + f" (p50 added < {MAX_ADDED_P50_US:g} µs at conc 1; throughput ratio >= {MIN_RATIO} "
        "at conc 64; no errors; records stored)"
    )
    if args.json:
        report = {"benchmark": "log_overhead", "in_process": local, "http": http, "pass": ok}
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
