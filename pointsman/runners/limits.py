"""Putting a runner process under its limits: cgroup v2 when the server may write one, else
resource limits, CPU affinity and a nice level. `describe` says which is in force.

Exit codes a runner uses so the supervisor can tell why it stopped (a signal says the rest).
"""

from __future__ import annotations

import errno
import logging
import os
import resource
import signal
from dataclasses import dataclass
from pathlib import Path

from pointsman.runners.spec import RunnerSpec, format_bytes

log = logging.getLogger("pointsman.runners")

EXIT_MEMORY = 70  # MemoryError: past its memory limit
EXIT_DISK = 71  # a file past its disk limit (EFBIG)
EXIT_LOAD = 73  # the version could not be loaded or failed its input example
NICE = 5  # runners yield to the HTTP front: /healthz answers while a model spins


@dataclass(frozen=True)
class Enforcement:
    """How limits are enforced on this machine."""

    cgroup: Path | None  # a cgroup v2 folder this server may write, with memory and cpu

    def describe(self) -> str:
        if self.cgroup is not None:
            return f"cgroup v2 under {self.cgroup} (memory.max, cpu.max)"
        return (
            "resource limits (memory: RLIMIT_DATA; CPU: an affinity of ceil(cpu) cores and "
            f"nice +{NICE}; disk: RLIMIT_FSIZE); no writable cgroup v2 with memory and cpu"
        )


def detect(configured: str) -> Enforcement:
    """The configured cgroup v2 folder if it can hold runners, else resource limits."""
    if not configured:
        return Enforcement(None)
    folder = Path(configured)
    controllers = _read(folder / "cgroup.controllers").split()
    if {"memory", "cpu"} <= set(controllers) and os.access(folder, os.W_OK):
        return Enforcement(folder)
    log.warning(
        "runner_cgroup %s is not a writable cgroup v2 folder with the memory and cpu "
        "controllers (controllers: %s); using resource limits instead",
        folder, " ".join(controllers) or "none",
    )  # fmt: skip
    return Enforcement(None)


def prepare_cgroup(enforcement: Enforcement, name: str, spec: RunnerSpec) -> Path | None:
    """A child cgroup for one runner with its memory.max and cpu.max written (or None)."""
    if enforcement.cgroup is None:
        return None
    group = enforcement.cgroup / name
    group.mkdir(exist_ok=True)
    memory = "max" if spec.memory_bytes is None else str(spec.memory_bytes)
    (group / "memory.max").write_text(memory)
    period = 100_000
    cpu = "max" if spec.cpu is None else str(int(spec.cpu * period))
    (group / "cpu.max").write_text(f"{cpu} {period}")
    return group


def join_cgroup(group: Path, pid: int) -> None:
    (group / "cgroup.procs").write_text(str(pid))


def apply_in_child(spec: RunnerSpec, cgroup: Path | None, slot: int) -> None:
    """Called first thing in the runner process: its resource limits, affinity and nice."""
    if cgroup is not None:
        join_cgroup(cgroup, os.getpid())
    elif spec.memory_bytes is not None:
        resource.setrlimit(resource.RLIMIT_DATA, (spec.memory_bytes, spec.memory_bytes))
    resource.setrlimit(resource.RLIMIT_FSIZE, (spec.disk_bytes, spec.disk_bytes))
    # A write past it then fails with EFBIG, which the runner reports, instead of SIGXFSZ.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    os.nice(NICE)
    cores = spec.cores
    if cgroup is None and cores is not None:
        available = sorted(os.sched_getaffinity(0))
        if cores < len(available):
            # Runners of different versions start on different cores (slot), round robin.
            start = slot % len(available)
            chosen = {available[(start + i) % len(available)] for i in range(cores)}
            os.sched_setaffinity(0, chosen)


def limit_hit(exc: BaseException, spec: RunnerSpec) -> tuple[str, str] | None:
    """(code, words) when `exc` is a limit being hit rather than the model failing."""
    if isinstance(exc, MemoryError):
        limit = "no limit" if spec.memory_bytes is None else format_bytes(spec.memory_bytes)
        return "memory", f"ran out of memory (limit {limit})"
    if isinstance(exc, OSError) and exc.errno == errno.EFBIG:
        return "disk", f"wrote a file past its disk limit of {format_bytes(spec.disk_bytes)}"
    return None


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""
