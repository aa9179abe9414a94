"""Where a batch job's CPU goes, stage by stage, against the floor's own stages (issue 18).

In this process, on one core, for churn version 1 (or 2) on N rows of Parquet in row groups
of 65 536: the floor's stages (reading a chunk, `to_pandas`, `predict_proba`) and a
one-worker job's (reading a chunk as the job reads it, the signature, the profile checks and
the policy, the model through the runtime, the rest of scoring a chunk (building its output
tables), writing the part files, recording the chunk in the store, and at the end assembling
the Parquet output and the rejects). The job's stages run twice a round: with the text
handed to the model as pandas Categoricals (as a job does for a pipeline that only encodes
it) and decoded, side by side. CPU time (`time.process_time`) per million rows, medians over
the rounds. The job's start-up (imports, the store, loading the version) is not here:
bench/batch.py measures it as its one-row job.

    .venv/bin/python bench/batch_stages.py [--rows 2000000] [--rounds 3] [--version 1]
                                           [--runtime original]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # one core, as the floor and a worker
os.environ.setdefault("OMP_NUM_THREADS", "1")

import joblib
import pyarrow as pa
import pyarrow.parquet as pq

from pointsman.batch import JobBook, JobSpec, create_job
from pointsman.batch.executors import write_scored
from pointsman.batch.frames import check_chunk
from pointsman.batch.run import job_folder, setup_of, version_for
from pointsman.batch.score import Scorer, _answers
from pointsman.batch.sinks import output_constants, rejects_constants, rejects_of, write_parts
from pointsman.batch.sources import open_source, read_chunks
from pointsman.demo.churn import TARGET, make_data
from pointsman.project import Project, open_project
from pointsman.registry.loading import resolve_runtime
from pointsman.settings import load_settings

VENV_BIN = Path(sys.executable).parent
CHUNK = 65536
MODELS = {1: "churn_v1_logreg.joblib", 2: "churn_v2_gbm.joblib"}
FLOOR = ("read", "to_pandas", "predict_proba")
JOB = (
    "read",
    "signature",
    "profile",
    "model",
    "rest of score",
    "part files",
    "record",
    "assembly",
)

Times = dict[str, float]


def write_rows(path: Path, rows: int) -> None:
    """`rows` churn rows (no target) as bench/batch.py writes them."""
    writer: pq.ParquetWriter | None = None
    done = 0
    while done < rows:
        n = min(1_000_000, rows - done)
        frame = make_data(n, seed=100 + done // 1_000_000).drop(columns=[TARGET])
        table = pa.Table.from_pandas(frame, preserve_index=False)
        writer = writer or pq.ParquetWriter(path, table.schema)
        writer.write_table(table, row_group_size=CHUNK)
        done += n
    if writer is not None:
        writer.close()


def floor(model_path: Path, data: Path) -> Times:
    """bench/batch.py's floor, each stage timed."""
    model = joblib.load(model_path)
    times: Times = defaultdict(float)
    batches = pq.ParquetFile(data).iter_batches(batch_size=CHUNK)
    while True:
        t = time.process_time()
        batch = next(batches, None)
        if batch is None:
            times["read"] += time.process_time() - t
            return times
        table = pa.Table.from_batches([batch])
        t = _add(times, "read", t)
        frame = table.to_pandas()
        t = _add(times, "to_pandas", t)
        model.predict_proba(frame)
        _add(times, "predict_proba", t)


def job(project: Project, scorer: Scorer, data: Path, out: Path) -> Times:
    """A one-worker job's chunks through `scorer`, each stage timed."""
    spec = JobSpec(str(data), str(out), rejects_of(str(out)), chunk_rows=CHUNK, workers=1)
    record = create_job(project, "churn", str(scorer.version.number), spec, "bench")
    book = JobBook(project.engine)
    folder = job_folder(project, record.id)
    parts = folder / "parts"
    parts.mkdir(parents=True)
    signature = scorer.version.signature
    text = tuple(s.name for s in signature.inputs if s.type == "string")
    chunks = read_chunks(open_source(str(data)), signature.names, CHUNK, text)
    times: Times = defaultdict(float)
    chunk = 0
    while True:
        t = time.process_time()
        table = next(chunks, None)
        t = _add(times, "read", t)
        if table is None:
            break
        start = t
        checked = check_chunk(signature, table, False, scorer.arrow_strings, scorer.categorical)
        t = _add(times, "signature", t)
        findings = list(checked.frame.findings) + scorer.checks.check(
            checked.frame, checked.dictionaries
        )
        scorer._judge(findings, checked.rows, dict(checked.refused))
        t = _add(times, "profile", t)
        _answers(scorer.runtime, checked.frame)  # type: ignore[arg-type]
        stages = time.process_time() - start
        t = _add(times, "model", t)
        scored = scorer.score(chunk, chunk * CHUNK, table)  # again, whole: the rest is output
        times["rest of score"] += time.process_time() - t - stages
        t = time.process_time()
        result = write_scored(parts, scored)
        t = _add(times, "part files", t)
        book.chunk_done(record.id, result, 1.0)
        _add(times, "record", t)
        chunk += 1
    t = time.process_time()
    outputs = [parts / f"out-{c:06d}.arrow" for c in range(chunk)]
    number = scorer.version.number
    write_parts(spec.output, outputs, record.id, folder, output_constants(number, record.id))
    rejected = sorted(parts.glob("rej-*.arrow"))
    if rejected:
        constants = rejects_constants(number, record.id)
        write_parts(spec.rejects, rejected, record.id, folder, constants)
    _add(times, "assembly", t)
    shutil.rmtree(folder)
    return times


