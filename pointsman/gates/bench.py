"""The benchmark test: versions measured side by side in one run, cell by cell.

Each cell (rows per request x concurrent callers) runs every version in turn, in rounds
whose order rotates, so that a slower minute of a shared machine falls on every version
alike. Per version and cell: end-to-end latency percentiles (a call to its runner and
back), throughput, and the runner's CPU time per request (the model's own work); per
version the runner's peak resident memory. The check compares each version's p99 with the
version in force's, cell by cell.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pointsman.registry import VersionRecord
from pointsman.runners.session import RunnerSession
from pointsman.runners.supervisor import process_cpu_s
from pointsman.types import Frame

WARMUP_CALLS = 3


@dataclass(frozen=True)
class BenchPlan:
    """What to measure: rows per request, concurrent callers, requests per version and cell."""

    rows: tuple[int, ...] = (1, 64)
    concurrency: tuple[int, ...] = (1, 8)
    requests: int = 200
    rounds: int = 4


@dataclass(frozen=True)
class BenchLimits:
    """A version fails when its p99 passes ratio x the baseline's p99 + slack (any cell)."""

    max_p99_ratio: float | None = None
    slack_ms: float = 1.0  # sub-millisecond jitter of tiny models is not a regression


def run_bench(
    session: RunnerSession,
    versions: list[VersionRecord],
    frames: dict[int, Frame],
    plan: BenchPlan,
) -> dict[str, dict[str, Any]]:
    """Per version (`v3`) and cell (`64 rows x 8`): the figures of the cell."""
    for record in versions:
        session.warm(record)
        for _ in range(WARMUP_CALLS):
            session.predict(record, frames[plan.rows[0]])
    out: dict[str, dict[str, Any]] = {f"v{r.number}": {} for r in versions}
    per_round = max(1, plan.requests // plan.rounds)
    for rows in plan.rows:
        for callers in plan.concurrency:
            cell = f"{rows} rows x {callers}"
            samples: dict[int, list[float]] = {r.number: [] for r in versions}
            wall = dict.fromkeys(samples, 0.0)
            cpu = dict.fromkeys(samples, 0.0)
            for round_ in range(plan.rounds):
                shift = round_ % len(versions)
                for record in versions[shift:] + versions[:shift]:
                    cpu_before = process_cpu_s(session.pid(record)) or 0.0
                    start = time.perf_counter()
                    samples[record.number] += _calls(
                        session, record, frames[rows], callers, per_round
                    )
                    wall[record.number] += time.perf_counter() - start
                    cpu[record.number] += (process_cpu_s(session.pid(record)) or 0.0) - cpu_before
            for record in versions:
                n = len(samples[record.number])
                out[f"v{record.number}"][cell] = {
                    **_percentiles(samples[record.number]),
                    "requests": n,
                    "rows_per_s": n * rows / wall[record.number] if wall[record.number] else None,
                    "model_cpu_ms": cpu[record.number] * 1000 / n if n else None,
                }
    for record in versions:
        out[f"v{record.number}"]["peak_memory_bytes"] = _peak_bytes(session.pid(record))
    return out


def _calls(
    session: RunnerSession, record: VersionRecord, frame: Frame, callers: int, n: int
) -> list[float]:
    def one(_: int) -> float:
        start = time.perf_counter()
        session.predict(record, frame)
        return (time.perf_counter() - start) * 1000

    if callers == 1:
        return [one(i) for i in range(n)]
    with ThreadPoolExecutor(callers) as pool:
        return list(pool.map(one, range(n)))


def _percentiles(ms: list[float]) -> dict[str, float | None]:
    if not ms:
        return {"p50_ms": None, "p95_ms": None, "p99_ms": None, "mean_ms": None}
    values = np.asarray(ms)
    return {
        "p50_ms": float(np.quantile(values, 0.5)),
        "p95_ms": float(np.quantile(values, 0.95)),
        "p99_ms": float(np.quantile(values, 0.99)),
        "mean_ms": float(values.mean()),
    }


def bench_failures(
    results: dict[str, dict[str, Any]], baseline: str, limits: BenchLimits
) -> list[str]:
    """Each (version, cell) whose p99 is past the limit against the baseline's."""
    if limits.max_p99_ratio is None or baseline not in results:
        return []
    out = []
    for name, cells in results.items():
        if name == baseline:
            continue
        for cell, figures in cells.items():
            if not isinstance(figures, dict):
                continue
            base = results[baseline].get(cell, {}).get("p99_ms")
            mine = figures.get("p99_ms")
            if base is None or mine is None:
                continue
            if mine > limits.max_p99_ratio * base + limits.slack_ms:
                out.append(
                    f"{name} p99 {mine:.3g} ms vs {baseline} {base:.3g} ms at {cell} "
                    f"(allowed {limits.max_p99_ratio:g}x + {limits.slack_ms:g} ms)"
                )
    return out


def _peak_bytes(pid: int | None) -> int | None:
    """The peak resident memory of a process (VmHWM), None when it cannot be read."""
    if pid is None:
        return None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        return None
    return None
