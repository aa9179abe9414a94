"""What one scheduled drift run costs: this checkout against another, on the same log.

A drift run reads the newest `drift_max_rows` logged rows of every routed version and grades
each feature; `pointsman serve` runs it every `drift_interval_s` in a child process beside
the serving ones, so its CPU is a burst the HTTP workers share the cores with (one minute
of the soak in five). A fresh demo project gets `--records` logged single-row churn
requests of the last hour (the harness's `log_traffic`); then, alternating round by
round, a fresh Python process of this checkout and one of `--baseline`'s open the same
project and time one `run_reports`: CPU seconds and wall seconds. Medians over the rounds
and the ratios this / baseline are printed.

    .venv/bin/python bench/drift_cost.py --baseline DIR [--records 100000] [--rounds 5]
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
TIMED_RUN = """
import json, sys, time
from pointsman.monitoring.monitor import run_reports
from pointsman.project import open_project
from pointsman.settings import load_settings
project = open_project(load_settings(sys.argv[1]))
cpu, wall = time.process_time(), time.perf_counter()
reports = run_reports(project)
cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
psi = {f"{r.version} {f.feature}": f.psi for r in reports for f in r.features}
print(json.dumps({"cpu_s": cpu, "wall_s": wall, "rows": sum(r.rows for r in reports),
                  "grade": [r.grade for r in reports], "psi": psi}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", type=Path, required=True, help="another checkout")
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parse_checkouts(parser)
    checkouts = {"this": ROOT, "baseline": args.baseline}
    with tempfile.TemporaryDirectory(prefix="pointsman-drift-cost-") as tmp:
        folder = make_demo(Path(tmp) / "demo")
        project = open_project(load_settings(folder))
        log_traffic(project, args.records)
        project.close()
        runs = alternating_rounds(
            checkouts,
            args.rounds,
            lambda code: run_in_checkout(code, TIMED_RUN, str(folder)),
            lambda f: f"CPU {f['cpu_s']:.2f} s, wall {f['wall_s']:.2f} s, grade {f['grade']}",
        )
    print(f"\n{args.records:,} logged rows, {args.rounds} rounds, load average "
          f"{os.getloadavg()[0]:.1f}; medians:")  # fmt: skip
    print("| checkout | rows read | CPU s | wall s |")
    print("| --- | --- | --- | --- |")
    med = {}
    for name, done in runs.items():
        cpu = statistics.median(float(f["cpu_s"]) for f in done)
        wall = statistics.median(float(f["wall_s"]) for f in done)
        med[name] = (cpu, wall)
        print(f"| {name} | {done[0]['rows']:,} | {cpu:.2f} | {wall:.2f} |")
    # The same report from both: every feature's PSI, to the last digit.
    same = runs["this"][0]["psi"] == runs["baseline"][0]["psi"]
    print(
        f"this / baseline: CPU {med['this'][0] / med['baseline'][0]:.2f}, "
        f"wall {med['this'][1] / med['baseline'][1]:.2f}; same PSI for every feature: {same}"
    )


if __name__ == "__main__":
    main()
