"""Chaos and soak: what pointsman loses when things break under load (the answer should be 0).

Scenarios (each on a fresh demo project, `pointsman serve` on 127.0.0.1, a bounded async load):

- `kill`: SIGKILL of one HTTP worker mid-load. Every request answered 200 must have its
  prediction record in the store once the dead worker's spool is shipped (the next start
  ships orphans; here the survivors' shippers, then a final drain).
- `pg`: the PostgreSQL store behind a TCP proxy this script runs; the proxy drops every
  connection and refuses new ones for `--outage-s` (60 by default), then lets them through
  again. Serving must go on, and every answered request must be in the store afterwards.
- `spoolfull`: the spool on a small tmpfs this script mounts (root only, `--spool-kib`);
  the store is kept from taking records (the spool only grows); the configured policy applies:
  `refuse` answers 503 past the budget, never 200 without a record.
- `soak`: the capacity first (wrk, 16 callers flat out for `--capacity-s`), then `--minutes`
  at `--load-share` of it (70 %; calls sent on a fixed schedule): RSS, open fds and threads of
  the server's processes, its CPU, the machine's load, p50 and p99, each minute; /metrics
  scraped every 15 s as Prometheus would (the slowest scrape and failures). Judged
  after `--warmup-minutes`: growth of RSS, fds and threads (and which process grew), and the
  spread of the medians of 5-minute windows of p99, raw and scaled by the machine's speed
  that minute (wrk's CPU per request).

    .venv/bin/python bench/chaos.py kill pg spoolfull soak --minutes 2 [--json out.json]

Loopback only, bounded in time and request count.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from harness import (
    BODY,
    VENV_BIN,
    WRK_SCRIPT,
    drop_postgres,
    fresh_postgres,
    make_demo,
    make_key,
    pg_project,
    run_wrk,
)

from pointsman.logstore.shipper import ship_segments
from pointsman.logstore.spool import segments_in

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


# -- the server and the load -----------------------------------------------------------
def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Served:
    """`pointsman serve` in its own process group; stop() ends the group."""

    def __init__(self, project: Path, workers: int, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = project / f"serve-{self.port}.log"
        argv = [str(VENV_BIN / "pointsman"), "--project", str(project), "serve",
                "--port", str(self.port), "--workers", str(workers)]  # fmt: skip
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                env={**os.environ, **(env or {})},
            )  # fmt: skip
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + "/readyz", timeout=1).status_code == 200:
                    return
            if self.proc.poll() is not None:
                raise RuntimeError(self.log.read_text()[-3000:])
            time.sleep(0.2)
        self.stop()
        raise RuntimeError("the server did not get ready")

    def pids(self) -> list[int]:
        """The server and its workers (its process group), runners included."""
        out = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError, IndexError):
                if int(stat.read_text().rpartition(")")[2].split()[2]) == self.proc.pid:
                    out.append(int(stat.parent.name))
        return out

    def workers(self) -> list[int]:
        """uvicorn's worker processes: children of the server running the app."""
        out = []
        for pid in self.pids():
            with contextlib.suppress(OSError):
                status = Path(f"/proc/{pid}/status").read_text()
                ppid = int(status.split("PPid:")[1].split()[0])
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
                if ppid == self.proc.pid and b"forkserver" not in cmd and b"resource_tr" not in cmd:
                    out.append(pid)
        return out

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)


class Load:
    """Requests at a steady rate (bounded concurrency); each answer's status and latency."""

    def __init__(self, url: str, key: str, rate: float, concurrency: int = 16) -> None:
        self.url = f"{url}/v1/models/churn/predict"
        self.headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        self.rate = rate
        self.concurrency = concurrency
        self.answers: list[tuple[float, int, float, str]] = []  # at, status, latency, rid
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(60)

    async def _run(self) -> None:
        gate = asyncio.Semaphore(self.concurrency)
        limits = httpx.Limits(max_connections=self.concurrency)
        async with httpx.AsyncClient(timeout=10, limits=limits) as http:
            tasks = set()
            start = time.monotonic()
            n = 0
            while not self._stop.is_set():
                n += 1
                await asyncio.sleep(max(0.0, start + n / self.rate - time.monotonic()))
                await gate.acquire()
                task = asyncio.create_task(self._one(http, gate))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _one(self, http: httpx.AsyncClient, gate: asyncio.Semaphore) -> None:
        rid = uuid.uuid4().hex
        t = time.perf_counter()
        status = 0
        try:
            answer = await http.post(
                self.url, content=BODY, headers={**self.headers, "X-Request-ID": rid}
            )
            status = answer.status_code
        except httpx.HTTPError:
            status = -1  # no answer: a connection to the killed worker, say
        finally:
            gate.release()
            self.answers.append((time.monotonic(), status, time.perf_counter() - t, rid))

    def acknowledged(self) -> set[str]:
        return {rid for _, status, _, rid in self.answers if status == 200}

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for _, status, _, _ in self.answers:
            out[str(status)] = out.get(str(status), 0) + 1
        return out


