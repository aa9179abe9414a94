"""How much a scheduled drift run stalls a serving event loop: in a thread (as before) or in
the drift child process (monitoring/drift_process.py), side by side.

A fresh demo project gets `--records` logged single-row churn requests of the last hour;
then, alternating over `--rounds`, an event loop times 1 ms sleeps while one drift run of
every routed version goes on beside it: in a thread of this process (`thread`, the serving
process's GIL held by the scoring), or handed to the child (`process`; the child is started
and warmed up once before the rounds, as a server's is after its first run). Printed: the
run's wall time and the loop's lag (how late each 1 ms sleep woke): median, p99 and max,
medians over the rounds, and the ratios thread/process.

    .venv/bin/python bench/drift_stall.py [--records 20000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from harness import log_traffic, make_demo

from pointsman.monitoring.drift_process import DriftProcess
from pointsman.monitoring.monitor import run_reports
from pointsman.project import open_project
from pointsman.settings import load_settings

SLEEP_S = 0.001


async def lag_during(run: Callable[[], object], pool: ThreadPoolExecutor) -> dict[str, float]:
    """The loop's lag on 1 ms sleeps while `run` goes on in a thread; and the run's time."""
    loop = asyncio.get_running_loop()
    started = time.perf_counter()
    future = loop.run_in_executor(pool, run)
    lags: list[float] = []
    while not future.done():
        before = time.perf_counter()
        await asyncio.sleep(SLEEP_S)
        lags.append(time.perf_counter() - before - SLEEP_S)
    await future
    took = time.perf_counter() - started
    lags.sort()
    return {
        "run_s": took,
        "lag_p50_ms": 1e3 * lags[len(lags) // 2],
        "lag_p99_ms": 1e3 * lags[int(0.99 * (len(lags) - 1))],
        "lag_max_ms": 1e3 * lags[-1],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = make_demo(Path(tmp) / "demo")
        project = open_project(load_settings(folder))
        log_traffic(project, args.records)
        child = DriftProcess(project.settings)
        child.run()  # started and warm, as after a server's first run
        modes: dict[str, Callable[[], object]] = {
            "thread": lambda: run_reports(project),
            "process": child.run,
        }
        results: dict[str, list[dict[str, float]]] = {mode: [] for mode in modes}
        with ThreadPoolExecutor(max_workers=1) as pool:
            for round_ in range(args.rounds):
                for mode, run in modes.items():
                    figures = asyncio.run(lag_during(run, pool))
                    results[mode].append(figures)
                    print(f"round {round_ + 1} {mode:8} " + "  ".join(
                        f"{k} {v:.3f}" for k, v in figures.items()), flush=True)  # fmt: skip
        child.close()
        project.close()
    print(f"\n{args.records} logged rows, {args.rounds} rounds, load average "
          f"{os.getloadavg()[0]:.1f}; medians:")  # fmt: skip
    keys = ["run_s", "lag_p50_ms", "lag_p99_ms", "lag_max_ms"]
    print(f"| where the run goes | {' | '.join(keys)} |")
    print("| --- |" + " --- |" * len(keys))
    medians = {
        m: {k: statistics.median(r[k] for r in rs) for k in keys} for m, rs in results.items()
    }
    for mode, figures in medians.items():
        print(f"| {mode} | " + " | ".join(f"{figures[k]:.3f}" for k in keys) + " |")
    ratio = {k: medians["thread"][k] / max(medians["process"][k], 1e-9) for k in keys}
    print("| thread / process | " + " | ".join(f"{ratio[k]:.1f}x" for k in keys) + " |")


if __name__ == "__main__":
    main()
