"""A batch job's rows/s and peak memory against the floor: predict_proba in-process, 64k rows
at a time, on one core.

Makes a demo project (churn version 1 or 2 with --version: scikit-learn pipelines), writes N
rows of churn features to Parquet in row groups of 65 536 (or CSV with --format csv), then
alternately:
- the floor: this process reads the file 65 536 rows at a time and calls the version's
  `predict_proba` on each chunk (one thread, no checks, nothing written; CSV read by
  pyarrow's streaming reader, its types inferred);
- `pointsman batch churn IN -o OUT.parquet --workers W`, a subprocess in a session of its own,
  its process tree (job, forkserver, workers) sampled from /proc every 50 ms for CPU time and
  resident memory.
- the model's own start-up: a fresh interpreter that imports pyarrow and pandas and loads the
  version's artifact with joblib (what any script must do before the floor's loop), its CPU
  time measured the same way.
A one-row job of each pointsman runs first, not counted (bytecode written, files cached).
Prints medians over the rounds: rows/s, rows per CPU-second (what "per core used" means here),
their ratio to the floor, and to the floor plus the model's own start-up (a script that
starts, loads the model and runs the floor's loop), and the peak of the summed resident
memory of the job's processes (PSS; and RSS, which counts shared pages once per process).
See bench/README.md.

With --baseline it also prints, per worker count, the job's throughput as a ratio to the floor
of the same round (floor and job run back to back, so a busy machine slows both alike), and
the median of those ratios: rows/s, rows per CPU-second, and rows per CPU-second less the
fixed cost (the same job on one row).

    .venv/bin/python bench/batch.py [--rows 1000000] [--workers 1,2] [--rounds 3] [--baseline]
                                    [--format parquet|csv] [--against PM] [--json f]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # the floor runs on one core
os.environ.setdefault("OMP_NUM_THREADS", "1")
# An installed pointsman has its bytecode compiled; a checkout run with this set would compile
# its modules from source in every job (a tenth of a short job's CPU). The warm-up job of
# each pointsman writes its bytecode before the rounds.
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)

import joblib
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from pointsman.demo.churn import TARGET, make_data

VENV_BIN = Path(sys.executable).parent
CHUNK = 65536
MODELS = {1: "churn_v1_logreg.joblib", 2: "churn_v2_gbm.joblib"}
PAGE = os.sysconf("SC_PAGE_SIZE")
TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Run:
    seconds: float
    cpu_s: float
    peak_pss_mib: float
    peak_rss_mib: float = 0.0

    def rows_per_s(self, rows: int) -> float:
        return rows / self.seconds

    def rows_per_cpu_s(self, rows: int) -> float:
        return rows / self.cpu_s


def write_rows(path: Path, rows: int) -> None:
    """`rows` churn rows (no target), written a million at a time; CSV for a .csv path."""
    writer: pq.ParquetWriter | pacsv.CSVWriter | None = None
    done = 0
    while done < rows:
        n = min(1_000_000, rows - done)
        frame = make_data(n, seed=100 + done // 1_000_000).drop(columns=[TARGET])
        table = pa.Table.from_pandas(frame, preserve_index=False)
        if path.suffix == ".csv":
            writer = writer or pacsv.CSVWriter(path, table.schema)
            writer.write_table(table)
        else:
            writer = writer or pq.ParquetWriter(path, table.schema)
            writer.write_table(table, row_group_size=CHUNK)
        done += n
    if writer is not None:
        writer.close()


def chunks(data: Path) -> Iterator[pa.Table]:
    """The file 65 536 rows at a time, as a hand-written script would read it."""
    if data.suffix != ".csv":
        for batch in pq.ParquetFile(data).iter_batches(batch_size=CHUNK):
            yield pa.Table.from_batches([batch])
        return
    pending: list[pa.RecordBatch] = []
    size = 0
    for batch in pacsv.open_csv(data, read_options=pacsv.ReadOptions(block_size=4 << 20)):
        pending.append(batch)
        size += batch.num_rows
        while size >= CHUNK:
            table = pa.Table.from_batches(pending)
            yield table.slice(0, CHUNK)
            pending, size = table.slice(CHUNK).to_batches(), size - CHUNK
    if size:
        yield pa.Table.from_batches(pending)


def floor(model_path: Path, data: Path) -> Run:
    """predict_proba on 64k-row chunks read from the file, in this process."""
    model = joblib.load(model_path)
    before = os.times()
    start = time.perf_counter()
    for table in chunks(data):
        model.predict_proba(table.to_pandas())
    seconds = time.perf_counter() - start
    after = os.times()
    cpu = (after.user - before.user) + (after.system - before.system)
    return Run(seconds, cpu, 0.0)


def bare_start(model_path: Path) -> float:
    """CPU seconds of a fresh interpreter that imports pyarrow and pandas and loads the model:
    the start-up any script scoring with this model pays before its first row."""
    code = f"import pyarrow.parquet, pandas, joblib; joblib.load({str(model_path)!r})"
    before = os.times()
    subprocess.run([sys.executable, "-c", code], check=True)
    after = os.times()
    return (after.children_user - before.children_user) + (
        after.children_system - before.children_system
    )


def tree(pgid: int) -> dict[int, tuple[float, int, int]]:
    """pid → (CPU seconds, proportional and resident set sizes in bytes) of every process of
    the group.

    PSS, not RSS: the forkserver's preloaded libraries are shared by every worker, and
    summing RSS would count them once per process."""
    out = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) != pgid:  # fields[2]: the process group
            continue
        cpu = (int(fields[11]) + int(fields[12])) / TICKS
        rss = int(fields[21]) * PAGE
        out[int(entry)] = (cpu, _pss(entry) or rss, rss)
    return out


def _pss(pid: str) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def job(
    project: Path, data: Path, out: Path, workers: int, version: int, pointsman: str = ""
) -> Run:
    """One `pointsman batch` run, its process tree sampled until it ends."""
    argv = [
        pointsman or str(VENV_BIN / "pointsman"),
        "--project",
        str(project),
        "batch",
        "churn",
        str(data),
        "-o",
        str(out),
        "--workers",
        str(workers),
        "--chunk-rows",
        str(CHUNK),
        "--version",
        str(version),
    ]
    start = time.perf_counter()
    process = subprocess.Popen(
        argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
    )
    cpu: dict[int, float] = {}
    peak = peak_rss = 0
    try:
        while process.poll() is None:
            seen = tree(process.pid)
            for pid, (used, _, _) in seen.items():
                cpu[pid] = used
            peak = max(peak, sum(pss for _, pss, _ in seen.values()))
            peak_rss = max(peak_rss, sum(rss for _, _, rss in seen.values()))
            time.sleep(0.05)
    finally:
        if process.poll() is None:
            process.kill()
    seconds = time.perf_counter() - start
    if process.returncode != 0:
        raise SystemExit(f"the batch job failed: {process.stderr.read().decode()[-2000:]}")
    return Run(seconds, sum(cpu.values()), peak / 2**20, peak_rss / 2**20)


def make_project(pointsman: str, project: Path, runtime: str) -> Path:
    """A demo project (its versions trained from fixed seeds: the same models each time)."""
    subprocess.run(
        [pointsman, "demo", str(project), "--no-serve"], check=True, stdout=subprocess.DEVNULL
    )
    subprocess.run(
        [pointsman, "--project", str(project), "runners", "churn", "--runtime", runtime],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return project


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--runtime", default="original", help="the runners' runtime for the job")
    parser.add_argument(
        "--version",
        type=int,
        default=1,
        choices=(1, 2),
        help="churn 1 (logistic regression) or 2 (gradient boosting)",
    )
    parser.add_argument(
        "--baseline",
        action="store_true",
        help="also print each round's ratio to that round's floor, and their median",
    )
    parser.add_argument("--format", choices=("parquet", "csv"), default="parquet")
    parser.add_argument(
        "--against",
        default="",
        help="another `pointsman` (a checkout of other code, its own venv) whose job runs "
        "after this one's in every round, against the same floors",
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    workers = [int(w) for w in args.workers.split(",")]
    with tempfile.TemporaryDirectory(prefix="pointsman-bench-batch-") as tmp:
        folder = Path(tmp)
        project = make_project(str(VENV_BIN / "pointsman"), folder / "demo", args.runtime)
        data = folder / f"rows.{args.format}"
        write_rows(data, args.rows)
        one = folder / f"one.{args.format}"
        write_rows(one, 1)
        print(f"load average at the start: {os.getloadavg()[0]:.1f}", file=sys.stderr)
        model = project / "models" / MODELS[args.version]
        # A project of the other code's own making: its store at that code's schema.
        theirs = folder / "demo-against"
        if args.against:
            make_project(args.against, theirs, args.runtime)
        # Warm-up, not counted: bytecode written, the input and the libraries in the page cache.
        job(project, one, folder / "warm.parquet", workers[0], args.version)
        if args.against:
            job(theirs, one, folder / "warm.parquet", workers[0], args.version, args.against)
        floors: list[Run] = []
        starts: list[float] = []
        jobs: dict[int, list[Run]] = {w: [] for w in workers}
        fixed: dict[int, list[Run]] = {w: [] for w in workers}
        other: dict[int, list[Run]] = {w: [] for w in workers}
        other_fixed: dict[int, list[Run]] = {w: [] for w in workers}
        for r in range(args.rounds):
            floors.append(floor(model, data))
            starts.append(bare_start(model))
            for w in workers:
                out, tiny = folder / f"out-{w}-{r}.parquet", folder / f"one-{w}-{r}.parquet"
                jobs[w].append(job(project, data, out, w, args.version))
                fixed[w].append(job(project, one, tiny, w, args.version))
                if args.against:
                    other[w].append(job(theirs, data, out, w, args.version, args.against))
                    other_fixed[w].append(job(theirs, one, tiny, w, args.version, args.against))
            print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)
        print(f"input: {data.name} ({args.format}), churn version {args.version}")
        report(args.rows, floors, starts, jobs, fixed, args.json, args.baseline)
        if args.against:
            print(f"\nagainst: {args.against}")
            path = args.json and args.json.with_name(args.json.stem + "-against.json")
            report(args.rows, floors, starts, other, other_fixed, path, args.baseline)


def report(
    rows: int,
    floors: list[Run],
    starts: list[float],
    jobs: dict[int, list[Run]],
    fixed: dict[int, list[Run]],
    path: Path | None,
    baseline: bool = False,
) -> None:
    """Medians; `fixed` is the same job on one row: start-up, loading, assembling; `starts`
    the model's own start-up (a bare interpreter loading it)."""
    f_rate = statistics.median(r.rows_per_s(rows) for r in floors)
    f_cpu = statistics.median(r.rows_per_cpu_s(rows) for r in floors)
    start = statistics.median(starts)
    f_script = statistics.median(rows / (r.cpu_s + s) for r, s in zip(floors, starts, strict=True))
    print(f"{rows:,} rows · {os.cpu_count()} CPUs · load {os.getloadavg()[0]:.1f}")
    print(
        f"floor (predict_proba, 64k chunks, one core): {f_rate:,.0f} rows/s, "
        f"{f_cpu:,.0f} rows per CPU-second; the model's own start-up {start:.2f} CPU-s "
        f"(floor with it: {f_script:,.0f} rows per CPU-second)"
    )
    print(
        "workers |   rows/s  per worker | rows/CPU-s  vs floor  vs floor+start |"
        " less fixed  vs floor | fixed CPU-s | peak PSS MiB | peak RSS MiB"
    )
    out = {
        "rows": rows,
        "floor_rows_per_s": f_rate,
        "floor_rows_per_cpu_s": f_cpu,
        "model_start_cpu_s": start,
        "floor_with_start_rows_per_cpu_s": f_script,
        "jobs": {},
    }
    for w, runs in jobs.items():
        rate = statistics.median(r.rows_per_s(rows) for r in runs)
        per_cpu = statistics.median(r.rows_per_cpu_s(rows) for r in runs)
        peak = max(r.peak_pss_mib for r in runs)
        peak_rss = max(r.peak_rss_mib for r in runs)
        start_cpu = statistics.median(r.cpu_s for r in fixed[w])
        steady = statistics.median(rows / max(r.cpu_s - start_cpu, 1e-9) for r in runs)
        print(
            f"{w:7d} | {rate:8,.0f} {rate / w:11,.0f} | {per_cpu:10,.0f} {per_cpu / f_cpu:8.0%}"
            f" {per_cpu / f_script:14.0%} | {steady:10,.0f} {steady / f_cpu:8.0%} |"
            f" {start_cpu:11.2f} | {peak:12,.0f} | {peak_rss:12,.0f}"
        )
        out["jobs"][w] = {
            "rows_per_s": rate,
            "rows_per_cpu_s": per_cpu,
            "vs_floor_per_cpu": per_cpu / f_cpu,
            "vs_floor_with_start_per_cpu": per_cpu / f_script,
            "rows_per_cpu_s_less_fixed": steady,
            "fixed_cpu_s": start_cpu,
            "peak_pss_mib": peak,
            "peak_rss_mib": peak_rss,
            "runs": [asdict(r) for r in runs],
            "fixed_runs": [asdict(r) for r in fixed[w]],
        }
    if baseline:
        out["baseline"] = against_floor(rows, floors, starts, jobs, fixed)
    if path is not None:
        path.write_text(json.dumps(out, indent=2))