def logged_ids(url: str) -> set[str]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.text("select request_id from prediction_log")).all()
        return {r[0] for r in rows}
    finally:
        engine.dispose()


def drain_spool(project: Path, url: str) -> int:
    """Ship what stopped workers left in the spool (what the next start would ship)."""
    engine = sa.create_engine(url)
    count = 0
    try:
        for folder in sorted((project / "spool").glob("*")):
            if folder.is_dir() and not folder.name.startswith("."):
                count += ship_segments(engine, segments_in(folder))
    finally:
        engine.dispose()
    return count


def store_url(project: Path) -> str:
    text = (project / "pointsman.toml").read_text()
    for line in text.splitlines():
        if line.startswith("database_url"):
            return line.split("=", 1)[1].strip().strip('"')
    return f"sqlite:///{project / 'pointsman.db'}"


def set_options(project: Path, **options: Any) -> None:
    """Set top-level options of pointsman.toml (replacing any already there)."""
    path = project / "pointsman.toml"
    lines = [
        line
        for line in path.read_text().splitlines()
        if line.split("=", 1)[0].strip() not in options
    ]
    lines = [f"{name} = {json.dumps(value)}" for name, value in options.items()] + lines
    path.write_text("\n".join(lines) + "\n")


# -- scenarios --------------------------------------------------------------------------
def scenario_kill(demo: Path, args: argparse.Namespace) -> dict[str, Any]:
    """SIGKILL of one HTTP worker mid-load; acknowledged requests missing from the log."""
    project = copy_project(demo, "kill")
    key = make_key(project)
    server = Served(project, workers=2)
    load = Load(server.url, key, args.rate)
    try:
        load.start()
        time.sleep(args.seconds / 2)
        victim = server.workers()[0]
        os.kill(victim, signal.SIGKILL)
        time.sleep(args.seconds / 2)
        load.stop()
    finally:
        server.stop()
    url = store_url(project)
    drained = drain_spool(project, url)
    missing = load.acknowledged() - logged_ids(url)
    return {
        "answers": load.counts(),
        "acknowledged": len(load.acknowledged()),
        "shipped_after_stop": drained,
        "missing": len(missing),
        "killed_pid": victim,
    }


async def proxy_forever(
    listen: int, target: int, open_: threading.Event, stop: threading.Event
) -> None:
    """A TCP proxy to `target`; while `open_` is clear it drops every connection."""
    live: set[asyncio.StreamWriter] = set()

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not open_.is_set():
            writer.close()
            return
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", target)
        live.update({writer, up_writer})
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        live.difference_update({writer, up_writer})

    server = await asyncio.start_server(handle, "127.0.0.1", listen)
    was_open = True
    while not stop.is_set():
        if was_open and not open_.is_set():
            for w in list(live):
                w.transport.abort()  # the outage: every connection reset at once
        was_open = open_.is_set()
        await asyncio.sleep(0.05)
    server.close()


