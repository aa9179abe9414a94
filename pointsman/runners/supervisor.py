"""The supervisor: starts, watches, restarts and stops the runner processes of a server.

One supervisor per server (in `pointsman serve`'s main process, or in the app itself when
it runs alone). Each wanted version gets `spec.replicas` runner processes, forked from a
forkserver that imported numpy, pandas and scikit-learn once. A runner that dies is
restarted with backoff; one busy past its time limit is killed and replaced; one no longer
wanted drains (answers what it holds) and stops. What it sees is published in `state.json`
for the HTTP workers, and in the metrics. A version whose artifact is not on local disk yet
(an S3 store) is downloaded first (runners/downloads.py).
"""

from __future__ import annotations

import contextlib
import logging
import mmap
import multiprocessing
import multiprocessing.connection
import os
import shutil
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

import orjson

from pointsman.monitoring import metrics
from pointsman.registry import ArtifactStore, VersionRecord
from pointsman.runners import limits
from pointsman.runners.directory import RunDir, runner_name
from pointsman.runners.downloads import Downloads
from pointsman.runners.process import SLOT, RunnerArgs, main
from pointsman.runners.spec import RunnerSpec
from pointsman.store.outage import OutageLog

log = logging.getLogger("pointsman.runners")

Key = tuple[str, int]  # model, version
Wanted = dict[Key, tuple[VersionRecord, RunnerSpec]]
# Told (model, version, reason, detail) of every restart and failed load: the server
# records them as store events that alerts read.
OnEvent = Callable[[str, int, str, str], None]

TICK_S = 0.05
PUBLISH_S = 0.5
STABLE_S = 30.0  # a runner up this long has its failure count forgotten
PRELOAD = [
    "numpy",
    "pandas",
    "sklearn",
    "sklearn.base",
    "sklearn.pipeline",
    "sklearn.compose",
    "sklearn.preprocessing",
    "sklearn.linear_model",
    "joblib",
    "pointsman.runners.process",
]
THREADS_ENV = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
_context_lock = threading.Lock()


def runner_context() -> Any:
    """The forkserver every runner is forked from (started on first use, once a process).

    Its libraries run single-threaded: parallelism comes from replicas, and BLAS threads
    would reserve address space a memory limit then has to allow for.
    """
    with _context_lock:
        for name in THREADS_ENV:
            os.environ.setdefault(name, "1")
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(PRELOAD)
        return context


@dataclass
class Runner:
    """One runner process of a version, and what the supervisor knows of it."""

    key: Key
    index: int
    name: str
    version: VersionRecord
    spec: RunnerSpec
    process: BaseProcess | None = None
    state: str = "starting"  # starting | ready | backoff | failed | draining
    started_at: float = 0.0
    ready_at: float = 0.0
    next_start: float = 0.0
    failures: int = 0
    restarts: int = 0
    error: str = ""
    killed_for: str = ""  # why the supervisor killed it: timeout, cpu, load_timeout, stopped
    drain_at: float | None = None
    slot: mmap.mmap | None = None
    memory_bytes: int = 0
    busy: bool = False
    queued: int = 0
    served: int = 0  # requests answered and model calls made, as last read from its slot
    calls: int = 0
    retired_at: float = 0.0
    surge: bool = False  # the extra runner that answers while the others take new limits

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "pid": self.process.pid if self.process is not None else None,
            "state": self.state,
            "restarts": self.restarts,
            "error": self.error,
            "memory_bytes": self.memory_bytes,
            "busy": self.busy,
            "queued": self.queued,
        }

    def sample(self) -> None:
        """Its memory, busy flag and queue now; the calls counted since the last sample."""
        pid = self.process.pid if self.process is not None else None
        self.memory_bytes = _resident_bytes(pid) if pid else 0
        self.busy, self.queued = False, 0
        model, number = self.key
        if self.slot is not None:
            busy_since, _, queued, served, calls = SLOT.unpack_from(self.slot, 0)
            self.busy, self.queued = bool(busy_since), queued
            # Counters in the slot start at 0 with each process: count what is new. One that
            # went down is a new process's slot (the file is truncated at its start).
            metrics.RUNNER_REQUESTS.labels(model, str(number)).inc(_new(served, self.served))
            metrics.RUNNER_CALLS.labels(model, str(number)).inc(_new(calls, self.calls))
            self.served, self.calls = served, calls
        metrics.RUNNER_MEMORY.labels(model, str(number), str(self.index)).set(self.memory_bytes)


