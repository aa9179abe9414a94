"""Chaos: a server under load killed with SIGKILL loses no record of a response it sent."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import httpx
import sqlalchemy as sa
from click.testing import CliRunner

from pointsman.cli.main import cli
from pointsman.demo.churn import TARGET
from pointsman.store.engine import connect
from pointsman.store.tables import prediction_log
from tests.conftest import Server, churn_rows

# Keys off (this test is about the log); ship rarely so that the kill finds records spooled.
ENV = {"POINTSMAN_AUTH": "false", "POINTSMAN_LOG_SHIP_INTERVAL_S": "3600"}
CONCURRENCY = 8
MAX_REQUESTS = 400


def project_with_churn(folder: Path, database_url: str, model: Path, data: Path) -> None:
    for args in (
        ["init", str(folder), "--database-url", database_url],
        ["--project", str(folder), "register", "churn", str(model), "--training-data",
         str(data), "--target", TARGET],
        ["--project", str(folder), "deploy", "churn", "1"],
    ):  # fmt: skip
        result = CliRunner().invoke(cli, args, catch_exceptions=False)
        assert result.exit_code == 0, result.output


def load(url: str, answered: list[str], stop: threading.Event, worker: int) -> None:
    """Send requests until told to stop (or the server dies); keep the ids answered 200."""
    body = json.dumps({"rows": churn_rows(2)})
    headers = {"Content-Type": "application/json"}
    with httpx.Client(timeout=5) as client:
        for i in range(MAX_REQUESTS):
            if stop.is_set():
                return
            request_id = f"w{worker}-{i}"
            try:
                r = client.post(
                    url + "/v1/models/churn/predict",
                    content=body,
                    headers={**headers, "X-Request-ID": request_id},
                )
            except httpx.HTTPError:
                return  # killed under us
            if r.status_code == 200:
                answered.append(request_id)


def stored_counts(database_url: str) -> dict[str, int]:
    engine = connect(database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.select(prediction_log.c.request_id, sa.func.count())
                .where(prediction_log.c.role == "primary")
                .group_by(prediction_log.c.request_id)
            ).all()
    finally:
        engine.dispose()
    return {request_id: count for request_id, count in rows}


def test_sigkill_under_load_loses_no_answered_record(
    tmp_path: Path, database_url: str, churn_files: list[tuple[Path, Path]]
) -> None:
    folder = tmp_path / "proj"
    project_with_churn(folder, database_url, *churn_files[0])
    server = Server(folder, env=ENV)
    answered: list[str] = []
    stop = threading.Event()
    threads = [
        threading.Thread(target=load, args=(server.url, answered, stop, w))
        for w in range(CONCURRENCY)
    ]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 30
    while len(answered) < 300 and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(server.process.pid, signal.SIGKILL)  # mid-load: requests are in flight
    server.process.wait(10)
    stop.set()
    for thread in threads:
        thread.join(10)
    server.stop()
    assert len(answered) >= 300
    spooled = list((folder / "spool").glob("*/seg-*"))
    assert spooled, "the kill should find records still in the spool"
    assert stored_counts(database_url) == {}  # nothing shipped before the kill

    restarted = Server(folder, env={"POINTSMAN_AUTH": "false"})
    try:
        deadline = time.monotonic() + 30
        counts = stored_counts(database_url)
        while not set(answered) <= set(counts) and time.monotonic() < deadline:
            time.sleep(0.2)
            counts = stored_counts(database_url)
    finally:
        restarted.stop()
    missing = set(answered) - set(counts)
    assert not missing, f"{len(missing)} answered requests missing from the log"
    assert all(counts[r] == 1 for r in answered)
    assert not list((folder / "spool").glob("*/seg-*"))  # shipped, and the stop cleaned up
