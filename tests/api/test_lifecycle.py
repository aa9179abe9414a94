"""Shutting down: the store closes only after every background job has finished."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
import sqlalchemy as sa

from pointsman.api.app import build_app
from pointsman.project import Project
from pointsman.worker import Worker


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_the_store_closes_after_a_job_still_running_in_its_thread(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    events: list[str] = []
    started = threading.Event()

    def slow_poll(self: Worker) -> None:
        with self.project.engine.connect() as conn:  # holds a connection for a while
            started.set()
            time.sleep(0.5)
            conn.execute(sa.text("SELECT 1"))
        events.append("job done")

    def close(self: Project) -> None:
        events.append("store closed")
        self.engine.dispose()

    monkeypatch.setattr(Worker, "poll_routes", slow_poll)
    monkeypatch.setattr(Project, "close", close)
    app = build_app(project.settings)
    async with app.router.lifespan_context(app):
        while not started.is_set():
            await asyncio.sleep(0.01)
    # Without the wait the store closed first and the job's connection leaked, unclosed.
    assert events[:2] == ["job done", "store closed"]
