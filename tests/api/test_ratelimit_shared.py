"""With redis_url, a key's rate holds across replicas: one bucket in Redis for all of them."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from pointsman.api.app import build_app
from pointsman.auth import KeyBook
from pointsman.project import Project
from pointsman.settings import load_settings, write_settings_file
from tests.conftest import REDIS_URL, free_port

RATE = 50  # per second: a burst of 25
SECONDS = 4.0
TASKS = 4  # per replica, each at most ~200 requests/s: several times the rate in all


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """One SQLite file both replicas open (the keys); their rate-limit files stay apart."""
    return f"sqlite:///{tmp_path / 'pointsman.db'}"


def replica(project: Project, folder: Path, **redis: object) -> FastAPI:
    """An app on its own project folder (so its own local bucket file), on the same store."""
    folder.mkdir()
    values = {"database_url": project.settings.resolved_database_url(), **redis}
    write_settings_file(folder, values)
    return build_app(load_settings(folder))


@pytest.fixture
async def clients(
    project: Project, tmp_path: Path, redis_prefix: str
) -> AsyncIterator[list[httpx.AsyncClient]]:
    """Two replicas sharing Redis, started after the key `metered` (RATE/s) was made."""
    key, _ = KeyBook(project.engine).create("metered", ["read:*"], "t", rate=f"{RATE}/s")
    apps = [
        replica(project, tmp_path / name, redis_url=REDIS_URL, redis_key_prefix=redis_prefix)
        for name in ("a", "b")
    ]
    async with AsyncExitStack() as stack:
        out = []
        for app in apps:
            await stack.enter_async_context(app.router.lifespan_context(app))
            transport = httpx.ASGITransport(app=app)
            client = httpx.AsyncClient(
                transport=transport,
                base_url="http://pointsman",
                headers={"Authorization": f"Bearer {key}"},
            )
            out.append(await stack.enter_async_context(client))
        yield out


@pytest.mark.redis
@pytest.mark.anyio
async def test_two_replicas_admit_the_keys_rate_in_total_within_10_percent(
    project: Project, clients: list[httpx.AsyncClient]
) -> None:
    counts: Counter[tuple[int, int]] = Counter()  # (replica, status)
    times: list[float] = []

    async def hammer(index: int, client: httpx.AsyncClient) -> None:
        start = time.monotonic()
        while time.monotonic() - start < SECONDS:
            times.append(time.monotonic())
            r = await client.get("/v1/models")
            counts[index, r.status_code] += 1
            await asyncio.sleep(0.005)

    await asyncio.gather(*(hammer(i, c) for i, c in enumerate(clients) for _ in range(TASKS)))
    span_s = max(times) - min(times)
    admitted = counts[0, 200] + counts[1, 200]
    refused = counts[0, 429] + counts[1, 429]
    rate = (admitted - RATE / 2) / span_s  # less the first burst
    print(f"2 replicas, {RATE}/s for {span_s:.2f} s: {dict(counts)}, {rate:.1f}/s after the burst")
    assert set(status for _, status in counts) <= {200, 429}, counts
    assert counts[0, 200] > 0 and counts[1, 200] > 0, counts  # both replicas served
    assert refused > admitted, f"the load did not exceed the rate: {counts}"
    assert abs(rate - RATE) <= 0.1 * RATE, f"{rate:.1f}/s admitted in total: {counts}"


@pytest.mark.anyio
async def test_unreachable_redis_with_policy_closed_answers_503_for_rated_keys_only(
    project: Project, tmp_path: Path
) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    app = replica(project, tmp_path / "closed", redis_url=dead, redis_down_policy="closed")
    book = KeyBook(project.engine)
    rated, _ = book.create("rated", ["read:*"], "t", rate="5/s")
    free, _ = book.create("free", ["read:*"], "t")
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://pointsman") as c:
            refused = await c.get("/v1/models", headers={"Authorization": f"Bearer {rated}"})
            served = await c.get("/v1/models", headers={"Authorization": f"Bearer {free}"})
    assert refused.status_code == 503, refused.text
    assert refused.json()["code"] == "rate_limiter_unavailable"
    assert "cannot be reached" in refused.json()["error"]
    assert refused.headers["Retry-After"] == "1"
    assert served.status_code == 200, served.text