def scenario_pg(demo: Path, args: argparse.Namespace) -> dict[str, Any]:
    """PostgreSQL unreachable for --outage-s behind the proxy; records lost afterwards."""
    url = fresh_postgres(PG_ADMIN)
    port = free_port()
    proxied = sa.engine.make_url(url).set(port=port).render_as_string(False)
    open_, stop = threading.Event(), threading.Event()
    open_.set()
    proxy = threading.Thread(
        target=lambda: asyncio.run(proxy_forever(port, 5432, open_, stop)), daemon=True
    )
    proxy.start()
    try:
        project = pg_project(demo, Path(tempfile.mkdtemp(prefix="chaos-pg-")), url)
        set_options(project, database_url=proxied)
        key = make_key(project)
        server = Served(project, workers=2)
        load = Load(server.url, key, args.rate)
        try:
            load.start()
            time.sleep(5)
            open_.clear()
            down_at = time.monotonic()
            time.sleep(args.outage_s)
            open_.set()
            up_at = time.monotonic()
            time.sleep(15)  # the shippers catch up
            load.stop()
        finally:
            server.stop()
        during = [a for a in load.answers if down_at <= a[0] < up_at]
        drained = drain_spool(project, url)
        missing = load.acknowledged() - logged_ids(url)
        text = server.log.read_text()
        return {
            "outage_s": args.outage_s, "answers": load.counts(),
            "answered_200_during_outage": sum(1 for a in during if a[1] == 200),
            "requests_during_outage": len(during), "acknowledged": len(load.acknowledged()),
            "shipped_after_stop": drained, "missing": len(missing),
            "log_lines": len(text.splitlines()), "tracebacks": text.count("Traceback"),
            "outage_warnings": text.count("store unreachable"),
            "recovery_lines": text.count("store reachable again"),
        }  # fmt: skip
    finally:
        stop.set()
        proxy.join(5)
        drop_postgres(url, PG_ADMIN)


def scenario_spoolfull(demo: Path, args: argparse.Namespace) -> dict[str, Any]:
    """The spool on a small tmpfs (--spool-kib), the store taking nothing; policy `refuse`."""
    project = copy_project(demo, "spoolfull")
    mount = project / "spool"
    mount.mkdir(exist_ok=True)
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={args.spool_kib}k", "tmpfs", str(mount)], check=True
    )
    try:
        # The budget is past the filesystem: the disk fills first, as it would in production.
        set_options(project, log_spool_full_policy="refuse", log_spool_budget_bytes=64 * 2**20,
                    log_ship_interval_s=3600.0)  # fmt: skip
        key = make_key(project)
        server = Served(project, workers=1)
        load = Load(server.url, key, args.rate)
        try:
            load.start()
            time.sleep(args.seconds)
            load.stop()
        finally:
            server.stop()
        url = store_url(project)
        drained = drain_spool(project, url)
        missing = load.acknowledged() - logged_ids(url)
        return {"answers": load.counts(), "acknowledged": len(load.acknowledged()),
                "shipped_after_stop": drained, "missing": len(missing)}  # fmt: skip
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def scenario_soak(demo: Path, args: argparse.Namespace) -> dict[str, Any]:
    """--minutes of steady load at a share of the capacity measured first: per minute the
    server's RSS, fds and threads, its CPU, p50/p99 and the machine's load (a noisy
    neighbour shows there). wrk drives it: a Python client would be the bottleneck."""
    project = copy_project(demo, "soak")
    key = make_key(project)
    set_options(project, metrics_open=True)  # scraped as Prometheus would, inside the network
    server = Served(project, workers=2)
    script = project / "soak.lua"
    try:
        capacity = measure_capacity(server, key, script, args.capacity_s)
        rate = args.soak_rate or round(args.load_share * capacity, 1)
        print(f"soak at {rate:g} requests/s (capacity {capacity:g}/s)", file=sys.stderr)
        minutes = soak_minutes(server, key, script, rate, args.minutes)
    finally:
        server.stop()
    return {"capacity": capacity, "rate": rate, "minutes": minutes,
            **soak_verdict(minutes, rate, args.warmup_minutes)}  # fmt: skip


def predict_url(server: Served) -> str:
    return f"{server.url}/v1/models/churn/predict"


def measure_capacity(server: Served, key: str, script: Path, seconds: float) -> float:
    """Answers per second with SOAK_CONNECTIONS callers and no pause between calls."""
    script.write_text(WRK_SCRIPT % (key, BODY))
    run_wrk(predict_url(server), script, SOAK_CONNECTIONS, seconds / 4, 2)  # warm-up
    raw = run_wrk(predict_url(server), script, SOAK_CONNECTIONS, seconds, 2)
    return round(raw["requests"] / (raw["duration_us"] / 1e6), 1)


SOAK_CONNECTIONS = 16


