"""The log process of `pointsman serve`: one per server ships every worker's records, a
killed worker's included, with none lost or stored (or sent to the sink) twice."""

from __future__ import annotations

import json
import os
import re
import signal
import threading
import time
from collections import Counter
from pathlib import Path

import httpx

from pointsman.logstore.log_process import NICE
from tests.conftest import Server, churn_rows
from tests.logstore.test_chaos import project_with_churn, stored_counts
from tests.logstore.test_sink import Receiver

LOADERS = 4
MAX_REQUESTS = 300  # per loader


def spool_folders(folder: Path) -> dict[int, Path]:
    """The serving workers' spool folders by process id (named host-pid-tag)."""
    root = folder / "spool"
    found = [f for f in root.iterdir() if f.is_dir() and not f.name.startswith(".")]
    return {int(f.name.rsplit("-", 2)[1]): f for f in found}


def newest_segment_bytes(folder: Path) -> int:
    """The size of the segment a worker is writing (its highest-numbered one), 0 if none."""
    segments = sorted(folder.glob("seg-*.jsonl"))
    try:
        return segments[-1].stat().st_size if segments else 0
    except FileNotFoundError:  # sealed and shipped meanwhile
        return 0


def writing_worker(workers: dict[int, Path], deadline: float) -> tuple[int, Path]:
    """A worker appending records right now: its open segment grows. The loaders' few
    connections may all land on one worker, and a killed worker that served nothing
    leaves nothing to ship."""
    while time.monotonic() < deadline:
        before = {pid: newest_segment_bytes(f) for pid, f in workers.items()}
        time.sleep(0.05)
        for pid, folder in sorted(workers.items()):
            if newest_segment_bytes(folder) > before[pid]:
                return pid, folder
    raise AssertionError("no worker's open segment grew under load")


def load(url: str, answered: list[str], stop: threading.Event, loader: int) -> None:
    """Requests until told to stop; the ids answered 200 kept. A connection cut by the
    killed worker is followed by a new one (to the other worker, or its replacement)."""
    body = json.dumps({"rows": churn_rows(1)})
    with httpx.Client(timeout=5) as client:
        for i in range(MAX_REQUESTS):
            if stop.is_set():
                return
            request_id = f"l{loader}-{i}"
            headers = {"Content-Type": "application/json", "X-Request-ID": request_id}
            try:
                r = client.post(url + "/v1/models/churn/predict", content=body, headers=headers)
            except httpx.HTTPError:
                continue
            if r.status_code == 200:
                answered.append(request_id)


def test_one_log_process_ships_every_workers_records_a_killed_ones_too(
    tmp_path: Path, database_url: str, churn_files: list[tuple[Path, Path]]
) -> None:
    folder = tmp_path / "proj"
    project_with_churn(folder, database_url, *churn_files[0])
    sink = Receiver()
    env = {"POINTSMAN_AUTH": "false", "POINTSMAN_LOG_SINK_URL": sink.url}
    server = Server(folder, workers=2, env=env)
    answered: list[str] = []
    stop = threading.Event()
    threads = [
        threading.Thread(target=load, args=(server.url, answered, stop, n)) for n in range(LOADERS)
    ]
    try:
        deadline = time.monotonic() + 30
        while len(spool_folders(folder)) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        workers = spool_folders(folder)
        assert len(workers) == 2, workers  # each HTTP worker spools; the log process does not
        (shipping_pid,) = re.findall(
            r"prediction log ships from process (\d+)", server.log.read_text()
        )
        assert int(shipping_pid) not in workers
        # Shipping runs niced, as the runners do: the HTTP workers answer first.
        worker_nice = os.getpriority(os.PRIO_PROCESS, next(iter(workers)))
        expected = min(worker_nice + NICE, 19)  # nice stops at 19 (a niced test run)
        while (found := os.getpriority(os.PRIO_PROCESS, int(shipping_pid))) != expected:
            assert time.monotonic() < deadline, f"log process at nice {found}, not {expected}"
            time.sleep(0.05)
        for thread in threads:
            thread.start()
        while len(answered) < 200 and time.monotonic() < deadline:
            time.sleep(0.01)
        victim, victim_folder = writing_worker(workers, deadline)
        os.kill(victim, signal.SIGKILL)  # mid-load: its open segment was never sealed
        while len(answered) < 400 and time.monotonic() < deadline:
            time.sleep(0.01)
        stop.set()
        for thread in threads:
            thread.join(10)
        # Shipped while the server runs: the log process takes the dead worker's folder whole.
        deadline = time.monotonic() + 30
        counts = stored_counts(database_url)
        while (victim_folder.exists() or not set(answered) <= set(counts)) and (
            time.monotonic() < deadline
        ):
            time.sleep(0.2)
            counts = stored_counts(database_url)
        assert not victim_folder.exists(), "the killed worker's spool was not shipped"
        assert server.process.poll() is None
    finally:
        stop.set()
        server.stop()
        sink.server.shutdown()
        sink.server.server_close()
    assert len(answered) >= 400
    missing = set(answered) - set(counts)
    assert not missing, f"{len(missing)} answered requests missing from the log"
    assert all(counts[r] == 1 for r in answered)
    log = server.log.read_text()
    orphans = [line for line in log.splitlines() if "left by a stopped worker" in line]
    assert any(victim_folder.name in line for line in orphans), log[-3000:]
    # The stop: every worker closed its spool, the log process shipped it after them.
    assert not list((folder / "spool").glob("*/seg-*"))
    final = stored_counts(database_url)
    assert set(final) >= set(answered) and all(n == 1 for n in final.values())
    # Each stored answer went to the sink once: a request and a response event.
    events = Counter(headers["ce-id"] for headers, _ in sink.events)
    assert set(events) == set(final) and set(events.values()) == {2}