@dataclass
class Supervisor:
    """Keeps the wanted versions' runners up; run `start()` then `stop()`."""

    run_dir: RunDir
    artifacts: ArtifactStore
    wanted: Callable[[], Wanted]  # what should run now (called every tick; may cache)
    enforcement: limits.Enforcement = field(default_factory=lambda: limits.Enforcement(None))
    drain_s: float = 2.0
    on_event: OnEvent | None = None
    # `pointsman runner serve`: its one runner listens on TCP here, callers proving `secret`
    listen: str = ""
    secret: bytes | None = None
    runners: dict[tuple[Key, int], Runner] = field(default_factory=dict)
    outage: OutageLog = field(default_factory=OutageLog)  # store outages: two lines, not one a tick
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _published: float = 0.0
    _seen: list[tuple[str, str, int, BaseProcess | None]] = field(default_factory=list)
    _slots: int = 0  # runners started so far: spreads CPU affinities
    _downloads: Downloads = field(default_factory=Downloads)  # artifacts not on local disk

    def start(self) -> None:
        log.info("runner limits: %s", self.enforcement.describe())
        self._thread = threading.Thread(target=self._loop, name="pointsman-supervisor", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop every runner (SIGTERM: they answer what they hold), then kill the rest."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
        live = [r for r in self.runners.values() if _alive(r)]
        for runner in live:
            runner.killed_for = "stopped"
            _signal(runner, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        for runner in live:
            assert runner.process is not None
            runner.process.join(max(0.0, deadline - time.monotonic()))
            if runner.process.is_alive():
                runner.process.kill()
                runner.process.join(1.0)
        self.runners.clear()
        self._downloads.close()
        self.publish()

    # -- the loop -----------------------------------------------------------------
    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick(time.monotonic())
                self.outage.succeeded("runner supervision")
            except Exception as exc:  # a store outage, say: keep the runners we have
                if not self.outage.failed("runner supervision", exc):
                    log.exception("runner supervision failed; retrying")
            sentinels = [r.process.sentinel for r in self.runners.values() if r.process]
            if sentinels:
                multiprocessing.connection.wait(sentinels, TICK_S)
            else:
                self._stop.wait(TICK_S)

    def tick(self, now: float) -> None:
        """One round: match the wanted set, then step every runner."""
        self._match(self.wanted(), now)
        for runner in list(self.runners.values()):
            self._step(runner, now)
        # Published at once when a runner changes state (workers read "why not ready" there),
        # and with fresh memory and queue figures every PUBLISH_S.
        seen = [(r.name, r.state, r.restarts, r.process) for r in self.runners.values()]
        if now - self._published >= PUBLISH_S:
            self._published = now
            self._sample()
            self.publish()
        elif seen != self._seen:
            self.publish()
        self._seen = seen

    def _match(self, wanted: Wanted, now: float) -> None:
        for key, (version, spec) in wanted.items():
            for index in range(spec.replicas):
                found = self.runners.get((key, index))
                if found is None:
                    self._add(key, index, version, spec)
                else:
                    found.drain_at = None  # wanted again
                    if same_process(found.spec, spec):
                        found.spec = spec
            self._roll(key, version, spec)
        for (key, index), runner in self.runners.items():
            entry = wanted.get(key)
            extra = entry is None or (index >= entry[1].replicas and not runner.surge)
            if extra and runner.drain_at is None:
                runner.drain_at = now + self.drain_s

    def _add(self, key: Key, index: int, version: VersionRecord, spec: RunnerSpec) -> Runner:
        name = runner_name(key[0], key[1], index)
        runner = self.runners[key, index] = Runner(key, index, name, version, spec)
        return runner

    def _roll(self, key: Key, version: VersionRecord, spec: RunnerSpec) -> None:
        """New limits, one runner at a time: a surge runner under them comes up first, and
        each old runner drains only while the others answer, so the version never stops."""
        own = [self.runners[key, i] for i in range(spec.replicas)]

        def differs(runner: Runner) -> bool:  # new limits, or a new compile of the version
            return runner.spec != spec or runner.version.compiled != version.compiled

        for runner in own:
            if differs(runner) and runner.state != "ready" and runner.state != "draining":
                runner.spec, runner.version = spec, version  # its next start takes them
                self._retire(runner, "respec")
        stale = [r for r in own if differs(r)]
        surge = self.runners.get((key, spec.replicas))
        if not stale:
            if surge is not None and surge.surge and all(r.state == "ready" for r in own):
                surge.surge = False  # no longer needed: drained as an extra runner
            return
        if surge is None or not surge.surge:
            if surge is None:  # (an extra runner still draining keeps its slot until gone)
                self._add(key, spec.replicas, version, spec).surge = True
            return
        if surge.state != "ready" or any(r.state != "ready" for r in own):
            return  # the surge runner is loading, or a replaced one is not back yet
        stale[0].spec, stale[0].version = spec, version
        self._retire(stale[0], "respec")

    def _step(self, runner: Runner, now: float) -> None:
        process = runner.process
        if process is not None and not process.is_alive():
            self._exited(runner, now)
            return
        if runner.drain_at is not None and now >= runner.drain_at:
            if process is None:
                self._forget(runner)
            elif runner.state != "draining":
                runner.state = "draining"
                runner.killed_for = "stopped"
                _signal(runner, signal.SIGTERM)
            elif now - runner.drain_at > runner.spec.timeout_s + 5:
                process.kill()  # it would not finish what it held
            return
        if runner.state == "draining":
            if process is not None and now - runner.retired_at > runner.spec.timeout_s + 5:
                process.kill()  # it would not finish what it held
            return
        if process is None:
            if runner.drain_at is None and now >= runner.next_start:
                self._start(runner, now)
            return
        if runner.state == "starting":
            self._check_started(runner, now)
        elif runner.state == "ready":
            self._watch(runner, now)

    def _start(self, runner: Runner, now: float) -> None:
        why_not = self._downloads.check(self.artifacts, runner.version)
        if why_not is not None:  # "": still downloading
            if why_not:
                self._download_failed(runner, now, why_not)
            return
        paths = self.run_dir
        for path in (paths.socket(runner.name), paths.status(runner.name), paths.slot(runner.name)):
            path.unlink(missing_ok=True)  # nothing of the previous process may be read as new
        cgroup = limits.prepare_cgroup(self.enforcement, runner.name, runner.spec)
        args = RunnerArgs(
            runner.name, runner.version, self.artifacts, runner.spec,
            paths.socket(runner.name), paths.slot(runner.name), paths.status(runner.name),
            paths.scratch(runner.name), cgroup, self._slots, self.listen, self.secret,
        )  # fmt: skip
        self._slots += 1
        process = runner_context().Process(target=main, args=(args,), name=runner.name)
        process.daemon = False  # a runner must outlive nothing, but daemons cannot fork
        process.start()
        runner.process, runner.state, runner.started_at = process, "starting", now
        runner.killed_for, runner.slot = "", None
        runner.served = runner.calls = 0

    def _download_failed(self, runner: Runner, now: float, why: str) -> None:
        runner.error, runner.state = why, "failed"
        runner.failures += 1
        runner.next_start = now + min(30.0, 0.25 * 2 ** (runner.failures - 1))
        log.warning("runner %s: its artifact could not be downloaded: %s", runner.name, why)
        if self.on_event is not None and runner.failures == 1:
            self.on_event(runner.key[0], runner.key[1], "load_failed", why)

    def _check_started(self, runner: Runner, now: float) -> None:
        status = _read_json(self.run_dir.status(runner.name))
        if status.get("state") == "ready":
            runner.state, runner.ready_at, runner.error = "ready", now, ""
            runner.slot = _open_slot(self.run_dir.slot(runner.name))
            log.info("runner %s is ready (pid %s)", runner.name, status.get("pid"))
        elif now - runner.started_at > runner.spec.load_timeout_s:
            runner.killed_for = "load_timeout"
            runner.error = (
                f"did not load and answer its input example within {runner.spec.load_timeout_s:g} s"
            )
            assert runner.process is not None
            runner.process.kill()

    def _watch(self, runner: Runner, now: float) -> None:
        """Kill a runner whose call has run past its time limit (spinning or stuck)."""
        if runner.failures and now - runner.ready_at > STABLE_S:
            runner.failures = 0
        if runner.slot is None:
            return
        busy_since, cpu_at_start, *_ = SLOT.unpack_from(runner.slot, 0)
        if runner.killed_for in ("cpu", "timeout"):  # told apart once: dying, it is runnable
            return
        if busy_since and now - busy_since > runner.spec.timeout_s + 0.05:
            pid = runner.process.pid if runner.process else None
            used = process_cpu_s(pid)
            # A stuck call (sleep, a lock, I/O) uses next to no CPU; a spinning one as much as
            # it gets, which, niced on a crowded machine, can be a few per cent of a core:
            # then it is still runnable (waiting for a CPU) where a stuck one sleeps.
            share = used is not None and used - cpu_at_start > 0.2 * (now - busy_since)
            spinning = share or is_runnable(pid)
            runner.killed_for = "cpu" if spinning else "timeout"
            runner.error = f"a call ran past its {runner.spec.timeout_s:g} s time limit" + (
                " using the CPU" if spinning else ""
            )
            assert runner.process is not None
            runner.process.kill()

    def _exited(self, runner: Runner, now: float) -> None:
        assert runner.process is not None
        code = runner.process.exitcode
        reason = runner.killed_for or _reason_of(code, self.enforcement)
        runner.process.close()
        runner.process, runner.slot = None, None
        if reason == "stopped" or runner.drain_at is not None:
            self._forget(runner)
            return
        if reason == "respec":
            runner.state, runner.next_start = "backoff", now
            return
        if reason in ("load_failed", "load_timeout"):
            status = _read_json(self.run_dir.status(runner.name))
            runner.error = str(status.get("error") or runner.error or "failed to load")
        elif not runner.killed_for:
            runner.error = _words(reason, code, runner.spec)
        runner.failures += 1
        runner.restarts += 1
        runner.state = "failed" if reason.startswith("load") else "backoff"
        delay = min(30.0, 0.25 * 2 ** (runner.failures - 1))
        runner.next_start = now + delay
        model, number = runner.key
        metrics.RUNNER_RESTARTS.labels(model, str(number), reason).inc()
        log.warning("runner %s stopped (%s: %s); restarting in %.2g s",
                    runner.name, reason, runner.error, delay)  # fmt: skip
        # A version that cannot load is told once per streak, not at every retry.
        if self.on_event is not None and (runner.state != "failed" or runner.failures == 1):
            self.on_event(model, number, reason, runner.error)

    def _retire(self, runner: Runner, why: str) -> None:
        """Stop a runner after what it holds (it refuses new calls), to start it afresh."""
        if runner.process is not None and runner.process.is_alive():
            runner.killed_for, runner.state = why, "draining"
            runner.retired_at = time.monotonic()
            _signal(runner, signal.SIGTERM)

    def _forget(self, runner: Runner) -> None:
        self.runners.pop((runner.key, runner.index), None)
        for path in (
            self.run_dir.socket(runner.name),
            self.run_dir.slot(runner.name),
            self.run_dir.status(runner.name),
        ):
            path.unlink(missing_ok=True)
        shutil.rmtree(self.run_dir.scratch(runner.name), ignore_errors=True)

    # -- what others see --------------------------------------------------------------
    def _sample(self) -> None:
        totals: dict[Key, list[int]] = {}
        for runner in self.runners.values():
            runner.sample()
            busy_queued_ready = totals.setdefault(runner.key, [0, 0, 0])
            busy_queued_ready[0] += runner.busy
            busy_queued_ready[1] += runner.queued
            busy_queued_ready[2] += runner.state == "ready"
        for (model, number), (busy, queued, ready) in totals.items():
            metrics.RUNNERS_BUSY.labels(model, str(number)).set(busy)
            metrics.RUNNER_QUEUE.labels(model, str(number)).set(queued)
            metrics.RUNNERS_READY.labels(model, str(number)).set(ready)

    def publish(self) -> None:
        versions: dict[str, Any] = {}
        for runner in sorted(self.runners.values(), key=lambda r: (r.key, r.index)):
            entry = versions.setdefault(
                f"{runner.key[0]}:{runner.key[1]}",
                {"spec": runner.spec.to_json(), "runners": []},
            )
            entry["runners"].append(runner.to_json())
        self.run_dir.write_state(
            {"enforcement": self.enforcement.describe(), "pid": os.getpid(), "versions": versions}
        )


def same_process(old: RunnerSpec, new: RunnerSpec) -> bool:
    """Whether a runner under `old` can go on as one under `new` (only the count changed)."""
    return replace(old, replicas=new.replicas) == new


def _alive(runner: Runner) -> bool:
    return runner.process is not None and runner.process.is_alive()


def _signal(runner: Runner, signum: int) -> None:
    if runner.process is not None and runner.process.pid is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(runner.process.pid, signum)


def _reason_of(code: int | None, enforcement: limits.Enforcement) -> str:
    """Why a runner the supervisor did not kill stopped, from its exit code or signal."""
    if code == limits.EXIT_MEMORY:
        return "oom"
    if code == limits.EXIT_DISK:
        return "disk"
    if code == limits.EXIT_LOAD:
        return "load_failed"
    if code == -signal.SIGXCPU:
        return "cpu"
    if code == -signal.SIGXFSZ:
        return "disk"
    if code == -signal.SIGKILL:
        return "oom" if enforcement.cgroup is not None else "killed"
    return "crash"


def _words(reason: str, code: int | None, spec: RunnerSpec) -> str:
    if reason == "oom":
        return "ran out of memory" + (
            "" if spec.memory_bytes is None else f" (limit {spec.memory_bytes} bytes)"
        )
    if reason == "disk":
        return "wrote past its disk limit"
    if code is not None and code < 0:
        return f"crashed (signal {signal.Signals(-code).name})"
    return f"exited with code {code}"


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def _new(count: int, last: int) -> int:
    """What a slot's counter added since it read `last`; all of it when it restarted from 0."""
    return count - last if count >= last else count


def _open_slot(path: Path) -> mmap.mmap | None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        return mmap.mmap(fd, SLOT.size, prot=mmap.PROT_READ)
    finally:
        os.close(fd)


def process_cpu_s(pid: int | None) -> float | None:
    """A process's CPU time (user + system) as the process itself counts it."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def is_runnable(pid: int | None) -> bool:
    """Whether any thread of the process is running or waiting for a CPU (state R)."""
    if pid is None:
        return False
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return False
    for task in tasks:
        try:
            if (task / "stat").read_text().rsplit(")", 1)[1].split()[0] == "R":
                return True
        except (OSError, IndexError):
            continue
    return False


def _resident_bytes(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, IndexError, ValueError):
        return 0