def soak_minutes(
    server: Served, key: str, script: Path, rate: float, count: int
) -> list[dict[str, Any]]:
    """One wrk run a minute, its calls sent on a fixed schedule of `rate` a second (PACE):
    the load does not follow the server's latency, so a slow minute is not made easier."""
    minutes = []
    cpu_before = cpu_ticks(server.pids())
    split_before = cpu_split(server.pids())
    script.write_text(WRK_SCRIPT % (key, BODY) + PACE % (1000 / rate))
    probe, scraper = SpeedProbe(), Scraper(f"{server.url}/metrics")
    probe.start()
    scraper.start()
    try:
        for minute in range(count):
            record, cpu_before, split_before = soak_minute(
                server, script, minute + 1, cpu_before, split_before
            )
            minutes.append({**record, "python_probe_ms": probe.take(), **scraper.take()})
            print(json.dumps(minutes[-1]), file=sys.stderr, flush=True)
    finally:
        probe.stop()
        scraper.stop()
    return minutes


class Sampler:
    """A thread of this process taking `sample()` every `interval_s` until stopped: each
    sample a figure, or None for a failed one; `drain` hands over those since the last."""

    def __init__(self, name: str, interval_s: float) -> None:
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._samples: list[float] = []
        self._failed = 0
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def sample(self) -> float | None:
        raise NotImplementedError

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(self.interval_s + 15)

    def drain(self) -> tuple[list[float], int]:
        with self._lock:
            samples, self._samples = self._samples, []
            failed, self._failed = self._failed, 0
        return samples, failed

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            figure = self.sample()
            with self._lock:
                if figure is None:
                    self._failed += 1
                else:
                    self._samples.append(figure)


class Scraper(Sampler):
    """GET /metrics every SCRAPE_S, as Prometheus does (the server's own monitoring runs
    during the soak, and what a scrape costs the workers shows in the minute's p99)."""

    def __init__(self, url: str) -> None:
        super().__init__("scraper", SCRAPE_S)
        self.url = url
        self._http = httpx.Client(timeout=SCRAPE_TIMEOUT_S)

    def stop(self) -> None:
        super().stop()
        self._http.close()

    def take(self) -> dict[str, Any]:
        """The scrapes since the last call: how many, the slowest (ms), how many failed."""
        samples, failed = self.drain()
        slowest = round(max(samples), 1) if samples else None
        return {"scrapes": len(samples), "scrape_max_ms": slowest, "scrapes_failed": failed}

    def sample(self) -> float | None:
        started = time.perf_counter()
        try:
            ok = self._http.get(self.url).status_code == 200
        except httpx.HTTPError:
            ok = False
        return 1000 * (time.perf_counter() - started) if ok else None


SCRAPE_S = 15.0  # Prometheus's usual interval
SCRAPE_TIMEOUT_S = 10.0


def soak_minute(
    server: Served, script: Path, minute: int, cpu_before: int, split_before: dict[str, Any]
) -> tuple[dict[str, Any], int, dict[str, Any]]:
    """One minute of the soak: its record, and the CPU counters at its end (the next
    minute's `cpu_before`, `split_before`)."""
    raw = run_wrk(predict_url(server), script, SOAK_CONNECTIONS, 60, 1)
    reached = raw["requests"] / (raw["duration_us"] / 1e6)
    cpu_now = cpu_ticks(server.pids())
    out = {"minute": minute, **sample(server.pids()),
           "rps": round(reached, 1), "p50_ms": raw["p50_us"] / 1000,
           "p99_ms": raw["p99_us"] / 1000, "errors": sum(raw["errors"].values()),
           "server_cpu_pct": round((cpu_now - cpu_before) / TICKS / 0.6, 1),
           "load1": round(os.getloadavg()[0], 2)}  # fmt: skip
    split_now = cpu_split(server.pids())
    out.update(split_pct(split_before, split_now))
    return out, cpu_now, split_now


class SpeedProbe(Sampler):
    """How fast the machine runs Python this minute: a fixed piece of Python work (records
    built, encoded to JSON and read back, as a server's request path does) timed in CPU
    every PROBE_S in a thread of this process. wrk's CPU per request says the same for a
    small C loop; a busy host can slow Python's larger working set more than it."""

    def __init__(self) -> None:
        super().__init__("speed-probe", PROBE_S)

    def take(self) -> float | None:
        """The median CPU milliseconds of one piece of work since the last call."""
        samples, _ = self.drain()
        return round(statistics.median(samples), 3) if samples else None

    def sample(self) -> float | None:
        started = time.thread_time()
        probe_work()
        return 1000 * (time.thread_time() - started)


