"""What the HTTP benchmarks share: the servers under test, wrk, the demo project and the
machine they ran on, the logged traffic and PostgreSQL databases of the store benchmarks.
Scripts import it as `harness` (bench/ is their folder), never each other.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
VENV_BIN = Path(sys.executable).parent

ROW = {
    "tenure_months": 3,
    "monthly_charges": 99.5,
    "support_calls": 4,
    "age": 31,
    "plan": "premium",
    "contract": "monthly",
    "region": "north",
}


BODY = json.dumps({"rows": [ROW]})
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# wrk's done() hook prints one JSON line; its latency percentiles come from the latency of
# every single request (wrk records each one in its histogram), in microseconds. Every
# script ends with it; WRK_SCRIPT is the one with a key, % (key, body).
WRK_DONE = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests": %%d, "duration_us": %%d, "p50_us": %%d, "p99_us": %%d, '
    .. '"mean_us": %%.1f, "max_us": %%d, "errors": {"connect": %%d, "read": %%d, '
    .. '"write": %%d, "status": %%d, "timeout": %%d}}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    latency.mean, latency.max, e.connect, e.read, e.write, e.status, e.timeout))
end
"""
WRK_SCRIPT = (
    """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer %s"
wrk.body = [==[%s]==]
"""
    + WRK_DONE
)


