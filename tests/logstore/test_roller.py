"""The roller rolls up what the shippers insert, in the process that does not serve requests
(`pointsman serve --workers 2`'s supervisor) or in the app when it runs alone."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from pointsman.logstore.roller import Roller
from pointsman.logstore.shipper import insert_records
from pointsman.project import Project
from pointsman.store import connect
from pointsman.store.rollups import pending_records
from pointsman.store.tables import prediction_rollups
from tests.api.conftest import register_churn
from tests.conftest import Server, admin_headers, churn_rows
from tests.store.test_rollups import assert_rollups_match, make_records


def rolled_requests(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        total = conn.execute(sa.select(sa.func.sum(prediction_rollups.c.requests))).scalar()
    return int(total or 0)


def test_the_roller_rolls_up_on_its_cadence_and_at_stop(database_url: str) -> None:
    engine = connect(database_url)
    roller = Roller(engine, interval_s=0.05)
    try:
        roller.start()
        first = make_records(400, seed=41, hours=0.1)
        insert_records(engine, first)
        deadline = time.monotonic() + 60  # bounds the wait only
        while pending_records(engine) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert pending_records(engine) == 0
        last = make_records(100, seed=42, prefix="last", hours=0.1)
        insert_records(engine, last)
        roller.stop()
        assert pending_records(engine) == 0 and roller.rolled == 500
        assert_rollups_match(engine, first + last)
    finally:
        roller.stop()
        engine.dispose()


@pytest.mark.parametrize("workers", [1, 2])
def test_a_server_rolls_up_what_its_workers_logged(
    project: Project, churn_files: list[tuple[Path, Path]], workers: int
) -> None:
    """With two workers the supervisor rolls up; alone, the app does. At stop the workers
    ship what they spooled, and the roller rolls it up after them."""
    register_churn(project, churn_files[:1])
    project.routes.deploy("churn", 1, "t")
    headers = admin_headers(project)  # before the start: the server reads keys then
    server = Server(project.settings.project_path(), workers=workers)
    try:
        with httpx.Client(base_url=server.url, timeout=10, headers=headers) as c:
            for row in churn_rows(30, seed=5):
                answer = c.post("/v1/models/churn/predict", json={"rows": [row]})
                assert answer.status_code == 200
    finally:
        server.stop()
    assert pending_records(project.engine) == 0, server.log.read_text()
    assert rolled_requests(project.engine) == 30
