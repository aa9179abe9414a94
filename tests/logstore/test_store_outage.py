"""Store outage: PostgreSQL unreachable for 20 s under load; serving goes on, nothing is lost.

The server reaches PostgreSQL through a TCP proxy on 127.0.0.1 that this test runs and can
stop (listener closed, every open connection cut) and start again on the same port.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from tests.conftest import Server, churn_rows, free_port, fresh_postgres_database
from tests.logstore.test_chaos import project_with_churn, stored_counts

OUTAGE_S = 20.0
PG_PORT = 5432


class Proxy:
    """A TCP proxy 127.0.0.1:port → PostgreSQL, in its own thread, that can be cut."""

    def __init__(self, target_port: int) -> None:
        self.port = free_port()
        self.target_port = target_port
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server: asyncio.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()
        self.start()

    def start(self) -> None:
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(5)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self.loop).result(5)

    def close(self) -> None:
        self.stop()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()

    async def _start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def _stop(self) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None
        for writer in list(self.writers):
            writer.transport.abort()
        self.writers.clear()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.transport.abort()
            return
        self.writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, asyncio.IncompleteReadError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.transport.abort()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self.writers -= {writer, up_writer}


def test_postgres_down_for_20_s_under_load_loses_nothing(
    request: pytest.FixtureRequest, tmp_path: Path, churn_files: list[tuple[Path, Path]]
) -> None:
    direct = fresh_postgres_database(request)
    proxy = Proxy(PG_PORT)
    request.addfinalizer(proxy.close)
    proxied = sa.engine.make_url(direct).set(port=proxy.port).render_as_string(False)
    folder = tmp_path / "proj"
    project_with_churn(folder, proxied, *churn_files[0])
    env = {"POINTSMAN_AUTH": "false", "POINTSMAN_LOG_SHIP_INTERVAL_S": "0.5"}
    server = Server(folder, env=env)
    statuses: dict[str, Counter[int]] = {
        "before": Counter(),
        "outage": Counter(),
        "after": Counter(),
    }
    answered: list[str] = []
    phase = ["before"]
    stop = threading.Event()

    def load(worker: int) -> None:
        body = json.dumps({"rows": churn_rows(1)})
        with httpx.Client(timeout=5) as client:
            for i in range(20000):  # bounded; the test stops it long before
                if stop.is_set():
                    return
                request_id = f"w{worker}-{i}"
                r = client.post(
                    server.url + "/v1/models/churn/predict",
                    content=body,
                    headers={"Content-Type": "application/json", "X-Request-ID": request_id},
                )
                statuses[phase[0]][r.status_code] += 1
                if r.status_code == 200:
                    answered.append(request_id)
                time.sleep(0.002)

    threads = [threading.Thread(target=load, args=(w,)) for w in range(3)]
    try:
        for thread in threads:
            thread.start()
        time.sleep(3)
        shipped_before = len(stored_counts(direct))
        phase[0] = "outage"
        proxy.stop()
        time.sleep(OUTAGE_S)
        spooled = list((folder / "spool").glob("*/seg-*"))
        phase[0] = "after"
        proxy.start()
        time.sleep(3)
        stop.set()
        for thread in threads:
            thread.join(10)
        deadline = time.monotonic() + 30
        counts = stored_counts(direct)
        while not set(answered) <= set(counts) and time.monotonic() < deadline:
            time.sleep(0.5)
            counts = stored_counts(direct)
    finally:
        stop.set()
        server.stop()
    assert shipped_before > 0  # the shipper worked before the outage
    assert statuses["outage"][200] > 100 and set(statuses["outage"]) == {200}, statuses
    assert set(statuses["after"]) == {200}, statuses
    assert len(spooled) > 1  # records waited in the spool while the store was away
    missing = set(answered) - set(counts)
    assert not missing, f"{len(missing)} of {len(answered)} answered requests not in the store"
    assert all(counts[r] == 1 for r in answered)
