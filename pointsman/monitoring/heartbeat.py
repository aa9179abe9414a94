"""This worker's heartbeat: written to the store on a cadence with what it measured of itself.

What it measures is what an outside probe cannot see from one scrape: the CPU this process
used per second since the last beat, its resident memory, and the worst event-loop lag in
between (how late a 100 ms timer fired: a loop blocked by a slow call answers nobody
meanwhile). The alert metrics read every replica's rows (`alerts/metrics.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from datetime import UTC, datetime

from sqlalchemy.engine import Engine

from pointsman.monitoring import metrics
from pointsman.settings import Settings
from pointsman.store import heartbeats

log = logging.getLogger("pointsman.monitoring")

LAG_TICK_S = 0.1


def replica_name(settings: Settings) -> str:
    """The name this server goes by among the replicas: set, or host and port."""
    return settings.replica_name or f"{socket.gethostname()}:{settings.port}"


class Heart:
    """Beats for one server worker process (`beat` from the worker's pool, `watch_loop` on
    its event loop)."""

    def __init__(self, engine: Engine, replica: str) -> None:
        self.engine = engine
        self.replica = replica
        self.worker = str(os.getpid())
        self.started_at = datetime.now(UTC)
        self.beats = 0
        self._lag_ms = 0.0  # worst since the last beat
        self._last = (time.monotonic(), time.process_time())

    def beat(self) -> None:
        """Write the heartbeat, with CPU, memory and loop lag since the last one."""
        wall, cpu = time.monotonic(), time.process_time()
        before_wall, before_cpu = self._last
        ratio = (cpu - before_cpu) / (wall - before_wall) if wall > before_wall else None
        lag_ms, self._lag_ms = self._lag_ms, 0.0
        heartbeats.beat(
            self.engine,
            self.replica,
            self.worker,
            self.started_at,
            cpu_ratio=ratio,
            rss_bytes=metrics.resident_bytes(),
            loop_lag_ms=round(lag_ms, 3),
        )
        self._last = (wall, cpu)
        self.beats += 1
        metrics.LOOP_LAG.set(lag_ms / 1000)

    async def watch_loop(self) -> None:
        """On the event loop: how late each short sleep wakes is the loop's lag."""
        while True:
            start = time.monotonic()
            await asyncio.sleep(LAG_TICK_S)
            late_ms = 1000 * (time.monotonic() - start - LAG_TICK_S)
            if late_ms > self._lag_ms:
                self._lag_ms = late_ms

    def stop(self) -> None:
        """Say this worker stopped cleanly (the store may be gone: then its silence shows)."""
        try:
            heartbeats.stopped(self.engine, self.replica, self.worker)
        except Exception as exc:
            log.debug("could not mark the heartbeat stopped: %s", exc)
        with contextlib.suppress(Exception):
            metrics.LOOP_LAG.set(0)