# -- servers -------------------------------------------------------------------------------
@dataclass
class Server:
    """A server under test, run as a subprocess in its own session on a free loopback port."""

    name: str
    argv: list[str]
    env: dict[str, str]
    path: str
    port: int
    log_path: Path
    key: str  # sent to both servers alike; pointsman checks it, the minimal app ignores it
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.path}"

    def start(self, timeout_s: float = 120.0) -> None:
        """Start the process and wait until a predict request answers 200."""
        log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            self.argv,
            env=self.env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its workers share its process group: stop() reaches them
        )
        log.close()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.proc.returncode} before answering; "
                    f"its output:\n{self.log_path.read_text()[-3000:]}"
                )
            try:
                self.predict()
                return
            except (OSError, urllib.error.URLError):
                time.sleep(0.2)
        self.stop()  # never leave a server behind that the caller will not know to stop
        raise RuntimeError(f"{self.name} did not answer {self.url} within {timeout_s:.0f} s")

    def predict(self) -> dict[str, Any]:
        """One predict request with the benchmark body; its decoded answer."""
        request = urllib.request.Request(
            self.url,
            BODY.encode(),
            {"Content-Type": "application/json", "Authorization": f"Bearer {self.key}"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            answer: dict[str, Any] = json.loads(response.read())
            return answer

    def cpu_s(self) -> float:
        """CPU seconds (user + system) used so far by the server and all its workers."""
        total = 0
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rpartition(")")[2].split()
            except OSError:  # the process ended between the listing and the read
                continue
            if self.proc is not None and int(fields[2]) == self.proc.pid:  # its process group
                total += int(fields[11]) + int(fields[12])
        return total / CLOCK_TICKS

    def stop(self) -> None:
        """SIGTERM to our process, SIGKILL to its process group if it lingers."""
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the group id is proc.pid: start_new_session
            proc.wait(timeout=5)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def checkout_server(
    name: str, project: Path, logs: Path, key: str, code: Path | None, workers: int
) -> Server:
    """`pointsman serve` of the demo at `project`, running the code of checkout `code` if
    given (for side-by-side runs against another commit), else this one's."""
    port = free_port()
    argv = [str(VENV_BIN / "pointsman"), "--project", str(project), "serve"]
    argv += ["--port", str(port), "--workers", str(workers)]
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    if code is not None:
        env["PYTHONPATH"] = str(code.resolve())  # its pointsman before the installed one
    path = "/v1/models/churn/predict"
    return Server(name, argv, env, path, port, logs / f"{name}.log", key)


# -- this checkout against another ---------------------------------------------------------
Figures = dict[str, float]


def checkout_parser(doc: str, duration_s: float, concurrency: int) -> argparse.ArgumentParser:
    """The options of a script that runs this checkout against `--baseline DIR`."""
    p = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    p.add_argument("--baseline", type=Path, required=True, help="another pointsman checkout")
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--duration", type=float, default=duration_s, help="seconds measured per run")
    p.add_argument("--concurrency", type=int, default=concurrency)
    p.add_argument("--workers", type=int, default=2)
    return p


def parse_checkouts(p: argparse.ArgumentParser) -> argparse.Namespace:
    args = p.parse_args()
    if not (args.baseline / "pointsman" / "__init__.py").is_file():
        p.error(f"--baseline {args.baseline} is not a pointsman checkout")
    return args


def run_in_checkout(code: Path, program: str, *argv: str) -> dict[str, Any]:
    """`program` run by `python -c` on `code`'s pointsman (PYTHONPATH puts it first): the
    JSON object its last line of output prints."""
    env = {**os.environ, "PYTHONPATH": str(code.resolve())}
    command = [sys.executable, "-c", program, *argv]
    done = subprocess.run(command, check=True, capture_output=True, text=True, env=env, cwd=code)
    figures: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


def alternating_rounds(
    checkouts: dict[str, Path],
    rounds: int,
    measure: Callable[[Path], dict[str, Any]],
    describe: Callable[[dict[str, Any]], str],
) -> dict[str, list[dict[str, Any]]]:
    """`measure` of each checkout every round, the order swapped round by round (neither
    always runs on the machine the other left warm); a progress line per run. Runs by name."""
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in checkouts}
    for round_ in range(rounds):
        order = list(checkouts) if round_ % 2 == 0 else list(checkouts)[::-1]
        for name in order:
            figures = measure(checkouts[name])
            runs[name].append(figures)
            print(f"round {round_ + 1} {name:8} {describe(figures)}", flush=True)
    return runs


def side_by_side(
    args: argparse.Namespace,
    body: str,
    measure_one: Callable[[Server, Path], Figures],
    describe: Callable[[Figures], str],
) -> dict[str, list[Figures]]:
    """This checkout ("this") and `args.baseline` ("baseline") serving copies of one demo
    project, `args.workers` HTTP workers each; every round each in turn, the order swapped
    round by round, is measured by `measure_one` with `body` posted. Runs by server."""
    with tempfile.TemporaryDirectory(prefix="pointsman-side-by-side-") as tmp_name:
        tmp = Path(tmp_name)
        ours = make_demo(tmp / "demo")
        theirs = tmp / "baseline-demo"
        shutil.copytree(ours, theirs)  # same model and store schema, a store of its own
        script = tmp / "post.lua"
        servers: list[Server] = []
        try:
            for name, project, code in (("this", ours, None), ("baseline", theirs, args.baseline)):
                key = make_key(project)
                servers.append(checkout_server(name, project, tmp, key, code, args.workers))
                servers[-1].start()
            runs: dict[str, list[Figures]] = {s.name: [] for s in servers}
            for round_ in range(args.rounds):
                for srv in servers if round_ % 2 == 0 else servers[::-1]:
                    script.write_text(WRK_SCRIPT % (srv.key, body))
                    runs[srv.name].append(measure_one(srv, script))
                    print(f"round {round_ + 1} {srv.name}: {describe(runs[srv.name][-1])}",
                          file=sys.stderr)  # fmt: skip
        finally:
            for srv in servers:
                srv.stop()
    return runs


def medians(runs: dict[str, list[Figures]]) -> dict[str, Figures]:
    return {
        name: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for name, rs in runs.items()
    }


def ratio_line(med: dict[str, Figures]) -> str:
    this, base = med["this"], med["baseline"]
    return (
        f"this / baseline: req/s {this['rps'] / base['rps']:.2f}, "
        f"p99 {this['p99_ms'] / base['p99_ms']:.2f}"
    )


# -- load -----------------------------------------------------------------------------------
@dataclass
class Run:
    """One measured wrk run against one server."""

    rps: float
    p50_ms: float
    p99_ms: float
    cpu_ms: float  # server CPU time (all its processes) per request
    mean_ms: float
    requests: int
    errors: int
    # wrk's error counts by kind (status = non-2xx, connect, read, write, timeout), non-zero only
    error_kinds: dict[str, int] = field(default_factory=dict)


def run_wrk(
    url: str, script: Path, concurrency: int, seconds: float, threads: int
) -> dict[str, Any]:
    argv = ["wrk", f"-t{min(threads, concurrency)}", f"-c{concurrency}", f"-d{seconds:g}s"]
    argv += ["--timeout", "10s", "--latency", "-s", str(script), url]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60, check=True)
    match = re.search(r"^BENCH_RESULT (.*)$", out.stdout, re.MULTILINE)
    if match is None:
        raise RuntimeError(f"wrk printed no result:\n{out.stdout}\n{out.stderr}")
    result: dict[str, Any] = json.loads(match.group(1))
    return result


