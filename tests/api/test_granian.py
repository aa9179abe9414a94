"""`pointsman serve --http-server granian`: the same app, and the same guarantees, on granian."""

from __future__ import annotations

import os
import signal
import socket
import ssl
import time
from pathlib import Path

import httpx
import pytest

from tests.api.test_tls import make_certificates
from tests.conftest import Server, churn_rows
from tests.logstore.test_chaos import project_with_churn, stored_counts
from tests.runners.test_front import alive, descendants

pytest.importorskip(
    "granian", reason="granian is an optional extra: pip install 'pointsman[granian]'"
)
# The HTTP server is what differs here, not the store: one store is enough.
pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
# Keys off (not what differs); nothing shipped until the stop, so that the stop ships it all,
# the killed worker's spool included.
ENV = {"POINTSMAN_AUTH": "false", "POINTSMAN_LOG_SHIP_INTERVAL_S": "3600"}


def workers_of(server: Server) -> set[int]:
    """granian's worker processes: the server's spawned children started after it handed
    them its pid (POINTSMAN_SERVE_PID); the log process was spawned before that, and the
    forkserver and resource tracker run commands of their own."""
    root = server.process.pid
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            if (
                ppid == root
                and b"spawn_main" in (entry / "cmdline").read_bytes()
                and b"POINTSMAN_SERVE_PID=" in (entry / "environ").read_bytes()
            ):
                found.add(int(entry.name))
        except (OSError, ValueError):
            continue
    return found


def predict(server: Server, request_id: str) -> httpx.Response:
    with httpx.Client(base_url=server.url, timeout=10) as client:  # a new connection each
        return client.post(
            "/v1/models/churn/predict",
            json={"rows": churn_rows(1)},
            headers={"X-Request-ID": request_id},
        )


def test_granian_serves_logs_every_answer_and_replaces_a_killed_worker(
    tmp_path: Path, database_url: str, churn_files: list[tuple[Path, Path]]
) -> None:
    folder = tmp_path / "proj"
    project_with_churn(folder, database_url, *churn_files[0])
    args = ["--http-server", "granian"]
    server = Server(folder, workers=2, env=ENV, args=args)
    answered: list[str] = []
    try:
        for i in range(30):
            r = predict(server, f"before-{i}")
            assert r.status_code == 200 and r.json()["version"] == 1, r.text
            assert r.headers["X-Request-ID"] == f"before-{i}"
            answered.append(f"before-{i}")
        first = workers_of(server)
        assert len(first) == 2, first
        killed = min(first)
        os.kill(killed, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # answers go on while granian replaces it
            r = predict(server, f"after-{len(answered)}")
            assert r.status_code == 200, r.text
            answered.append(r.headers["X-Request-ID"])
            now = workers_of(server)
            if len(now) == 2 and killed not in now:
                break
        else:
            pytest.fail(f"no worker replaced {killed} in 30 s: {workers_of(server)}")
    finally:
        server.stop()
    assert server.process.returncode == 0, server.log.read_text()
    log = server.log.read_text()
    assert "2 HTTP workers on granian" in log, log
    counts = stored_counts(database_url)  # shipped by the time serve has stopped
    assert [r for r in answered if counts.get(r) != 1] == [], log


def test_one_granian_worker_shows_the_serve_processes_runner_metrics(
    tmp_path: Path, database_url: str, churn_files: list[tuple[Path, Path]]
) -> None:
    """With one worker the runners are still supervised by the serve process (granian's
    worker is a process of its own), so the scrape must sum both processes' metrics."""
    folder = tmp_path / "proj"
    project_with_churn(folder, database_url, *churn_files[0])
    server = Server(folder, workers=1, env=ENV, args=["--http-server", "granian"])
    try:
        assert predict(server, "one").status_code == 200
        assert len(workers_of(server)) == 1
        deadline = time.monotonic() + 10
        while True:  # the supervisor samples its runners' memory every few ticks
            text = httpx.get(server.url + "/metrics", timeout=10).text
            memory = [
                float(line.rsplit(" ", 1)[1])
                for line in text.splitlines()
                if line.startswith('pointsman_runner_resident_memory_bytes{model_name="churn"')
            ]
            if (memory and max(memory) > 0) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert memory and max(memory) > 0, text
    finally:
        server.stop()


def test_granian_takes_tls_12_closes_idle_connections_and_dies_with_serve(
    tmp_path: Path, database_url: str, churn_files: list[tuple[Path, Path]]
) -> None:
    """What granian does otherwise than uvicorn unless told: TLS 1.3 only, keep-alive
    connections idle 30 s, and a worker (hence the runners' forkserver) outliving a killed
    serve process."""
    folder = tmp_path / "proj"
    project_with_churn(folder, database_url, *churn_files[0])
    ca, cert, key = make_certificates(tmp_path)
    tls = ["--tls-cert", str(cert), "--tls-key", str(key)]
    server = Server(folder, env=ENV, args=["--http-server", "granian", *tls], ca=ca)
    try:
        old = ssl.create_default_context(cafile=ca)
        old.maximum_version = ssl.TLSVersion.TLSv1_2
        assert httpx.get(server.url + "/healthz", verify=old, timeout=10).status_code == 200
        raw = socket.create_connection(("127.0.0.1", server.port))
        with old.wrap_socket(raw, server_hostname="127.0.0.1") as conn:
            conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            conn.settimeout(20)  # uvicorn closes at 5 s idle, granian's default at 30 s
            answer = b""
            while chunk := conn.recv(4096):  # until the server closes the idle connection
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 200"), answer
        below = descendants(server.process.pid)
        assert workers_of(server) <= below and len(below) >= 3, below
        os.kill(server.process.pid, signal.SIGKILL)
        server.process.wait(10)
        deadline = time.monotonic() + 10
        while any(alive(p) for p in below) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not [p for p in below if alive(p)], below
    finally:
        server.stop()