def against_floor(
    rows: int,
    floors: list[Run],
    starts: list[float],
    jobs: dict[int, list[Run]],
    fixed: dict[int, list[Run]],
) -> dict[int, dict[str, float]]:
    """Each round's job against the same round's floor; the median of the ratios."""
    print("\nagainst the floor of the same round (median of the rounds' ratios):")
    print(
        "workers | rows/s ratio | per CPU-s ratio | with start-up ratio | less fixed ratio |"
        " rounds (per CPU-s)"
    )
    medians: dict[int, dict[str, float]] = {}
    for w, runs in jobs.items():
        wall, cpu, script, steady = [], [], [], []
        for f, s, r, one in zip(floors, starts, runs, fixed[w], strict=True):
            wall.append(r.rows_per_s(rows) / f.rows_per_s(rows))
            cpu.append(r.rows_per_cpu_s(rows) / f.rows_per_cpu_s(rows))
            script.append((f.cpu_s + s) / r.cpu_s)
            steady.append(rows / max(r.cpu_s - one.cpu_s, 1e-9) / f.rows_per_cpu_s(rows))
        medians[w] = {
            "rows_per_s": statistics.median(wall),
            "rows_per_cpu_s": statistics.median(cpu),
            "rows_per_cpu_s_with_start": statistics.median(script),
            "rows_per_cpu_s_less_fixed": statistics.median(steady),
        }
        m = medians[w]
        rounds = " ".join(f"{c:.0%}" for c in cpu)
        print(
            f"{w:7d} | {m['rows_per_s']:12.0%} | {m['rows_per_cpu_s']:15.0%} |"
            f" {m['rows_per_cpu_s_with_start']:19.0%} |"
            f" {m['rows_per_cpu_s_less_fixed']:16.0%} | {rounds}"
        )
    return medians


if __name__ == "__main__":
    main()
