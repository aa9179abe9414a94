"""Changes pushed to every server: NOTIFY on write, one LISTEN connection per server process.

A write that servers must see (a route revision, a version, a runner spec, a key, an alert
rule) calls `notify_change` inside its transaction: PostgreSQL delivers the notice only when
the transaction commits, so a listener never refreshes before the change is visible. On SQLite
nothing is sent; servers poll (`refresh_interval_s`), as they also do on PostgreSQL, less
often, as a safety net.

`ChangeListener` holds one psycopg connection in a thread and hands each notice's kind to its
subscribers, which must only schedule work (they run in the listener's thread). When the
connection drops it logs a warning once and reconnects with backoff. On every (re)connect and
loss it tells `RESYNC`: notices sent while nobody listened are gone, so subscribers look at
the store again (and pollers speed up or relax).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

if TYPE_CHECKING:
    import psycopg

log = logging.getLogger("pointsman.store")

CHANNEL = "pointsman_changes"
KINDS = ("routes", "versions", "runners", "keys", "alerts")
RESYNC = "*"  # told on every (re)connect and loss: anything may have changed unheard
RETRY_S = (0.2, 0.5, 1.0, 2.0, 5.0)  # waits between reconnection attempts, then the last
QUIET_PING_S = 10.0  # a silent connection is checked this often (a dead peer says nothing)
WAIT_S = 0.5  # how long one wait for notices lasts (how soon `stop` is noticed)

Subscriber = Callable[[str], None]


def notify_change(conn: Connection, kind: str) -> None:
    """Tell every listening server that `kind` changed, once this transaction commits."""
    if kind not in KINDS:
        raise ValueError(f"unknown change kind {kind!r}; one of {', '.join(KINDS)}")
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text(f"NOTIFY {CHANNEL}, '{kind}'"))


def listener_for(engine: Engine, enabled: bool = True) -> ChangeListener | None:
    """A (not yet started) listener on `engine`'s database; None on SQLite or when disabled."""
    if not enabled or engine.dialect.name != "postgresql":
        return None
    return ChangeListener(libpq_url(engine))


def libpq_url(engine: Engine) -> str:
    """The engine's URL as psycopg takes it (the `+psycopg` driver name dropped)."""
    return engine.url.set(drivername="postgresql").render_as_string(hide_password=False)


class ChangeListener:
    """One LISTEN connection in a thread; each notice's kind goes to every subscriber."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._subscribers: list[Subscriber] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._listening = threading.Event()
        self.backend_pid: int | None = None  # the listening connection's server process
        self.connects = 0  # successful connections so far (1 + reconnections)

    @property
    def is_listening(self) -> bool:
        """Whether notices arrive now; when not, pollers run at their short interval."""
        return self._listening.is_set()

    def subscribe(self, subscriber: Subscriber) -> None:
        """Call `subscriber(kind)` for every notice (in the listener's thread: keep it quick)."""
        self._subscribers.append(subscriber)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="pointsman-listen", daemon=True)
        self._thread.start()

    def wait_listening(self, timeout_s: float) -> bool:
        """Until the connection listens (True), or `timeout_s` passed (False)."""
        return self._listening.wait(timeout_s)

    def stop(self) -> None:
        """Stop listening and close the connection (waits for the thread)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(WAIT_S + 5.0)
            self._thread = None

    # -- the thread -------------------------------------------------------------------
    def _run(self) -> None:
        import psycopg  # here, not with the module: every CLI command imports this module

        failures = 0
        lost = False  # whether an outage was already reported
        while not self._stop.is_set():
            try:
                with psycopg.connect(self.url, autocommit=True, connect_timeout=5) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self.backend_pid = conn.info.backend_pid
                    self.connects += 1
                    self._listening.set()
                    if lost:
                        log.warning("listening for pushed changes again")
                    failures, lost = 0, False
                    self._tell(RESYNC)  # notices sent while nobody listened are gone
                    self._receive(conn)
            except psycopg.Error as exc:
                self._listening.clear()
                if self._stop.is_set():
                    break
                if not lost:
                    log.warning(
                        "listening for pushed changes failed (%s); polling every "
                        "refresh_interval_s until the connection is back",
                        _first_line(exc),
                    )
                    lost = True
                    self._tell(RESYNC)  # pollers shorten their interval now
                self._stop.wait(RETRY_S[min(failures, len(RETRY_S) - 1)])
                failures += 1
        self._listening.clear()

    def _receive(self, conn: psycopg.Connection[tuple[object, ...]]) -> None:
        """Hand notices to the subscribers until stopped; raises when the connection drops."""
        quiet_s = 0.0
        while not self._stop.is_set():
            got = False
            for notice in conn.notifies(timeout=WAIT_S):
                got = True
                self._tell(notice.payload)
            quiet_s = 0.0 if got else quiet_s + WAIT_S
            if quiet_s >= QUIET_PING_S:
                conn.execute("SELECT 1")  # raises on a connection that died in silence
                quiet_s = 0.0

    def _tell(self, kind: str) -> None:
        for subscriber in self._subscribers:
            try:
                subscriber(kind)
            except Exception:  # one broken subscriber must not stop the others hearing
                log.exception("handling a pushed %r change failed", kind)


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
