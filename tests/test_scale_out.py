"""Scale-out on loopback with the real parts: PostgreSQL, moto's S3 server, Redis, two fronts
(`pointsman serve`, each its own project folder: another machine), two `pointsman runner
serve` processes of the model over TCP, and Debian's nginx balancing the fronts.

Under steady load through nginx: a route change is answered by every front within 1 s; a
rolling restart of every front and runner loses no request; a front killed with SIGKILL
loses at most what it held, and every answered request is in the prediction log; a key
limited to 50/s gets 50/s in all (±10 %). Bounded: about a minute.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import boto3
import httpx
import pytest
import redis
import sqlalchemy as sa

from pointsman.auth import KeyBook
from pointsman.project import Project, open_project
from pointsman.routing.policy import Arm, Policy
from pointsman.settings import load_settings, write_settings_file
from pointsman.store.tables import prediction_log
from tests.api.conftest import register_churn
from tests.conftest import (
    REDIS_URL,
    RunnerProcess,
    churn_rows,
    free_port,
    fresh_postgres_database,
    skip_or_fail,
)

SECRET = "scale-out-secret-0123456789"
PATH = "/v1/models/churn/predict"
BODY = {"rows": churn_rows(2)}
LOADERS = 3  # threads sending requests through nginx, one at a time each
PACE_S = 1 / 20  # each starts a request at most this often: steady, not saturating 2 cores
RATE = 50  # requests/s of the limited key


class Front:
    """`pointsman serve` on a fixed port (nginx's upstream), restartable on it."""

    def __init__(self, folder: Path, env: dict[str, str]) -> None:
        self.folder, self.env = folder, env
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = (self.folder / "serve.log").open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "pointsman", "--project", str(self.folder), "serve",
             "--port", str(self.port), "--workers", "1"],
            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **self.env},
        )  # fmt: skip
        log.close()

    def wait_ready(self, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError((self.folder / "serve.log").read_text()[-3000:])
            try:
                if httpx.get(self.url + "/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError("front not ready:\n" + (self.folder / "serve.log").read_text()[-3000:])

    def stop(self) -> None:
        """SIGTERM: it stops accepting and answers what it holds."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)


class Nginx:
    """Debian's nginx on a free port with its own config, pid file and logs, in the
    foreground (our child): round robin over the fronts, retrying a front that refuses."""

    CONFIG = """
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 512; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    upstream fronts {{
        {servers}
        keepalive 16;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://fronts;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
            # A front that refuses or drops the connection (restarting, killed): the next
            # one. POSTs too: a prediction may run twice, never go unanswered.
            proxy_next_upstream error timeout non_idempotent;
            proxy_next_upstream_tries 4;
            proxy_connect_timeout 1s;
            proxy_read_timeout 30s;
        }}
    }}
}}
"""

    def __init__(self, binary: Path, folder: Path, fronts: list[Front]) -> None:
        folder.mkdir()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        servers = "\n        ".join(f"server {f.url[7:]} max_fails=0;" for f in fronts)
        config = folder / "nginx.conf"
        config.write_text(self.CONFIG.format(dir=folder, port=self.port, servers=servers))
        self.log = folder / "error.log"
        self.process = subprocess.Popen(
            [str(binary), "-p", str(folder), "-c", str(config), "-e", str(self.log)],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while True:
            try:
                httpx.get(self.url + "/healthz", timeout=1)
                return
            except httpx.HTTPError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"nginx did not start: {self.log.read_text()}") from None
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGQUIT)  # graceful
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


@dataclass
class Load:
    """Threads sending predictions through nginx, one request at a time each, until stopped."""

    url: str
    headers: dict[str, str]
    threads: int = LOADERS
    pace_s: float = PACE_S
    answered: list[str] = field(default_factory=list)  # request ids of every 200
    answered_at: list[float] = field(default_factory=list)
    failed: list[tuple[float, str]] = field(default_factory=list)  # when, and what
    _stop: threading.Event = field(default_factory=threading.Event)
    _workers: list[threading.Thread] = field(default_factory=list)

    def start(self) -> None:
        self._workers = [threading.Thread(target=self._run) for _ in range(self.threads)]
        for worker in self._workers:
            worker.start()

    def stop(self) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join(60)

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, headers=self.headers, timeout=30) as client:
            next_at = time.monotonic()
            while not self._stop.is_set():
                next_at += self.pace_s
                time.sleep(max(0.0, next_at - time.monotonic()))
                try:
                    r = client.post(PATH, json=BODY)
                except httpx.HTTPError as exc:
                    self.failed.append((time.monotonic(), repr(exc)))
                    continue
                if r.status_code == 200:
                    self.answered.append(r.headers["X-Request-Id"])
                    self.answered_at.append(time.monotonic())
                else:
                    self.failed.append((time.monotonic(), f"{r.status_code} {r.text[:200]}"))


@dataclass
class Cluster:
    project: Project  # the administrator's view: the same store and bucket
    fronts: list[Front]
    runners: list[RunnerProcess]
    nginx: Nginx
    headers: dict[str, str]


def replica_folder(folder: Path, values: dict[str, object]) -> Path:
    """A project folder of its own (another machine) on the shared store and bucket."""
    folder.mkdir()
    write_settings_file(folder, values)
    return folder


@pytest.fixture(scope="module")
def s3_env(s3_endpoint: str) -> Iterator[dict[str, str]]:
    """A new bucket on moto's server, and the environment that points boto3 at it."""
    env = {
        "AWS_ENDPOINT_URL": s3_endpoint,
        "AWS_ACCESS_KEY_ID": "pointsman-test",
        "AWS_SECRET_ACCESS_KEY": "pointsman-test-secret",
        "AWS_REGION": "us-east-1",
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    }
    with pytest.MonkeyPatch.context() as patch:
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3", "AWS_CONFIG_FILE"):
            patch.delenv(name, raising=False)
        for name, value in env.items():
            patch.setenv(name, value)
        env["bucket"] = f"pointsman-{uuid.uuid4().hex[:12]}"
        boto3.client("s3").create_bucket(Bucket=env["bucket"])
        yield env


