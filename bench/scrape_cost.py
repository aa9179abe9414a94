"""What one GET /metrics costs the serving process: this checkout against another, same log.

A scrape renders the recorded families and the state read at scrape time, among them each
routed model's quality over the last `quality_window_s` (a day by default), recomputed at
most once a minute per process. It runs in a thread of the HTTP worker: what it holds of
the GIL, the event loop waits for. A fresh demo project gets `--records` logged
single-row churn requests of the last hour (the harness's `log_traffic`); then, for each
share of them with an outcome sent by request id (`--labelled`, 0 first), alternating
round by round, a fresh Python process of this checkout and one of `--baseline`'s open the
project and time one scrape with the quality recomputed: CPU seconds and wall seconds.
Medians and the ratios this / baseline are printed, and whether both rendered the same
quality gauges.

    .venv/bin/python bench/scrape_cost.py --baseline DIR [--records 100000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
from pathlib import Path

from harness import (
    ROOT,
    alternating_rounds,
    log_traffic,
    make_demo,
    parse_checkouts,
    run_in_checkout,
)

from pointsman.project import open_project
from pointsman.settings import load_settings

# Run by run_in_checkout on each checkout's code.
TIMED_SCRAPE = """
import json, sys, time
from pointsman.monitoring.exposition import scrape
from pointsman.project import open_project
from pointsman.settings import load_settings
project = open_project(load_settings(sys.argv[1]))
routes = project.routes.all_current()
import sklearn.metrics  # imported at a server's first scoring, not at each
cpu, wall = time.process_time(), time.perf_counter()
text = scrape(lambda: routes, project.engine).decode()
cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
quality = sorted(line for line in text.splitlines() if line.startswith("pointsman_quality"))
print(json.dumps({"cpu_s": cpu, "wall_s": wall, "quality": quality}))
"""


def label(project_dir: Path, share: float) -> int:
    """Outcomes, by request id, for `share` of the logged requests (spread evenly)."""
    import sqlalchemy as sa

    from pointsman.logstore.outcomes import parse_outcomes, store_outcomes
    from pointsman.store.tables import outcomes, prediction_log

    project = open_project(load_settings(project_dir))
    try:
        with project.engine.begin() as conn:
            conn.execute(sa.delete(outcomes))
            ids = conn.execute(sa.select(prediction_log.c.request_id)).scalars().all()
        step = max(1, round(1 / share)) if share > 0 else 0
        chosen = ids[::step] if step else []
        sent = [{"request_id": rid, "outcome": i % 2} for i, rid in enumerate(chosen)]
        for start in range(0, len(sent), 10_000):
            store_outcomes(
                project.engine, "churn", parse_outcomes(sent[start : start + 10_000], None)
            )
        return len(chosen)
    finally:
        project.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", type=Path, required=True, help="another checkout")
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--labelled", default="0,0.01", help="shares with outcomes, e.g. 0,0.01")
    parser.add_argument("--rounds", type=int, default=3)
    args = parse_checkouts(parser)
    checkouts = {"this": ROOT, "baseline": args.baseline}
    rows: list[str] = []
    with tempfile.TemporaryDirectory(prefix="pointsman-scrape-cost-") as tmp:
        folder = make_demo(Path(tmp) / "demo")
        project = open_project(load_settings(folder))
        log_traffic(project, args.records)
        project.close()
        for share in (float(s) for s in args.labelled.split(",")):
            labelled = label(folder, share)
            print(f"{labelled:,} labelled:", flush=True)
            runs = alternating_rounds(
                checkouts,
                args.rounds,
                lambda code: run_in_checkout(code, TIMED_SCRAPE, str(folder)),
                lambda f: f"CPU {f['cpu_s']:.3f} s, wall {f['wall_s']:.3f} s",
            )
            cpu = {
                n: statistics.median(float(f["cpu_s"]) for f in done) for n, done in runs.items()
            }
            wall = {
                n: statistics.median(float(f["wall_s"]) for f in done) for n, done in runs.items()
            }
            same = runs["this"][0]["quality"] == runs["baseline"][0]["quality"]
            rows.append(
                f"| {labelled:,} | {cpu['this']:.3f} | {cpu['baseline']:.3f} | "
                f"{cpu['this'] / cpu['baseline']:.3f} | {wall['this']:.3f} | "
                f"{wall['baseline']:.3f} | {same} |"
            )
    load = os.getloadavg()[0]
    print(f"\n{args.records:,} logged rows, {args.rounds} rounds, load average {load:.1f}; "
          "medians of one scrape with the quality recomputed:")  # fmt: skip
    print("| labelled | CPU s this | CPU s baseline | this / baseline | wall s this | "
          "wall s baseline | same quality gauges |")  # fmt: skip
    print("| --- | --- | --- | --- | --- | --- | --- |")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
