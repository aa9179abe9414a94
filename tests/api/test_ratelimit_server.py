"""A key's rate holds across the worker processes of one `pointsman serve --workers 2`."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import pytest

from pointsman.auth import KeyBook
from pointsman.project import Project
from tests.conftest import IRIS_COLUMNS, Server, register_iris

RATE = 10  # per second (burst 5): the load below offers several times that
SECONDS = 10.0
THREADS = 4


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """SQLite only: the counters live in a file beside the project, whatever the store."""
    return f"sqlite:///{tmp_path / 'pointsman.db'}"


def test_rate_holds_within_10_percent_over_10_s_with_two_workers(
    project: Project, iris_files: tuple[Path, Path]
) -> None:
    project.routes.deploy("iris", register_iris(project, iris_files), "t")
    key, _ = KeyBook(project.engine).create("metered", ["predict:iris"], "t", rate=f"{RATE}/s")
    server = Server(project.settings.project_path(), workers=2)
    body = {"rows": [dict(zip(IRIS_COLUMNS, [5.1, 3.5, 1.4, 0.2], strict=True))]}
    headers = {"Authorization": f"Bearer {key}", "Connection": "close"}
    counts: dict[int, int] = {}
    lock = threading.Lock()
    start = time.monotonic() + 0.5

    def hammer() -> None:
        # A new connection per request, so that both workers take their share.
        mine: dict[int, int] = {}
        while time.monotonic() < start:
            time.sleep(0.01)
        with httpx.Client(base_url=server.url, headers=headers, timeout=10) as client:
            while time.monotonic() - start < SECONDS:
                r = client.post("/v1/models/iris/predict", json=body)
                mine[r.status_code] = mine.get(r.status_code, 0) + 1
                time.sleep(0.02)  # bounded load: at most ~50 requests/s per thread
        with lock:
            for status, n in mine.items():
                counts[status] = counts.get(status, 0) + n

    try:
        threads = [threading.Thread(target=hammer) for _ in range(THREADS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(SECONDS + 30)
    finally:
        server.stop()
    print(f"2 workers, {RATE}/s for {SECONDS:g} s: {counts}")
    assert set(counts) <= {200, 429}, counts
    allowed, expected = counts.get(200, 0), RATE * SECONDS
    assert counts.get(429, 0) > allowed, f"the load did not exceed the rate: {counts}"
    assert abs(allowed - expected) <= 0.1 * expected, f"{allowed} allowed in 10 s, {counts}"
