"""What the hop to a runner process costs: the same single-row predict in-process and through
a runner, side by side in one run.

A fresh demo project's churn version 1 is loaded twice, both times as a runner resolves it
(`--runtime`: auto takes the compiled ONNX artifact where it agreed, as runners do by
default): in this process (what an HTTP worker did before runners) and in a runner started
by the real supervisor. At each concurrency, `c` asyncio tasks call `runtime.predict(frame)`
directly, then `c` tasks await `RunnerPool.predict(frame)`, in alternating rounds; the script
prints median p50, p99 and calls per second of each, the added p50 of the hop (median of the
rounds' differences, and their range) and the ratios. See bench/README.md.

    .venv/bin/python bench/runner_hop.py [--concurrency 1,8,64] [--calls 2000] [--rounds 3]
        [--runtime auto|original|compiled]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from harness import ROW, make_demo

from pointsman.project import open_project
from pointsman.registry.artifacts import LocalArtifacts
from pointsman.registry.loading import load_resolved
from pointsman.runners import RunDir
from pointsman.runners.client import RunnerPool
from pointsman.runners.directory import new_run_dir
from pointsman.runners.supervisor import Supervisor
from pointsman.settings import load_settings
from pointsman.types import Frame
from pointsman.validation.signature import build_frame, records_to_columns

MODEL = "churn"
TARGET_ADDED_P50_MS = 0.15  # the target for one row at concurrency 1


async def timed(call: Callable[[], Awaitable[object]], concurrency: int, calls: int) -> dict:
    """p50/p99 (ms) of `calls` calls made by `concurrency` tasks, and calls per second."""
    latencies: list[float] = []
    left = calls

    async def user() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            start = time.perf_counter()
            await call()
            latencies.append(time.perf_counter() - start)

    start = time.perf_counter()
    await asyncio.gather(*(user() for _ in range(concurrency)))
    elapsed = time.perf_counter() - start
    latencies.sort()
    return {
        "p50_ms": latencies[len(latencies) // 2] * 1e3,
        "p99_ms": latencies[int(0.99 * (len(latencies) - 1))] * 1e3,
        "rps": calls / elapsed,
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def median_of(runs: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


async def bench(
    frame: Frame, runtime: object, which: str, pool: RunnerPool, args: argparse.Namespace,
    tcp: RunnerPool | None = None,
) -> list:  # fmt: skip
    """In-process against the runner; with `tcp`, the runner over its Unix socket (the
    "in-process" side) against the same runner over TCP (the "runner" side)."""

    async def direct() -> object:
        if tcp is not None:
            return await pool.predict(frame, 10.0)
        return runtime.predict(frame)  # type: ignore[attr-defined]

    async def hop() -> object:
        return await (tcp or pool).predict(frame, 10.0)

    here, there = await direct(), await hop()
    same = here.predictions == there.predictions  # type: ignore[attr-defined]
    assert same, "the runner and the in-process model disagree"
    ran = there.runtime  # type: ignore[attr-defined]
    assert ran == which, f"the runner ran {ran}, this process {which}"
    rows = []
    for concurrency in args.concurrency:
        results: dict[str, list[dict]] = {"in-process": [], "runner": []}
        for _ in range(args.rounds):
            for name, call in (("in-process", direct), ("runner", hop)):
                await timed(call, concurrency, args.calls // 10)  # warm-up
                results[name].append(await timed(call, concurrency, args.calls))
        base, hop_ = results["in-process"], results["runner"]
        row = {
            "concurrency": concurrency,
            **{f"in_process_{k}": median_of(base, k) for k in ("p50_ms", "p99_ms", "rps")},
            **{f"runner_{k}": median_of(hop_, k) for k in ("p50_ms", "p99_ms", "rps")},
        }
        # Each round's pair ran back to back: its difference is the least moved by load.
        added = [h["p50_ms"] - b["p50_ms"] for b, h in zip(base, hop_, strict=True)]
        row["added_p50_ms"] = statistics.median(added)
        row["added_p50_range_ms"] = [min(added), max(added)]
        row["p50_ratio"] = row["runner_p50_ms"] / row["in_process_p50_ms"]
        row["rps_ratio"] = row["runner_rps"] / row["in_process_rps"]
        row["rounds"] = {"in_process": base, "runner": hop_}
        rows.append(row)
        print(
            f"c={concurrency:>3}  in-process p50 {row['in_process_p50_ms']:.3f} ms "
            f"p99 {row['in_process_p99_ms']:.3f} ms {row['in_process_rps']:.0f}/s | runner p50 "
            f"{row['runner_p50_ms']:.3f} ms p99 {row['runner_p99_ms']:.3f} ms "
            f"{row['runner_rps']:.0f}/s | added p50 {row['added_p50_ms']:.3f} ms "
            f"(rounds {min(added):.3f}..{max(added):.3f}), p50 ratio {row['p50_ratio']:.2f}, "
            f"throughput ratio {row['rps_ratio']:.2f} | load {load_average()}",
            flush=True,
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrency", default="1,8,64",
                        type=lambda s: [int(c) for c in s.split(",")])  # fmt: skip
    parser.add_argument("--calls", type=int, default=2000, help="calls per round and side")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument(
        "--loop",
        default="uvloop",
        choices=("uvloop", "asyncio"),
        help="the event loop of the calling side (uvloop: what `pointsman serve`'s workers run)",
    )
    parser.add_argument(
        "--runtime",
        default="auto",
        choices=("auto", "original", "compiled"),
        help="the runtime both sides run, resolved as a runner resolves it (auto: the "
        "compiled ONNX artifact where it agreed with the original)",
    )
    parser.add_argument(
        "--tcp",
        action="store_true",
        help="compare the runner over its Unix socket (printed as in-process) with a runner "
        "of the same version over TCP (printed as runner)",
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="pm-hop-") as tmp:
        project = open_project(load_settings(make_demo(Path(tmp) / "demo")))
        version = project.registry.get_version(MODEL, 1)
        signature = version.signature
        columns, n, problems = records_to_columns([ROW], signature)
        frame = build_frame(signature, columns, n, problems)
        artifacts = LocalArtifacts(project.settings.artifact_path())
        runtime, which = load_resolved(artifacts, version, args.runtime)
        # The runner runs the same runtime (the comparison is the hop, not ONNX vs sklearn).
        spec = project.runners.spec(MODEL, 1).with_changes({"replicas": 1, "runtime": args.runtime})
        print(f"runtime {which} (asked {args.runtime}), {args.loop} loop; "
              f"load average {load_average()}")  # fmt: skip
        run_dir = RunDir(new_run_dir())
        supervisor = Supervisor(
            run_dir, project.registry.artifacts, lambda: {(MODEL, 1): (version, spec)},
            project.enforcement,
        )  # fmt: skip
        supervisor.start()
        tcp_dir = RunDir(new_run_dir())
        address = f"127.0.0.1:{free_port()}"
        secret = b"runner-hop-bench-secret"
        remote = Supervisor(
            tcp_dir, project.registry.artifacts, lambda: {(MODEL, 1): (version, spec)},
            project.enforcement, listen=address, secret=secret,
        )  # fmt: skip
        if args.tcp:
            remote.start()
        try:
            problem = run_dir.wait_warm(MODEL, 1, 120)
            if problem is not None:
                print(f"the runner did not start: {problem}", file=sys.stderr)
                return 1

            async def run() -> list:
                pool = RunnerPool(run_dir.sockets(MODEL, 1, 1))
                await pool.connect(now=True)
                tcp = None
                if args.tcp:
                    tcp = RunnerPool([address], secret)
                    deadline = time.monotonic() + 120
                    while not tcp.is_ready and time.monotonic() < deadline:
                        await tcp.connect(now=True)
                        await asyncio.sleep(0.1)
                try:
                    return await bench(frame, runtime, which, pool, args, tcp)
                finally:
                    pool.close()
                    if tcp is not None:
                        tcp.close()

            if args.loop == "uvloop":
                import uvloop

                rows = uvloop.run(run())
            else:
                rows = asyncio.run(run())
        finally:
            if args.tcp:
                remote.stop()
            tcp_dir.remove()
            supervisor.stop()
            run_dir.remove()
            project.close()
    first = next((r for r in rows if r["concurrency"] == 1), None)
    ok = first is None or first["added_p50_ms"] <= TARGET_ADDED_P50_MS
    if first is not None:
        print(f"{'PASS' if ok else 'FAIL'}: added p50 at c=1 {first['added_p50_ms']:.3f} ms "
              f"(target ≤ {TARGET_ADDED_P50_MS} ms)")  # fmt: skip
    print(f"load average at the end {load_average()}")
    if args.json:
        args.json.write_text(json.dumps({"runtime": which, "rows": rows}, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
