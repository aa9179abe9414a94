"""The tail under load of many-row requests, this checkout against another side by side.

Issue 14 asks for p99 ≤ 50 ms at concurrency 64; with 16-row requests the p99 stays above it.
This script runs two `pointsman serve` of the same demo model: this checkout and
`--baseline DIR` (another checkout, say the commit before a change). Every round each server
in turn gets a warm-up and a measured wrk run of `--rows`-row requests at `--concurrency`;
printed are the medians over the rounds of req/s, p50 and p99, and this / baseline ratios.

    .venv/bin/python bench/tail_latency.py --baseline ../other-checkout [--rounds 6]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

from harness import (
    ROW,
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


def measure(srv: Server, script: Path, args: argparse.Namespace) -> Figures:
    run_wrk(srv.url, script, args.concurrency, 2, 2)  # warm-up, discarded
    time.sleep(0.5)
    raw = run_wrk(srv.url, script, args.concurrency, args.duration, 2)
    seconds = raw["duration_us"] / 1e6
    return {
        "rps": raw["requests"] / seconds,
        "p50_ms": raw["p50_us"] / 1000,
        "p99_ms": raw["p99_us"] / 1000,
        "errors": sum(raw["errors"].values()),
    }


def describe(run: Figures) -> str:
    return f"{run['rps']:,.0f} req/s, p50 {run['p50_ms']:.1f} ms, p99 {run['p99_ms']:.1f} ms"


def main(args: argparse.Namespace) -> int:
    if shutil.which("wrk") is None:
        print("needs wrk (apt-get install -y wrk)", file=sys.stderr)
        return 2
    print(machine(), file=sys.stderr)
    body = json.dumps({"rows": [ROW] * args.rows})
    runs = side_by_side(args, body, lambda srv, script: measure(srv, script, args), describe)
    med = medians(runs)
    print(f"{args.rounds} rounds, {args.duration:g} s each, {args.rows}-row requests, "
          f"c={args.concurrency}, --workers {args.workers}, "
          f"load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    print("| server | req/s | rows/s | p50 ms | p99 ms | p99 range ms | errors |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, m in med.items():
        p99s = [r["p99_ms"] for r in runs[name]]
        print(f"| {name} | {m['rps']:,.0f} | {m['rps'] * args.rows:,.0f} | {m['p50_ms']:.1f} | "
              f"{m['p99_ms']:.1f} | {min(p99s):.0f}-{max(p99s):.0f} | "
              f"{m['errors']:.0f} |")  # fmt: skip
    print(ratio_line(med))
    return 0


def parse() -> argparse.Namespace:
    p = checkout_parser(__doc__, duration_s=10.0, concurrency=64)
    p.add_argument("--rows", type=int, default=16, help="rows per request")
    return parse_checkouts(p)


if __name__ == "__main__":
    sys.exit(main(parse()))