PROBE_S = 2.0


def probe_work() -> int:
    """~5 ms of the kind of Python a request costs: dicts, strings, JSON both ways."""
    total = 0
    for i in range(400):
        record = {"id": f"req-{i:08d}", "model": "churn", "version": i % 3,
                  "inputs": {f"f{j}": j * 0.5 + i for j in range(14)}, "status": 200}  # fmt: skip
        back = json.loads(json.dumps(record))
        total += len(back["inputs"]) + sum(int(v) for v in back["inputs"].values())
    return total


# wrk calls `delay` before each call after a connection's first, for the milliseconds to
# wait (truncated to whole ones). Each call takes the next slot of one schedule, `interval`
# apart, shared by the thread's connections: an open loop at a fixed rate, where pausing a
# fixed time after each answer (a closed loop) sent less when the server was slower and
# more when it was faster (the rate swung 15 % minute to minute). A schedule fallen behind
# (every connection waiting for answers) restarts from now: no burst to catch up.
PACE = """
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } pace_timespec;
int clock_gettime(int clock, pace_timespec *out);
]]
local clock = ffi.new("pace_timespec")
local interval = %.6f
local due = 0
delay = function()
  ffi.C.clock_gettime(1, clock)  -- CLOCK_MONOTONIC
  local now = tonumber(clock.tv_sec) * 1000 + tonumber(clock.tv_nsec) / 1e6
  if due < now then due = now end
  local wait = due - now
  due = due + interval
  return wait
end
"""