def _add(times: Times, stage: str, since: float) -> float:
    now = time.process_time()
    times[stage] += now - since
    return now


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--version", type=int, default=1, choices=(1, 2))
    parser.add_argument("--runtime", default="original", help="the runners' runtime for the job")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pointsman-bench-stages-") as tmp:
        folder = Path(tmp)
        demo = folder / "demo"
        pointsman = str(VENV_BIN / "pointsman")
        subprocess.run(
            [pointsman, "demo", str(demo), "--no-serve"], check=True, capture_output=True
        )
        subprocess.run(
            [pointsman, "--project", str(demo), "runners", "churn", "--runtime", args.runtime],
            check=True,
            capture_output=True,
        )
        data = folder / "rows.parquet"
        write_rows(data, args.rows)
        project = open_project(load_settings(demo))
        version = version_for(project, "churn", str(args.version))
        asked = project.runners.spec("churn", version.number).runtime
        spec = JobSpec(str(data), str(folder / "o.parquet"), str(folder / "o.rejects.parquet"))
        record = create_job(project, "churn", str(args.version), spec, "bench")
        scorer = setup_of(project, record, version, open_source(str(data))).build()
        categorical = scorer.categorical
        frame = next(iter(pq.ParquetFile(data).iter_batches(batch_size=8))).to_pandas()
        original = joblib.load(demo / "models" / MODELS[args.version])
        print(
            f"{args.rows:,} rows · churn version {args.version} · load "
            f"{os.getloadavg()[0]:.1f} · job runtime {resolve_runtime(version, asked)} "
            f"({type(scorer.runtime).__name__}); the floor: the joblib file's "
            f"{type(original).__name__}.predict_proba"
        )
        print(
            "floor's text dtype "
            f"{frame['plan'].dtype!r}; job's text to the model as Categoricals: "
            f"{', '.join(sorted(categorical)) or 'none'}"
        )
        runs: dict[str, list[Times]] = {"floor": [], "categorical": [], "decoded": []}
        for r in range(args.rounds):
            runs["floor"].append(floor(demo / "models" / MODELS[args.version], data))
            for name, names in (("categorical", categorical), ("decoded", frozenset())):
                scorer.categorical = names
                runs[name].append(job(project, scorer, data, folder / f"out-{name}-{r}.parquet"))
            print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)
        report(runs, args.rows)
        print(f"load average at the end: {os.getloadavg()[0]:.1f}")
        project.close()


def report(runs: dict[str, list[Times]], rows: int) -> None:
    """Per stage, the median CPU-s per million rows of each run; totals and ratios."""
    per_m = 1e6 / rows

    def median(name: str, stage: str) -> float:
        return statistics.median(t.get(stage, 0.0) for t in runs[name]) * per_m

    print(f"{'stage (CPU-s per million rows)':32} {'floor':>8} {'categorical':>12} {'decoded':>9}")
    for stage in dict.fromkeys([*FLOOR, *JOB]):
        cells = [
            f"{median(name, stage):8.3f}" if stage in (FLOOR if name == "floor" else JOB) else ""
            for name in runs
        ]
        print(f"{stage:32} {cells[0]:>8} {cells[1]:>12} {cells[2]:>9}")
    totals = {name: statistics.median(sum(t.values()) for t in runs[name]) * per_m for name in runs}
    print(
        f"{'total':32} {totals['floor']:8.3f} {totals['categorical']:12.3f}"
        f" {totals['decoded']:9.3f}"
    )
    for name in ("categorical", "decoded"):
        ratios = [
            sum(f.values()) / sum(j.values())
            for f, j in zip(runs["floor"], runs[name], strict=True)
        ]
        print(
            f"floor / job ({name}), per CPU-second less start-up: "
            f"{statistics.median(ratios):.0%} (rounds: {' '.join(f'{x:.0%}' for x in ratios)})"
        )


if __name__ == "__main__":
    main()
