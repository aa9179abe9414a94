"""A store outage in the server log: one warning when it starts, one line when it ends.

Every periodic job of a process touches the store; while it is down each of them fails on
every run, and logging each failure with its traceback buried the one fact that mattered
(667 tracebacks for a 30 s outage under load). `OutageLog` turns them into two lines.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable

import psycopg
import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Engine

from pointsman.errors import StoreUnavailable

log = logging.getLogger("pointsman.store")

# What a store that cannot be reached raises (connection refused, reset, timed out, locked).
_UNREACHABLE = (
    sa_exc.OperationalError,
    sa_exc.InterfaceError,
    sa_exc.TimeoutError,
    StoreUnavailable,
    psycopg.OperationalError,
    sqlite3.OperationalError,
)


# SQLite raises OperationalError for mistakes in the statement too: those are bugs.
_MISTAKES = ("no such table", "no such column", "syntax error", "has no column")


def is_store_outage(exc: BaseException) -> bool:
    """Whether `exc` says the store cannot be reached (rather than a bug in the job)."""
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return True
    if not isinstance(exc, _UNREACHABLE):
        return False
    text = str(exc).lower()
    return not any(mistake in text for mistake in _MISTAKES)


def first_line(exc: BaseException) -> str:
    """The first line of the error's own words (a driver's message runs on for lines)."""
    if isinstance(exc, sa_exc.DBAPIError) and exc.orig is not None:
        exc = exc.orig
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class OutageLog:
    """Tells the log when the store stops and starts answering, once each, for one process.

    Jobs report each run: `failed(job, exc)` (True when it was the store: the caller logs
    nothing more) and `succeeded(job)`. The outage ends when every job that failed has run
    cleanly again. `describe` adds what the operator needs then (what is spooled, how much
    budget is left).
    """

    def __init__(
        self,
        describe: Callable[[], str] | None = None,
        clock: Callable[[], float] = time.monotonic,
        probe: Callable[[], object] | None = None,
    ) -> None:
        self.describe = describe
        self.clock = clock
        # A job may run cleanly without the store (from a cache): before the outage is
        # called over, the store itself must answer.
        self.probe = probe
        self.since: float | None = None  # when this outage started
        self.outages = 0  # how many started (tests, metrics)
        self._failing: set[str] = set()
        self._lock = threading.Lock()  # jobs report from the worker's thread pool

    @property
    def is_down(self) -> bool:
        return self.since is not None

    def failed(self, job: str, exc: BaseException) -> bool:
        """Note a failed run; True if it was the store (then logged at most once)."""
        if not is_store_outage(exc):
            return False
        with self._lock:
            self._failing.add(job)
            if self.since is not None:
                log.debug("%s: the store is still unreachable: %s", job, first_line(exc))
                return True
            self.since = self.clock()
            self.outages += 1
        log.warning(
            "store unreachable (%s, first seen by %s): serving continues from memory%s",
            first_line(exc), job, self._described(),
        )  # fmt: skip
        return True

    def succeeded(self, job: str) -> None:
        """Note a clean run; the last failing job to succeed ends the outage."""
        with self._lock:
            if self.since is None:
                return
            self._failing.discard(job)
            if self._failing:
                return
            if self.probe is not None:
                try:
                    self.probe()
                except Exception:
                    self._failing.add(job)
                    return
            lasted_s = self.clock() - self.since
            self.since = None
        log.warning("store reachable again after %.0f s%s", lasted_s, self._described())

    def _described(self) -> str:
        if self.describe is None:
            return ""
        try:
            words = self.describe()
        except Exception as exc:  # the description must never hide the outage itself
            words = f"(no state: {type(exc).__name__})"
        return f"; {words}" if words else ""


def probe_of(engine: Engine) -> Callable[[], object]:
    """A cheap round trip to the store: `SELECT 1`."""

    def probe() -> object:
        with engine.connect() as conn:
            return conn.execute(sa.text("SELECT 1")).scalar()

    return probe
