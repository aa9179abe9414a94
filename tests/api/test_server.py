"""The real server on loopback: the demo end to end, and workers switching routes together."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from pointsman.project import Project
from tests.api.conftest import register_churn
from tests.conftest import Server, admin_headers, churn_rows, free_port


def test_demo_runs_end_to_end(tmp_path: Path) -> None:
    port = free_port()
    folder = tmp_path / "demo"
    process = subprocess.Popen(
        [sys.executable, "-m", "pointsman", "demo", str(folder), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    base = f"http://127.0.0.1:{port}"
    printed = []
    try:
        assert process.stdout is not None
        # The demo prints the calls, with its API key, before it serves.
        while not any(line.startswith("  export POINTSMAN_KEY=") for line in printed):
            line = process.stdout.readline()
            assert line, "".join(printed)
            printed.append(line)
        key = printed[-1].strip().partition("=")[2]
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert process.poll() is None, "".join(printed)
            try:
                if httpx.get(base + "/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        rows = {"rows": churn_rows(2)}
        assert httpx.post(base + "/v1/models/churn/predict", json=rows).status_code == 401
        auth = {"Authorization": f"Bearer {key}"}
        answer = httpx.post(base + "/v1/models/churn/predict", json=rows, headers=auth)
        assert answer.status_code == 200 and answer.json()["version"] == 1
        pinned = httpx.post(base + "/v1/models/churn/versions/2/predict", json=rows, headers=auth)
        assert pinned.json()["version"] == 2
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)
        # Read through the text wrapper: it may hold lines readline() fetched ahead.
        rest = ""
        if process.stdout:
            rest = process.stdout.read()
            process.stdout.close()
    output = "".join(printed) + rest
    assert "Registered churn version 1" in output and "Registered churn version 2" in output
    auth_option = '-H "Authorization: Bearer $POINTSMAN_KEY"'
    assert f"curl -s {base}/v1/models/churn/predict {auth_option}" in output
    assert (folder / "pointsman.toml").exists() and (folder / "pointsman.db").exists()


def test_every_worker_switches_within_a_second_of_a_deploy(
    project: Project, churn_files: list[tuple[Path, Path]]
) -> None:
    register_churn(project, churn_files)
    project.routes.deploy("churn", 1, "t")
    headers = admin_headers(project)
    server = Server(project.settings.project_path(), workers=2)
    rows = {"rows": churn_rows(1)}
    try:
        with httpx.Client(base_url=server.url, timeout=5, headers=headers) as client:
            assert client.get("/readyz").status_code == 200
            assert client.post("/v1/models/churn/predict", json=rows).json()["version"] == 1
            project.routes.deploy("churn", 2, "t", "switch")
            switched_at = time.monotonic()
            answers: list[tuple[float, int]] = []
            # New connections spread over both workers; all must end up answering with v2.
            # The deadline only bounds the wait for 40 answers in a row (each a new
            # connection: ~0.3 s apiece on a loaded machine); the switch time is checked below.
            while time.monotonic() - switched_at < 30:
                with httpx.Client(base_url=server.url, timeout=5, headers=headers) as fresh:
                    version = fresh.post("/v1/models/churn/predict", json=rows).json()["version"]
                answers.append((time.monotonic() - switched_at, version))
                if [v for _, v in answers[-40:]] == [2] * 40:
                    break
            assert [v for _, v in answers[-40:]] == [2] * 40, answers
            last_old = max((t for t, v in answers if v == 1), default=0.0)
            # Refresh polls every 0.5 s and warms the new version before switching; the
            # bound leaves room for a loaded 2-core machine.
            assert last_old < 2.0, f"a worker still answered v1 {last_old:.2f} s after deploy"
    finally:
        server.stop()


def sockets_of(port: int, state: str) -> dict[int, int]:
    """Inode -> owning pid of this machine's TCP sockets on local `port` in `state` (hex, as
    /proc/net/tcp writes it: 0A listening, 01 established)."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].split(":")[1], 16) == port and fields[3] == state:
            inodes.add(int(fields[9]))
    owners = {}
    for fd in Path("/proc").glob("[0-9]*/fd/*"):
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:[") and int(target[8:-1]) in inodes:
            owners[int(target[8:-1])] = int(fd.parent.parent.name)
    return owners


def test_workers_listen_apart_and_share_connections_opened_together(project: Project) -> None:
    """Each worker accepts on a socket of its own (SO_REUSEPORT): 16 connections opened at
    once land on both workers. On one shared socket the first worker awake took them all."""
    server = Server(project.settings.project_path(), workers=2)
    try:
        deadline = time.monotonic() + 30  # the first worker up answered /readyz
        while len(listening := sockets_of(server.port, "0A")) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert len(listening) == 2 and len(set(listening.values())) == 2, listening
        connections = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(16)]
        try:
            time.sleep(1.0)  # every worker accepts what the kernel queued for it
            owners = sockets_of(server.port, "01")
            assert set(owners.values()) == set(listening.values()), owners
        finally:
            for conn in connections:
                conn.close()
        # A second server on the port is refused, not let into the group.
        second = subprocess.run(
            [sys.executable, "-m", "pointsman", "--project", str(project.settings.project_path()),
             "serve", "--port", str(server.port), "--workers", "2"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert second.returncode != 0
        assert "address already in use" in (second.stdout + second.stderr).lower()
    finally:
        server.stop()
