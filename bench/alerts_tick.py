"""What one alert-evaluator tick costs, and that a dead channel adds nothing to it.

Side by side in one run, on one store (SQLite in a temporary folder by default):
  baseline    a tick with no rules (one read of the rule table)
  quiet       4 rules on each of --models models evaluated, nothing firing
  live        the same rules all firing and repeating every tick (cooldown = tick), each
              notice queued for a webhook receiver on 127.0.0.1 that answers 200
  dead        the same, to a webhook where nothing listens (refused connection, retried)
Medians over --ticks ticks; the store holds MODELS x REVISIONS x WORKERS route_stats rows.
PASS if a dead channel's tick costs at most 1.5x a live channel's (sending happens in the
channel's own thread, never in the tick), every notice was made, and a quiet tick stays
under 250 ms.

    .venv/bin/python bench/alerts_tick.py [--models 20] [--ticks 30] [--database-url URL]
"""

from __future__ import annotations

import argparse
import json
import logging
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from sqlalchemy.engine import Engine

from pointsman.alerts import Dispatcher, Evaluator, RuleBook, build_rule
from pointsman.project import init_project, open_project
from pointsman.routing.stats import StatsRecorder
from pointsman.settings import load_settings

REVISIONS, WORKERS = 3, 4
CONDITIONS = (
    "error_rate > {t}",
    "p99_ms > {t}",
    "fallback_rate > {t}",
    "validation_flag_rate > {t}",
)
CELLS = ("quiet", "live", "dead")


class Ok(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(200)
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: object) -> None:
        pass


def dead_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/hook"


def fill_stats(engine: Engine, models: int, round_: int) -> None:
    """Every (model, revision, worker) cell gets traffic with 10 % errors and slow answers."""
    for w in range(WORKERS):
        recorder = StatsRecorder()
        recorder.worker = f"bench-{w}"
        for m in range(models):
            for r in range(1, REVISIONS + 1):
                cell = recorder.cell(f"model{m}", r, 1, "primary")
                n = 100 * round_
                cell.requests, cell.errors, cell.fallbacks, cell.invalid = (
                    n,
                    n // 10,
                    n // 10,
                    n // 10,
                )
                cell.latency = [0] * len(cell.latency)
                cell.latency[15] = n  # the 300-500 ms bucket
        recorder.flush(engine)


def timed_ticks(
    evaluator: Evaluator, clock: list[float], ticks: int, fill: Callable[[int], None]
) -> tuple[list[float], int]:
    """Tick times in ms, and how many notices the ticks made."""
    out, notices = [], 0
    for i in range(ticks):
        fill(i + 1)
        clock[0] += 10
        start = time.perf_counter()
        notices += len(evaluator.tick())
        out.append((time.perf_counter() - start) * 1000)
    return out, notices


def set_rules(book: RuleBook, models: int, prefix: str, threshold: float, url: str) -> None:
    for rule in book.list_rules():
        book.remove(rule.name, "bench")
    for m in range(models):
        for k, condition in enumerate(CONDITIONS):
            rule = build_rule(
                f"{prefix}{m}.{k}", model=f"model{m}", when=condition.format(t=threshold),
                window="10s", cooldown="10s", notify=[f"webhook={url}"] if url else [],
            )  # fmt: skip
            book.add(rule, "bench")


def run(models: int, ticks: int, database_url: str, live_url: str) -> dict[str, object]:
    folder, _ = init_project(Path(tempfile.mkdtemp(prefix="pointsman-bench-")), database_url)
    project = open_project(load_settings(folder))
    engine = project.engine
    clock = [time.time()]
    result: dict[str, object] = {"models": models, "route_stats_rows": models * REVISIONS * WORKERS}
    dispatcher = Dispatcher(engine, project.settings, backoff_s=(0.05,))
    book = RuleBook(engine)
    evaluator = Evaluator(engine, project.routes, book, dispatcher, "bench", clock=lambda: clock[0])
    try:
        fill_stats(engine, models, 1)
        result["baseline_ms"], _ = timed_ticks(evaluator, clock, ticks, lambda i: None)
        base = 1
        for name, threshold, url in (
            ("quiet", 1e9, ""), ("live", 0.0, live_url), ("dead", 0.0, dead_url())
        ):  # fmt: skip
            set_rules(book, models, name, threshold, url)
            base += ticks + 1
            fill_stats(engine, models, base)
            evaluator.tick()  # first firing (or the first snapshot of a new window)
            result[f"{name}_ms"], result[f"{name}_notices"] = timed_ticks(
                evaluator, clock, ticks, lambda i, b=base: fill_stats(engine, models, b + i)
            )
            dispatcher.drain(60)
    finally:
        evaluator.close()
        project.close()
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--models", type=int, default=20)
    parser.add_argument("--ticks", type=int, default=30)
    parser.add_argument("--database-url", default="")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    logging.getLogger("pointsman.alerts").setLevel(logging.CRITICAL)
    receiver = ThreadingHTTPServer(("127.0.0.1", 0), Ok)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    live_url = f"http://127.0.0.1:{receiver.server_address[1]}/hook"
    try:
        raw = run(args.models, args.ticks, args.database_url, live_url)
    finally:
        receiver.shutdown()
        receiver.server_close()
    medians = {k: statistics.median(v) for k, v in raw.items() if isinstance(v, list)}
    rules = args.models * len(CONDITIONS)
    store = args.database_url.partition(":")[0] or "sqlite"
    print(f"store: {store}; {raw['route_stats_rows']} route_stats rows; {rules} rules")
    made = {k: raw[f"{k}_notices"] for k in CELLS}
    print(f"  notices made in {args.ticks} ticks: {made}")
    for name, value in medians.items():
        print(f"  {name:12} median {value:8.2f} ms")
    ratio = medians["dead_ms"] / medians["live_ms"]
    print(f"  dead channel / live channel: {ratio:.2f}x")
    every = rules * args.ticks
    ok = ratio <= 1.5 and medians["quiet_ms"] < 250 and made["live"] == made["dead"] == every
    print("PASS" if ok else "FAIL")
    if args.json:
        args.json.write_text(json.dumps({"medians_ms": medians, "ratio": ratio, **raw}, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
