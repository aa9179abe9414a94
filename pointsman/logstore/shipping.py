"""The server's shipping of the prediction log: one per server, never in a serving process
when there is another.

Each round it ships every worker's sealed segments and dead workers' folders (shipper.py),
hands the stored records to the CloudEvents sink, reports the spool's usage to the store
and, once a day, prunes records past the retention. `pointsman serve` runs it in a process
of its own (logstore/log_process.py); an app serving alone runs it in a thread. Reading
segments, decoding JSON and inserting cost ~70 µs of CPU per request: in a thread of each
serving process it was paid on the request's event loop, and again as GIL contention on
the next requests.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from datetime import timedelta
from pathlib import Path

from sqlalchemy.engine import Engine

from pointsman.logstore.query import prune_predictions
from pointsman.logstore.shipper import Shipper
from pointsman.logstore.sink import CloudEventsSink
from pointsman.logstore.spool import spool_bytes
from pointsman.logstore.usage import UsageReporter
from pointsman.settings import Settings
from pointsman.store.outage import OutageLog, probe_of

log = logging.getLogger("pointsman.logstore")

DAY_S = 86400.0
JOB = "log shipping"  # its name in the outage lines


class Shipping:
    """Ships the spool root of `settings` every `log_ship_interval_s` (`start`), or when
    asked (`ship`). With `only` (a CLI call or batch job shipping its own records), live
    folders but that one are left to the server's shipping, and so are the server's
    duties: reporting the spool's usage and pruning."""

    def __init__(
        self, settings: Settings, engine: Engine, only: Path | None = None, alone: bool = False
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.root = settings.project_path() / settings.log_spool_dir
        self.budget_bytes = settings.log_spool_budget_bytes
        self.used_bytes = 0  # on disk under the root after the last round
        self.sink: CloudEventsSink | None = None
        if settings.log_sink_url:
            self.sink = CloudEventsSink(
                settings.log_sink_url,
                settings.log_sink_source,
                queue_size=settings.log_sink_queue_size,
                retries=settings.log_sink_retries,
            )
        on_shipped = self.sink.offer if self.sink else None
        # alone: in the log process, where no event loop shares the GIL (shipper.py)
        self.shipper = Shipper(self.root, engine, on_shipped, only, alone)
        self.is_server_wide = only is None
        self.usage = UsageReporter(self, engine)
        self.outage = OutageLog(self.describe, probe=probe_of(engine))
        self._last_prune = -math.inf  # the first round prunes (monotonic time starts at boot)
        self._lock = threading.Lock()  # one round at a time in this process
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def ship(self) -> int:
        """One round in the caller's thread; how many records went. Raises if the store
        fails (what is not shipped stays spooled for the next round)."""
        with self._lock:
            try:
                count = self.shipper.ship()
            finally:  # a store taking no records may still take the usage: the alert says so
                self.used_bytes = spool_bytes(self.root)
                if self.is_server_wide:
                    with contextlib.suppress(Exception):
                        self.usage.report()
            days = self.settings.log_retention_days
            if self.is_server_wide and days > 0 and time.monotonic() - self._last_prune > DAY_S:
                self._last_prune = time.monotonic()
                pruned = prune_predictions(self.engine, timedelta(days=days))
                log.info("pruned %d prediction records older than %g days", pruned, days)
            return count

    def run_once(self) -> None:
        """A round whose failure is logged (a store outage once, at its start and end)."""
        try:
            self.ship()
        except Exception as exc:
            if not self.outage.failed(JOB, exc):
                log.exception("shipping the prediction log failed; trying again")
        else:
            self.outage.succeeded(JOB)

    def describe(self) -> str:
        """What an operator asks during a store outage: how much is spooled, how long it lasts."""
        left = max(0, self.budget_bytes - self.used_bytes)
        refuses = self.settings.log_spool_full_policy == "refuse"
        then = "refused with 503" if refuses else "dropped (and counted)"
        return (
            f"prediction records spooled on disk: {self.used_bytes} bytes, "
            f"{left} of the {self.budget_bytes}-byte budget left "
            f"({100 * left / max(1, self.budget_bytes):.0f} %); past it records are {then}"
        )

    def start(self) -> None:
        """Ship every `log_ship_interval_s` in a thread, until `stop`."""
        self._thread = threading.Thread(target=self._run, name="pointsman-shipping", daemon=True)
        self._thread.start()

    def stop(self, wait_s: float = 30.0) -> None:
        """Stop the thread, then ship what the stopped workers left (kept spooled for the
        next start if the store is down), then let the sink send what it holds."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(wait_s)
        try:
            self.ship()
        except Exception as exc:
            log.warning("prediction records stay spooled until the next start: %s", exc)
        if self.sink is not None:
            self.sink.close()

    def _run(self) -> None:
        while not self._stopping.wait(self.settings.log_ship_interval_s):
            self.run_once()