@pytest.fixture(scope="module")
def cluster(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    churn_files: list[tuple[Path, Path]],
    s3_env: dict[str, str],
    debian_tools: Path,
) -> Iterator[Cluster]:
    client = redis.Redis.from_url(REDIS_URL, socket_timeout=5)
    try:
        client.ping()
    except redis.RedisError as exc:
        skip_or_fail(f"Redis not reachable at {REDIS_URL}: {exc}")
    finally:
        client.close()
    root = tmp_path_factory.mktemp("scale-out")
    shared: dict[str, object] = {
        "database_url": fresh_postgres_database(request),
        "artifact_store": f"s3://{s3_env['bucket']}/models",
        "redis_url": REDIS_URL,
        "redis_key_prefix": f"pointsman-test-{uuid.uuid4().hex[:12]}:",
        "startup_wait_s": 30,
        "log_ship_interval_s": 0.5,
    }
    admin = open_project(load_settings(replica_folder(root / "admin", shared)))
    admin.registry.compile_at_register = False
    admin.routes.preflight = None  # the runners run elsewhere: nothing to load here
    register_churn(admin, churn_files[:1])
    admin.routes.deploy("churn", 1, "t")
    key, _ = KeyBook(admin.engine).create("load", ["predict:churn"], "t")
    env = {
        "POINTSMAN_RUNNER_SECRET": SECRET,
        **{k: v for k, v in s3_env.items() if k != "bucket"},
    }
    runners = [
        RunnerProcess(replica_folder(root / f"runner-{i}", shared), "churn", 1, SECRET)
        for i in range(2)
    ]
    fronts: list[Front] = []
    nginx = None
    try:
        addresses = ",".join(r.address for r in runners)
        env["POINTSMAN_REMOTE_RUNNERS"] = f'{{"churn": "{addresses}"}}'
        fronts = [Front(replica_folder(root / f"front-{i}", shared), env) for i in range(2)]
        for front in fronts:  # all at once: a front waits for its runners (startup_wait_s)
            front.start()
        for runner in runners:
            runner.wait_listening()
        for front in fronts:
            front.wait_ready()
        nginx = Nginx(debian_tools / "usr" / "sbin" / "nginx", root / "nginx", fronts)
        yield Cluster(admin, fronts, runners, nginx, {"Authorization": f"Bearer {key}"})
    finally:
        if nginx is not None:
            nginx.stop()
        for process in [f.process for f in fronts] + [r.process for r in runners]:
            if process is not None and process.poll() is None:
                process.terminate()  # all at once, then wait for each
        for front in fronts:
            front.stop()
        for runner in runners:
            runner.stop()
        admin.close()