def measure(server: Server, args: argparse.Namespace, concurrency: int, script: Path) -> Run:
    """Warm up (discarded), then one measured run.

    Between the two, `args.pause` seconds (if it has one): calls the warm-up's closed
    connections left behind finish first, or they and the measured run's would meet in the
    server's queues as twice the concurrency asked for."""
    run_wrk(server.url, script, concurrency, args.warmup, args.wrk_threads)
    time.sleep(getattr(args, "pause", 0.0))
    cpu_before = server.cpu_s()
    raw = run_wrk(server.url, script, concurrency, args.duration, args.wrk_threads)
    cpu_s = server.cpu_s() - cpu_before
    seconds = raw["duration_us"] / 1e6
    return Run(
        rps=raw["requests"] / seconds,
        p50_ms=raw["p50_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000,
        cpu_ms=cpu_s * 1000 / max(raw["requests"], 1),
        mean_ms=raw["mean_us"] / 1000,
        requests=raw["requests"],
        errors=sum(raw["errors"].values()),
        error_kinds={kind: n for kind, n in raw["errors"].items() if n},
    )


def progress(what: str, run: Run) -> None:
    print(
        f"  {what:<36} {run.rps:8.1f} req/s  p50 {run.p50_ms:6.2f} ms  "
        f"p99 {run.p99_ms:7.2f} ms  cpu {run.cpu_ms:5.2f} ms/req  errors {run.errors}",
        file=sys.stderr,
        flush=True,
    )


def machine() -> dict[str, Any]:
    cpu = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    wrk = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.split("\n")[0]
    return {
        "cpus": os.cpu_count(),
        "cpu": cpu,
        "loadavg_at_start": os.getloadavg(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_generator": wrk.split(" Copyright")[0].strip(),
    }


def make_demo(folder: Path) -> Path:
    """A fresh demo project (trained churn model, v1 deployed) in `folder`."""
    argv = [str(VENV_BIN / "pointsman"), "demo", str(folder), "--no-serve", "--port", "8080"]
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, cwd=ROOT)
    return folder


def log_traffic(project: Any, rows: int) -> None:
    """`rows` logged single-row requests to churn v1 over the last hour, in `project` (an
    open Project), as the shipper stores them."""
    from pointsman.demo.churn import TARGET, make_data
    from pointsman.logstore.shipper import insert_records

    frame = make_data(rows, 7).drop(columns=[TARGET])
    now = time.time()
    batch: list[dict[str, Any]] = []
    for i, row in enumerate(frame.to_dict(orient="records")):
        inputs = {k: [v.item() if hasattr(v, "item") else v] for k, v in row.items()}
        batch.append(
            {
                "request_id": uuid.uuid4().hex, "role": "primary", "version": 1,
                "model": "churn", "time": now - 3000 + i * 3000 / rows, "route_revision": 1,
                "client": None, "n_rows": 1, "inputs": inputs,
                "outputs": {"predictions": [i % 2]}, "latency_ms": 1.0, "model_ms": 0.5,
                "findings": None, "error_code": None, "error": None, "extra": None,
            }
        )  # fmt: skip
        if len(batch) == 1000:
            insert_records(project.engine, batch)
            batch = []
    insert_records(project.engine, batch)


def make_key(project: Path) -> str:
    """A predict key for the benchmark: auth stays on, as in production."""
    argv = [str(VENV_BIN / "pointsman"), "--project", str(project), "keys", "create"]
    argv += [f"bench-{os.getpid()}-{time.time_ns()}", "--scope", "predict:churn", "--json"]
    done = subprocess.run(argv, check=True, capture_output=True, text=True, cwd=ROOT)
    key: str = json.loads(done.stdout)["key"]
    return key


class TreeServer(Server):
    """A Server whose CPU time and stop cover its whole process tree.

    BentoML's supervisor starts its worker in a session of its own, outside the server's
    process group, so the tree is followed by parent PID instead.
    """

    def cpu_s(self) -> float:
        if self.proc is None:
            return 0.0
        return sum(p.cpu_ticks for p in process_tree(self.proc.pid)) / CLOCK_TICKS


# -- process trees ---------------------------------------------------------------------------
@dataclass
class Proc:
    pid: int
    ppid: int
    start: int  # clock ticks after boot: tells a PID reused later apart
    cpu_ticks: int


def processes() -> list[Proc]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:  # the process ended between the listing and the read
            continue
        if fields[0] == "Z":
            continue
        pid = int(stat.parent.name)
        found.append(Proc(pid, int(fields[1]), int(fields[19]), int(fields[11]) + int(fields[12])))
    return found


def process_tree(root: int) -> list[Proc]:
    """`root` and every live descendant of it."""
    children: dict[int, list[Proc]] = {}
    for proc in processes():
        children.setdefault(proc.ppid, []).append(proc)
    tree = [p for p in processes() if p.pid == root]
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            tree.append(child)
            todo.append(child.pid)
    return tree


def stop_all(servers: list[Server]) -> None:
    """Stop each server by its PID; then SIGKILL, by PID, what is left of its process tree."""
    trees = {s.name: process_tree(s.proc.pid) for s in servers if s.proc is not None}
    for server in servers:
        try:
            server.stop()
        except Exception as e:  # keep stopping the others
            print(f"stopping {server.name}: {e}", file=sys.stderr)
    alive = {(p.pid, p.start) for p in processes()}
    for name, tree in trees.items():
        for proc in tree:
            if (proc.pid, proc.start) in alive:
                print(f"{name}: killing leftover process {proc.pid}", file=sys.stderr)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGKILL)