def cpu_split(pids: list[int]) -> dict[str, Any]:
    """Where the machine's CPU went, in clock ticks: each of the server's processes, wrk
    (this script's waited-for children), the machine's busy and steal time. A p99 bump with
    the server's own CPU flat and `others` up is a neighbour; with one process up, that one."""
    fields = [int(f) for f in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    children = os.times()  # wrk ran as this process's child and was waited for
    return {
        "per_process": {f"{pid} {process_role(pid)}": cpu_ticks([pid]) for pid in pids},
        "machine": sum(fields[:7]) - idle,  # steal (fields[7]) is time not run
        "steal": fields[7],
        "client": round((children.children_user + children.children_system) * TICKS),
    }


def process_role(pid: int) -> str:
    """A short name for one of the server's processes, from its command line."""
    with contextlib.suppress(OSError):
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        text = b" ".join(argv).decode(errors="replace")
        if "forkserver" in text:
            return "runner"
        if "multiprocessing.spawn" in text:
            return "child"  # an HTTP worker, the log process or the drift child
        return "serve"
    return "gone"


def split_pct(before: dict[str, Any], now: dict[str, Any]) -> dict[str, Any]:
    """The minute's CPU between two `cpu_split`s, in % of one core."""
    server = {
        name: round((ticks - before["per_process"].get(name, 0)) / TICKS / 0.6, 1)
        for name, ticks in now["per_process"].items()
    }
    machine = (now["machine"] - before["machine"]) / TICKS / 0.6
    client = (now["client"] - before["client"]) / TICKS / 0.6
    return {
        "server_cpu_by_process": server,
        "client_cpu_pct": round(client, 1),
        "others_cpu_pct": round(max(0.0, machine - sum(server.values()) - client), 1),
        "steal_pct": round((now["steal"] - before["steal"]) / TICKS / 0.6, 1),
    }


def soak_verdict(minutes: list[dict[str, Any]], rate: float, warmup: int) -> dict[str, Any]:
    """Growth after the warm-up minutes, and p99 stability as the spread of the medians of
    5-minute windows (one minute's p99 moves with any neighbour on a shared machine)."""
    warm = minutes[min(warmup, len(minutes) - 1) :]
    first, last = warm[0], warm[-1]
    p99s = window_medians([m["p99_ms"] for m in warm])

    def per_request_ms(key: str) -> list[float]:  # CPU per request, window medians
        costs = window_medians([10 * m[key] / max(m["rps"], 1) for m in warm])
        return [round(c, 4) for c in costs]

    wrk_costs = [m["client_cpu_pct"] / max(m["rps"], 1) for m in warm]
    adjusted_windows = [round(p, 3) for p in window_medians(speed_adjusted_p99s(warm, wrk_costs))]

    return {
        "rss_growth_pct": round(100 * (last["rss_mib"] / first["rss_mib"] - 1), 1),
        "fd_growth": last["fds"] - first["fds"],
        "thread_growth": last["threads"] - first["threads"],
        "errors": sum(m["errors"] for m in minutes),
        "scrapes_failed": sum(m.get("scrapes_failed", 0) for m in minutes),
        "scrape_max_ms": max(
            (m["scrape_max_ms"] for m in warm if m.get("scrape_max_ms")), default=None
        ),
        "p99_window_medians_ms": p99s,
        "p99_spread_pct": spread_pct(p99s),
        # The load client does the same work per request all along: its CPU per request
        # rising is the machine running slower (a busy host shows no steal on a sibling
        # hyper-thread), and the server's rises with it.
        "server_cpu_ms_per_request": per_request_ms("server_cpu_pct"),
        "client_cpu_ms_per_request": per_request_ms("client_cpu_pct"),
        # The same for Python (SpeedProbe): the CPU of one fixed piece of Python work, and
        # each minute's p99 scaled by it as below (the server is Python: a busy host may
        # slow it more than it slows wrk's C loop). Beside the raw spread, never instead.
        **probe_figures(warm),
        # Each minute's p99 scaled by how fast the machine ran that minute (wrk's CPU per
        # request against its median): what is left moving is the server's doing. Printed
        # beside the raw spread, never instead of it.
        "p99_speed_adjusted_window_medians_ms": adjusted_windows,
        "p99_speed_adjusted_spread_pct": spread_pct(adjusted_windows),
        "fd_growth_by_process": growth_by_process(first, last, "fds_by_process"),
        # what the new descriptors are (a connection of the minute's callers not yet closed
        # reads `socket`; a store connection opened once and pooled, its database file)
        "fd_growth_by_kind": kind_growth(first, last),
        "thread_growth_by_process": growth_by_process(first, last, "threads_by_process"),
        # minutes the load fell more than 10 % short of the rate prove less
        "minutes_off_rate": [m["minute"] for m in warm if abs(m["rps"] / rate - 1) > 0.1],
    }


def probe_figures(minutes: list[dict[str, Any]]) -> dict[str, Any]:
    """The probe's window medians, and p99's scaled by it (`speed_adjusted_p99s`); only
    `python_probe_ms: None` for a soak run without the probe."""
    probes = [m.get("python_probe_ms") for m in minutes]
    if any(p is None or p <= 0 for p in probes):
        return {"python_probe_ms": None}
    costs = [float(p) for p in probes if p is not None]
    windows = [round(w, 3) for w in window_medians(speed_adjusted_p99s(minutes, costs))]
    return {
        "python_probe_ms": [round(p, 3) for p in window_medians(costs)],
        "p99_python_speed_adjusted_window_medians_ms": windows,
        "p99_python_speed_adjusted_spread_pct": spread_pct(windows),
    }


def window_medians(values: list[float]) -> list[float]:
    """The medians of consecutive 5-minute windows of per-minute `values` (a last window
    shorter than 5 is left out); of all of them when there are fewer than 5."""
    windows = [values[i : i + 5] for i in range(0, len(values) - 4, 5)] or [values]
    return [statistics.median(window) for window in windows]


def spread_pct(values: list[float]) -> float | None:
    return round(100 * (max(values) / min(values) - 1), 1) if min(values) > 0 else None


def speed_adjusted_p99s(minutes: list[dict[str, Any]], costs: list[float]) -> list[float]:
    """Each minute's p99 times (the median of `costs` / that minute's cost), a cost being
    what a fixed piece of work took that minute (wrk's CPU per request, the probe's): a
    minute in which the machine ran 10 % slower has its p99 scaled down by that 10 %."""
    usual = statistics.median(costs)
    pairs = zip(minutes, costs, strict=True)
    return [m["p99_ms"] * usual / c if c > 0 else m["p99_ms"] for m, c in pairs]


def growth_by_process(first: dict[str, Any], last: dict[str, Any], key: str) -> dict[str, int]:
    """The processes whose count (fds, threads) moved between two minutes, and by how much."""
    before, after = first.get(key, {}), last.get(key, {})
    return {
        name: after.get(name, 0) - before.get(name, 0)
        for name in sorted(set(before) | set(after))
        if after.get(name, 0) != before.get(name, 0)
    }


def kind_growth(first: dict[str, Any], last: dict[str, Any]) -> dict[str, dict[str, int]]:
    """Per process whose descriptors moved: the kinds (`fd_kinds`) that moved, and by how much."""
    before, after = first.get("fd_kinds_by_process", {}), last.get("fd_kinds_by_process", {})
    out = {}
    for name in sorted(set(before) | set(after)):
        was, now = before.get(name, {}), after.get(name, {})
        moved = {k: now.get(k, 0) - was.get(k, 0) for k in sorted(set(was) | set(now))}
        moved = {k: n for k, n in moved.items() if n}
        if moved:
            out[name] = moved
    return out


TICKS = os.sysconf("SC_CLK_TCK")


def cpu_ticks(pids: list[int]) -> int:
    """User + system CPU of these processes, in clock ticks."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
            total += int(fields[11]) + int(fields[12])
    return total


def sample(pids: list[int]) -> dict[str, Any]:
    """RSS, open fds and threads of the server's processes, in all and (fds, threads) per
    process, so that a growth names the process it happened in."""
    rss = 0
    fds: dict[str, int] = {}
    threads: dict[str, int] = {}
    kinds: dict[str, dict[str, int]] = {}
    for pid in pids:
        with contextlib.suppress(OSError):
            name = f"{pid} {process_role(pid)}"
            status = Path(f"/proc/{pid}/status").read_text()
            rss += int(status.split("VmRSS:")[1].split()[0])
            threads[name] = int(status.split("Threads:")[1].split()[0])
            opened = fd_kinds(pid)
            fds[name] = sum(opened.values())
            kinds[name] = opened
    return {"rss_mib": round(rss / 1024, 1), "fds": sum(fds.values()),
            "threads": sum(threads.values()), "fds_by_process": fds,
            "threads_by_process": threads, "fd_kinds_by_process": kinds}  # fmt: skip


def fd_kinds(pid: int) -> dict[str, int]:
    """A process's open descriptors counted by what they are: a file's name with its digits
    blanked (the spool's rotating segments stay one kind), `socket`, `pipe`, and so on."""
    kinds: dict[str, int] = {}
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue  # closed meanwhile
        if target.startswith("/"):
            kind = re.sub(r"\d+", "N", os.path.basename(target))
        else:
            kind = target.split(":")[0]  # socket:[inode], pipe:[inode], anon_inode:[eventfd]
        kinds[kind] = kinds.get(kind, 0) + 1
    return kinds


def p99_ms(latencies: list[float]) -> float:
    if len(latencies) < 2:
        return 0.0
    return round(1000 * statistics.quantiles(latencies, n=100)[98], 2)


def copy_project(demo: Path, name: str) -> Path:
    target = demo.parent / name
    shutil.copytree(demo, target, ignore=shutil.ignore_patterns("spool", "serve-*.log"))
    return target


SCENARIOS = {"kill": scenario_kill, "pg": scenario_pg, "spoolfull": scenario_spoolfull,
             "soak": scenario_soak}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("scenarios", nargs="+", choices=sorted(SCENARIOS))
    p.add_argument("--rate", type=float, default=100.0, help="requests per second")
    p.add_argument(
        "--soak-rate",
        dest="soak_rate",
        type=float,
        default=0.0,
        help="soak requests/s (default: --load-share of the capacity measured first)",
    )
    p.add_argument("--load-share", type=float, default=0.7, help="soak rate / capacity")
    p.add_argument("--capacity-s", type=float, default=20.0, help="capacity measurement length")
    p.add_argument("--warmup-minutes", type=int, default=5, help="soak minutes not judged")
    p.add_argument("--seconds", type=float, default=20.0, help="load per kill/spoolfull run")
    p.add_argument("--outage-s", type=float, default=60.0)
    p.add_argument("--spool-kib", type=int, default=512, help="size of the spool's tmpfs")
    p.add_argument("--minutes", type=int, default=30, help="soak length")
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    # A SIGTERM must still stop the servers and wrk: as SystemExit, the finally blocks run.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="pointsman-chaos-") as tmp:
        demo = make_demo(Path(tmp) / "demo")
        for name in args.scenarios:
            print(f"{name} ...", file=sys.stderr, flush=True)
            results[name] = SCENARIOS[name](demo, args)
            print(json.dumps({name: results[name]}, indent=1), flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