def revision_delays(cluster: Cluster, changes: int = 10) -> list[float]:
    """Seconds from each route change's commit until each front answers with it."""
    delays: list[float] = []
    clients = [httpx.Client(base_url=f.url, headers=cluster.headers) for f in cluster.fronts]
    try:
        for i in range(changes):
            policy = Policy(arms=(Arm(1, 100),), timeout_ms=20_000 + i)
            change = cluster.project.routes.apply("churn", policy, "t", "scale-out")
            committed = time.monotonic()
            revision = change.after.revision
            for client in clients:
                while True:
                    r = client.post(PATH, json=BODY)
                    assert r.status_code == 200, r.text
                    if int(r.headers["X-Route-Revision"]) >= revision:
                        delays.append(time.monotonic() - committed)
                        break
                    assert time.monotonic() - committed < 5, "a front missed a route change"
    finally:
        for client in clients:
            client.close()
    return delays


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


@pytest.mark.postgres
def test_two_fronts_and_two_tcp_runners_behind_nginx_under_load(cluster: Cluster) -> None:
    load = Load(cluster.nginx.url, cluster.headers)
    load.start()
    try:
        time.sleep(0.5)
        # Route changes: pushed to every front (LISTEN/NOTIFY), answered within 1 s.
        delays = revision_delays(cluster)
        print(f"\nroute change → every front: p50 {sorted(delays)[len(delays) // 2] * 1000:.0f} ms,"
              f" p99 {p99(delays) * 1000:.0f} ms over {len(delays)}")  # fmt: skip
        assert p99(delays) < 1.0
        # A rolling restart of every front and every runner: no request lost. A front and
        # a runner restart together; never both fronts, nor both runners.
        began = time.monotonic()
        for i, front in enumerate(cluster.fronts):
            cluster.runners[i].stop()  # SIGTERM: it drains (callers are told, then answered)
            front.stop()  # SIGTERM: it stops accepting and answers what it holds
            runner = RunnerProcess(cluster.runners[i].log.parent, "churn", 1, SECRET,
                                   port=cluster.runners[i].port)  # fmt: skip
            front.start()
            runner.wait_listening()
            front.wait_ready()
            cluster.runners[i] = runner
        print(f"rolling restart: {time.monotonic() - began:.1f} s")
        time.sleep(0.5)
        assert load.failed == [], load.failed[:5]
        # One front killed outright: at most what it held fails (nginx retries elsewhere).
        before = len(load.answered)
        cluster.fronts[0].kill()
        time.sleep(1.0)
        assert len(load.failed) <= LOADERS, load.failed
        assert len(load.answered) > before  # the other front answers meanwhile
        began = time.monotonic()
        cluster.fronts[0].start()  # its spool is shipped when it comes back
        cluster.fronts[0].wait_ready()
        print(f"killed front back in {time.monotonic() - began:.1f} s")
    finally:
        load.stop()
    answered = load.answered
    print(f"answered {len(answered)} requests, {len(load.failed)} failed")
    # Every answered request is in the prediction log, in PostgreSQL.
    deadline = time.monotonic() + 15
    missing = set(answered)
    while missing and time.monotonic() < deadline:
        with cluster.project.engine.connect() as connection:
            found = connection.execute(
                sa.select(prediction_log.c.request_id).where(
                    prediction_log.c.request_id.in_(sorted(missing))
                )
            )
            missing -= {row[0] for row in found}
        time.sleep(0.5)
    assert not missing, f"{len(missing)} answered requests not in the prediction log"


@pytest.mark.postgres
def test_a_key_limited_to_50_per_s_gets_50_per_s_across_fronts(cluster: Cluster) -> None:
    key, _ = KeyBook(cluster.project.engine).create(
        "limited", ["predict:churn"], "t", rate=f"{RATE}/s"
    )
    headers = {"Authorization": f"Bearer {key}"}
    # Wait until both fronts know the key (pushed).
    for front in cluster.fronts:
        deadline = time.monotonic() + 5
        while httpx.post(front.url + PATH, json=BODY, headers=headers).status_code == 401:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    time.sleep(1.0)  # the bucket fills again
    load = Load(cluster.nginx.url, headers, threads=4, pace_s=1 / 40)  # 160/s offered
    start = time.monotonic()
    load.start()
    time.sleep(4.0)
    load.stop()
    refused = [f for f in load.failed if f[1].startswith("429")]
    assert len(refused) == len(load.failed), load.failed[:3]
    steady = [t - start for t in load.answered_at if 1.0 <= t - start < 4.0]  # past the burst
    rate = len(steady) / 3.0
    print(f"\nkey limited to {RATE}/s got {rate:.1f}/s across two fronts "
          f"({len(refused)} refused with 429)")  # fmt: skip
    assert RATE * 0.9 <= rate <= RATE * 1.1
