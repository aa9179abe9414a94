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
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from harness import (
    BODY,
    WRK_SCRIPT,
    Server,
    checkout_server,
    machine,
    make_demo,
    make_key,
    run_wrk,
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


def measure(srv: Server, script: Path, args: argparse.Namespace) -> dict[str, float]:
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


def main(args: argparse.Namespace) -> int:
    if shutil.which("wrk") is None or shutil.which("ss") is None:
        print("needs wrk and ss (apt-get install -y wrk iproute2)", file=sys.stderr)
        return 2
    print(machine(), file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="pointsman-balance-") as tmp_name:
        tmp = Path(tmp_name)
        ours = make_demo(tmp / "demo")
        theirs = tmp / "baseline-demo"
        shutil.copytree(ours, theirs)  # same model and store schema, a store of its own
        script = tmp / "post.lua"
        servers = []
        try:
            for name, project, code in (("this", ours, None), ("baseline", theirs, args.baseline)):
                key = make_key(project)
                servers.append(checkout_server(name, project, tmp, key, code, args.workers))
                servers[-1].start()
            runs: dict[str, list[dict[str, float]]] = {s.name: [] for s in servers}
            for round_ in range(args.rounds):
                order = servers if round_ % 2 == 0 else servers[::-1]
                for srv in order:
                    script.write_text(WRK_SCRIPT % (srv.key, BODY))
                    run_wrk(srv.url, script, args.concurrency, 1, 1)  # warm-up
                    time.sleep(0.5)
                    runs[srv.name].append(measure(srv, script, args))
                    run = runs[srv.name][-1]
                    print(f"round {round_ + 1} {srv.name}: {run['rps']:,.0f} req/s, "
                          f"p99 {run['p99_ms']:.1f} ms, busiest worker {run['busiest']:.2f}",
                          file=sys.stderr)  # fmt: skip
        finally:
            for srv in servers:
                srv.stop()
    med = {
        name: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for name, rs in runs.items()
    }
    print(f"{args.rounds} rounds, {args.duration:g} s each, c={args.concurrency}, "
          f"--workers {args.workers}, load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    print("| server | req/s | p50 ms | p99 ms | busiest worker's share | errors |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, m in med.items():
        print(f"| {name} | {m['rps']:,.0f} | {m['p50_ms']:.2f} | {m['p99_ms']:.1f} | "
              f"{m['busiest']:.2f} | {m['errors']:.0f} |")  # fmt: skip
    this, base = med["this"], med["baseline"]
    print(f"this / baseline: req/s {this['rps'] / base['rps']:.2f}, "
          f"p99 {this['p99_ms'] / base['p99_ms']:.2f}")  # fmt: skip
    return 0


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--baseline", type=Path, required=True, help="another pointsman checkout")
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--duration", type=float, default=8.0, help="seconds measured per run")
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args()
    if not (args.baseline / "pointsman" / "__init__.py").is_file():
        p.error(f"--baseline {args.baseline} is not a pointsman checkout")
    return args


if __name__ == "__main__":
    sys.exit(main(parse()))
