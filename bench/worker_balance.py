"""How `pointsman serve --workers N` spreads keep-alive connections over its HTTP workers.

Two servers side by side on the same demo model: this checkout and `--baseline DIR` (another
checkout, say the commit before a change), each `--workers 2`. Every round, each server in
turn gets a fresh wrk run (its connections opened together, as a client's pool opens them)
at `--concurrency`; while it runs the script counts, with `ss`, how many of the connections
each worker holds. Printed: medians over the rounds of req/s, p50 and p99, and the share of
the connections the busiest worker held (0.5 is an even split over two).

    .venv/bin/python bench/worker_balance.py --baseline ../other-checkout [--rounds 6]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

from harness import (
    BODY,
    Figures,
    Server,
    checkout_parser,
    machine,
    medians,
    parse_checkouts,
    ratio_line,
    run_wrk,
    side_by_side,
)


def busiest_share(port: int, stop: threading.Event, out: list[float]) -> None:
    """Once the run is under way: the share of the port's connections on the busiest worker."""
    stop.wait(1.0)
    text = subprocess.run(
        ["ss", "-tnpH", "state", "established", f"( sport = :{port} )"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    pids = re.findall(r"pid=(\d+)", text)
    if pids:
        out.append(max(pids.count(p) for p in set(pids)) / len(pids))


def measure(srv: Server, script: Path, args: argparse.Namespace) -> Figures:
    run_wrk(srv.url, script, args.concurrency, 1, 1)  # warm-up
    time.sleep(0.5)
    shares: list[float] = []
    stop = threading.Event()
    watcher = threading.Thread(target=busiest_share, args=(srv.port, stop, shares))
    watcher.start()
    raw = run_wrk(srv.url, script, args.concurrency, args.duration, 2)
    stop.set()
    watcher.join()
    seconds = raw["duration_us"] / 1e6
    return {
        "rps": raw["requests"] / seconds,
        "p50_ms": raw["p50_us"] / 1000,
        "p99_ms": raw["p99_us"] / 1000,
        "busiest": shares[0] if shares else float("nan"),
        "errors": sum(raw["errors"].values()),
    }


def describe(run: Figures) -> str:
    return (
        f"{run['rps']:,.0f} req/s, p99 {run['p99_ms']:.1f} ms, busiest worker {run['busiest']:.2f}"
    )


def main(args: argparse.Namespace) -> int:
    if shutil.which("wrk") is None or shutil.which("ss") is None:
        print("needs wrk and ss (apt-get install -y wrk iproute2)", file=sys.stderr)
        return 2
    print(machine(), file=sys.stderr)
    runs = side_by_side(args, BODY, lambda srv, script: measure(srv, script, args), describe)
    med = medians(runs)
    print(f"{args.rounds} rounds, {args.duration:g} s each, c={args.concurrency}, "
          f"--workers {args.workers}, load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    print("| server | req/s | p50 ms | p99 ms | busiest worker's share | errors |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, m in med.items():
        print(f"| {name} | {m['rps']:,.0f} | {m['p50_ms']:.2f} | {m['p99_ms']:.1f} | "
              f"{m['busiest']:.2f} | {m['errors']:.0f} |")  # fmt: skip
    print(ratio_line(med))
    return 0


def parse() -> argparse.Namespace:
    return parse_checkouts(checkout_parser(__doc__, duration_s=8.0, concurrency=16))


if __name__ == "__main__":
    sys.exit(main(parse()))
