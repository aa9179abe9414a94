"""How a version's runners are placed and limited: replicas, CPU, memory, disk, time, queue."""

from __future__ import annotations

import math
import os
import re
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from pointsman.errors import InvalidRunnerSpec

MIB = 1024 * 1024
# Below this a runner cannot even import its libraries (numpy, pandas, scikit-learn
# reserve about 200 MiB of data before any model is loaded): refused with a message.
MIN_MEMORY_BYTES = 512 * MIB
MAX_BYTES = 1024**6  # past any machine: a longer number is a typo (and overflowed)
SIZE = r"^\s*(\d+(?:\.\d+)?)\s*([kmgtKMGT][iI]?[bB]?|[bB])?\s*$"  # the API schema's form
DURATION = r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$"

_SIZE = re.compile(SIZE)
_DURATION = re.compile(DURATION)
_SECONDS = {"ms": 0.001, "s": 1.0, "": 1.0, "m": 60.0, "h": 3600.0}
RUNTIMES = ("auto", "original", "compiled")  # a spec's `runtime`


@dataclass(frozen=True)
class RunnerSpec:
    """The runners of one version: how many, and the limits each runs under.

    `None` means "no limit" for cpu and memory. Every runner also gets a private scratch
    folder whose files may not grow past `disk_bytes`, and a hard time limit per call: a
    call past `timeout_s` gets its answer from the fallback (or a 504), and the runner is
    killed and replaced rather than left running.
    """

    replicas: int = 1  # RunnerBook's base sets default_replicas(): half the CPUs
    cpu: float | None = None  # CPUs: cgroup cpu.max, else an affinity of ceil(cpu) cores
    memory_bytes: int | None = None  # cgroup memory.max, else RLIMIT_DATA
    disk_bytes: int = 256 * MIB  # RLIMIT_FSIZE on every file the runner writes
    timeout_s: float = 30.0  # hard limit per call (and for loading and warming: 10x)
    queue: int = 64  # requests waiting per runner; past it: 503 with Retry-After
    max_batch_rows: int = 256  # rows merged into one model call while the model is busy
    max_wait_ms: float = 0.0  # extra wait for a batch to fill; 0: never wait
    # Which runtime answers: auto (the compiled ONNX artifact where it agreed with the
    # original on the reference sample, else the original), original, or compiled (refused
    # for a version whose compiled artifact did not agree).
    runtime: str = "auto"

    def __post_init__(self) -> None:
        problems = []
        if not 1 <= self.replicas <= 64:
            problems.append(f"replicas must be 1 to 64, got {self.replicas}")
        if self.cpu is not None and not 0 < self.cpu <= 256:
            problems.append(f"cpu must be above 0 (e.g. 0.5, 2), got {self.cpu}")
        if self.memory_bytes is not None and self.memory_bytes < MIN_MEMORY_BYTES:
            problems.append(
                f"memory must be at least {MIN_MEMORY_BYTES // MIB} MiB (a runner needs about "
                f"200 MiB before loading the model), got {format_bytes(self.memory_bytes)}"
            )
        if self.disk_bytes < MIB:
            problems.append(f"disk must be at least 1 MiB, got {format_bytes(self.disk_bytes)}")
        if not 0 < self.timeout_s <= 86400:
            problems.append(f"timeout must be above 0 and at most 1 day, got {self.timeout_s} s")
        if not 1 <= self.queue <= 100_000:
            problems.append(f"queue must be 1 to 100000 requests, got {self.queue}")
        if not 1 <= self.max_batch_rows <= 1_000_000:
            problems.append(f"max_batch_rows must be 1 to 1000000, got {self.max_batch_rows}")
        if not 0 <= self.max_wait_ms <= 1000:
            problems.append(f"max_wait_ms must be 0 to 1000, got {self.max_wait_ms}")
        if self.runtime not in RUNTIMES:
            problems.append(f"runtime must be one of {', '.join(RUNTIMES)}, got {self.runtime!r}")
        if problems:
            raise InvalidRunnerSpec("Invalid runner settings: " + "; ".join(problems) + ".")

    @property
    def cores(self) -> int | None:
        """Whole cores a runner may use without a cgroup (its CPU affinity)."""
        return None if self.cpu is None else max(1, math.ceil(self.cpu))

    @property
    def load_timeout_s(self) -> float:
        """Longest a runner may take to load and warm its version."""
        return max(60.0, 10 * self.timeout_s)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunnerSpec:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def with_changes(self, changes: dict[str, Any]) -> RunnerSpec:
        """This spec with the given fields changed (None leaves a field as it is; a cpu or
        memory of 0 removes that limit)."""
        known = {f.name for f in fields(self)}
        out = {k: v for k, v in changes.items() if v is not None and k in known}
        for unlimited in ("cpu", "memory_bytes"):
            if out.get(unlimited) == 0:
                out[unlimited] = None
        return replace(self, **out)

    def describe(self) -> str:
        """One line for people: `2 replicas, 1 CPU, 1 GiB, 2 s per call, queue 64`."""
        parts = [f"{self.replicas} replica{'s' if self.replicas != 1 else ''}"]
        parts.append("any CPU" if self.cpu is None else f"{self.cpu:g} CPU")
        parts.append(
            "no memory limit" if self.memory_bytes is None else format_bytes(self.memory_bytes)
        )
        parts.append(f"{self.timeout_s:g} s per call")
        parts.append(f"queue {self.queue}")
        parts.append(f"disk {format_bytes(self.disk_bytes)}")
        parts.append(f"batches of up to {self.max_batch_rows} rows")
        if self.max_wait_ms:
            parts.append(f"waiting up to {self.max_wait_ms:g} ms")
        parts.append(f"runtime {self.runtime}")
        return ", ".join(parts)


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity, which containers and taskset narrow)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def default_replicas() -> int:
    """Runners per version when nothing says: half the CPUs, the other half for the HTTP
    workers (batching keeps each runner's core busy under load)."""
    return max(1, usable_cpus() // 2)


UNLIMITED = ("none", "unlimited", "off")


def parse_memory(text: str, what: str = "memory") -> int:
    """A memory limit: a size, or `none` (0: no limit)."""
    return 0 if str(text).strip().lower() in UNLIMITED else parse_bytes(text, what)


def parse_cpu(text: str | float, what: str = "cpu") -> float:
    """A CPU limit: a number of CPUs, or `none` (0: no limit)."""
    if str(text).strip().lower() in UNLIMITED:
        return 0.0
    try:
        return float(text)
    except ValueError:
        message = f"{what} {text!r} is not a number of CPUs; write e.g. 0.5, 1 or 2 (or none)."
        raise InvalidRunnerSpec(message) from None


def parse_bytes(text: str, what: str = "size") -> int:
    """`1GiB`, `512Mi`, `2g`, `1000000` → bytes; InvalidRunnerSpec naming `what` otherwise."""
    match = _SIZE.match(str(text))
    if match is None:
        raise InvalidRunnerSpec(f"{what} {text!r} is not a size; write e.g. 512MiB, 1GiB or 2G.")
    number, unit = float(match.group(1)), (match.group(2) or "").lower()
    base = 1024 if "i" in unit else 1000
    power = {"": 0, "b": 0, "k": 1, "m": 2, "g": 3, "t": 4}[unit[:1] if unit else ""]
    size = number * base**power
    if not math.isfinite(size) or size > MAX_BYTES:
        raise InvalidRunnerSpec(f"{what} {text!r:.40} is over {MAX_BYTES // 1024**5} PiB.")
    return int(size)


def parse_seconds(text: str, what: str = "duration") -> float:
    """`2s`, `500ms`, `1m`, `3` (seconds) → seconds; InvalidRunnerSpec naming `what` otherwise."""
    match = _DURATION.match(str(text))
    if match is None:
        raise InvalidRunnerSpec(f"{what} {text!r} is not a duration; write e.g. 500ms, 2s or 1m.")
    return float(match.group(1)) * _SECONDS[match.group(2) or ""]


def format_bytes(n: int) -> str:
    for unit, size in (("GiB", 1024**3), ("MiB", MIB), ("KiB", 1024)):
        if n >= size:
            return f"{n / size:g} {unit}"
    return f"{n} B"
