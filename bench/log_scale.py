"""The prediction log at scale: queries, explain, replay and export over many records.

Fills the store of a demo project (SQLite, and PostgreSQL when --postgres URL is given) with
N prediction records of churn version 1 by batched direct insert (not through HTTP), then
times a first page, a page deep in the cursor chain, a request-id lookup, `pointsman explain`,
`pointsman replay --sample`, and `pointsman export` to Parquet and CSV, each export in its own
process whose peak RSS is read from the kernel (ru_maxrss): the export streams, so its peak
memory must not grow with N.

    .venv/bin/python bench/log_scale.py [--records 100000] [--postgres URL] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from harness import VENV_BIN, drop_postgres, fresh_postgres, make_demo, pg_project

from pointsman.demo.churn import TARGET, make_data
from pointsman.logstore.query import LogQuery, find_predictions
from pointsman.logstore.shipper import insert_records
from pointsman.project import open_project
from pointsman.settings import load_settings

BATCH = 5000


def fill(project_dir: Path, n: int) -> float:
    """Insert n records (one row each, a second apart, ending now); seconds taken."""
    project = open_project(load_settings(project_dir))
    pool = make_data(1000, seed=3).drop(columns=[TARGET]).to_dict(orient="records")
    pool = [{k: (v.item() if hasattr(v, "item") else v) for k, v in r.items()} for r in pool]
    end = datetime.now(UTC).timestamp()
    start = time.perf_counter()
    for first in range(0, n, BATCH):
        batch = []
        for i in range(first, min(n, first + BATCH)):
            row = pool[i % len(pool)]
            p = (i % 97) / 97
            batch.append(
                {
                    "request_id": f"req-{i:08d}",
                    "role": "primary",
                    "version": 1,
                    "model": "churn",
                    "time": end - (n - i),
                    "route_revision": 1,
                    "client": None,
                    "n_rows": 1,
                    "inputs": {k: [v] for k, v in row.items()},
                    "outputs": {
                        "predictions": [int(p > 0.5)],
                        "probabilities": [[1 - p, p]],
                        "classes": [0, 1],
                    },
                    "latency_ms": 1.2,
                    "model_ms": 0.8,
                    "findings": None,
                    "error_code": None,
                    "error": None,
                    "extra": None,
                }
            )
        insert_records(project.engine, batch)
    project.close()
    return time.perf_counter() - start


def timed_cli(project_dir: Path, *args: str) -> tuple[float, float, str]:
    """Seconds, peak RSS (MiB) of a `pointsman` process, and its output."""
    argv = [str(VENV_BIN / "pointsman"), "--project", str(project_dir), *args]
    script = (
        "import resource, subprocess, sys, time\n"
        "t = time.perf_counter()\n"
        "out = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
        "took = time.perf_counter() - t\n"
        "rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024\n"
        "print(took, rss, out.returncode)\n"
        "print(out.stdout[-2000:] + out.stderr[-2000:])\n"
    )
    done = subprocess.run([sys.executable, "-c", script, *argv], capture_output=True, text=True)
    head, _, output = done.stdout.partition("\n")
    took, rss, code = head.split()
    if code != "0":
        raise RuntimeError(f"{' '.join(args)} failed:\n{output}")
    return float(took), float(rss), output


def bench_store(project_dir: Path, n: int, tmp: Path) -> dict[str, Any]:
    result: dict[str, Any] = {"records": n, "insert_s": fill(project_dir, n)}
    project = open_project(load_settings(project_dir))
    query = LogQuery(model="churn", since=datetime.now(UTC) - timedelta(days=30))
    start = time.perf_counter()
    page = find_predictions(project.engine, query, 100)
    result["first_page_ms"] = (time.perf_counter() - start) * 1000
    for _ in range(49):
        page = find_predictions(project.engine, query, 100, page.cursor)
    start = time.perf_counter()
    page = find_predictions(project.engine, query, 100, page.cursor)
    result["page_51_ms"] = (time.perf_counter() - start) * 1000
    start = time.perf_counter()
    found = find_predictions(project.engine, LogQuery(request_id=f"req-{n // 2:08d}"), 10)
    result["request_id_ms"] = (time.perf_counter() - start) * 1000
    assert len(found.records) == 1
    project.close()
    took, rss, _ = timed_cli(project_dir, "explain", f"req-{n // 3:08d}")
    result["explain"] = {"s": took, "peak_rss_mib": rss}
    took, rss, out = timed_cli(project_dir, "replay", "churn", "--to", "2", "--sample", "1000",
                               "--json")  # fmt: skip
    result["replay_1000"] = {
        "s": took,
        "peak_rss_mib": rss,
        "requests": json.loads(out)["requests"],
    }
    for fmt in ("parquet", "csv"):
        path = tmp / f"preds.{fmt}"
        took, rss, out = timed_cli(project_dir, "export", "churn", "-o", str(path))
        assert f"wrote {n} prediction records" in out, out
        result[f"export_{fmt}"] = {
            "s": took,
            "peak_rss_mib": rss,
            "mib": path.stat().st_size / 2**20,
        }
        path.unlink()
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--records", type=int, default=100_000)
    p.add_argument("--postgres", help="admin URL of a PostgreSQL server to bench too")
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="pointsman-bench-") as tmp_name:
        tmp = Path(tmp_name)
        demo = make_demo(tmp / "demo")
        print(f"sqlite: {args.records} records", file=sys.stderr)
        results["sqlite"] = bench_store(demo, args.records, tmp)
        if args.postgres:
            url = fresh_postgres(args.postgres)
            try:
                pg = pg_project(demo, tmp / "pg", url)
                print(f"postgresql: {args.records} records", file=sys.stderr)
                results["postgresql"] = bench_store(pg, args.records, tmp)
            finally:
                drop_postgres(url, args.postgres)
    for store, r in results.items():
        print(
            f"{store}: {r['records']} records inserted in {r['insert_s']:.1f} s; first page "
            f"{r['first_page_ms']:.1f} ms, page 51 {r['page_51_ms']:.1f} ms, request id "
            f"{r['request_id_ms']:.1f} ms; explain {r['explain']['s']:.1f} s; replay of 1000 "
            f"{r['replay_1000']['s']:.1f} s; export parquet {r['export_parquet']['s']:.1f} s "
            f"(peak RSS {r['export_parquet']['peak_rss_mib']:.0f} MiB, "
            f"{r['export_parquet']['mib']:.1f} MiB file), csv {r['export_csv']['s']:.1f} s "
            f"(peak RSS {r['export_csv']['peak_rss_mib']:.0f} MiB)"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