# -- in process ------------------------------------------------------------------------------
@contextlib.contextmanager
def in_process(settings: Any, wait_s: float = 60.0) -> Iterator[Any]:
    """A project's pipeline in this process, its runners supervised as a server's are;
    yields the pipeline once every routed version has a warm runner. Its runner links
    belong to the first event loop that calls them: use it from one `asyncio.run`."""
    from pointsman.catalog import Catalog
    from pointsman.pipeline import build_pipeline
    from pointsman.project import open_project
    from pointsman.runners import RunDir
    from pointsman.runners.directory import new_run_dir
    from pointsman.runners.serving import build_supervisor

    project = open_project(settings)
    supervisor = build_supervisor(project, run_dir := RunDir(new_run_dir()))
    supervisor.start()
    catalog = Catalog(project, run_dir)
    pipeline = None
    try:
        catalog.refresh()
        deadline = time.monotonic() + wait_s
        while not catalog.readiness()["ready"]:
            if catalog.has_failed() or time.monotonic() > deadline:
                raise RuntimeError(f"runners not ready: {catalog.readiness()}")
            time.sleep(0.05)
        pipeline = build_pipeline(catalog, settings)
        yield pipeline
    finally:
        try:
            if pipeline is not None:
                pipeline.close()
            catalog.close()
        finally:  # runner processes left running would hang the interpreter's exit
            supervisor.stop()
            project.close()


# -- PostgreSQL ------------------------------------------------------------------------------
def fresh_postgres(admin_url: str) -> str:
    """A new empty database on the server of `admin_url`; its URL."""
    import sqlalchemy as sa

    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    name = f"pointsman_bench_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return sa.engine.make_url(admin_url).set(database=name).render_as_string(False)


def drop_postgres(url: str, admin_url: str) -> None:
    """Drop the database of `url` (made by fresh_postgres), connections and all."""
    import sqlalchemy as sa

    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    name = sa.engine.make_url(url).database
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def pg_project(demo: Path, folder: Path, url: str) -> Path:
    """A project on PostgreSQL with the demo's two churn versions, version 1 deployed."""
    from pointsman.demo.churn import TARGET

    data = demo / "models" / "churn_train.csv"
    commands = [["init", str(folder), "--database-url", url]]
    for model in sorted((demo / "models").glob("churn_v*.joblib")):
        commands.append(
            ["--project", str(folder), "register", "churn", str(model), "--training-data",
             str(data), "--target", TARGET]
        )  # fmt: skip
    commands.append(["--project", str(folder), "deploy", "churn", "1"])
    for command in commands:
        subprocess.run([str(VENV_BIN / "pointsman"), *command], check=True, capture_output=True)
    return folder
