"""The roller: adds the prediction log's new records to the per-minute rollups, in a thread.

One per server, beside the shipper: in the log process of `pointsman serve`
(logstore/log_process.py), else in the app's own process when it serves alone; its work is a
few SQL statements a run. Readers add the records it has not reached yet, so its cadence
bounds their work, never their exactness.
"""

from __future__ import annotations

import logging
import threading

from sqlalchemy.engine import Engine

from pointsman.store.outage import OutageLog, probe_of
from pointsman.store.rollups import roll_up_pending

log = logging.getLogger("pointsman.logstore")

ROLL_S = 1.0  # records are shipped within about two seconds: the unrolled tail is ~three


class Roller:
    """Runs `roll_up_pending` every `interval_s` until stopped, and once more at stop."""

    def __init__(
        self, engine: Engine, interval_s: float = ROLL_S, outage: OutageLog | None = None
    ) -> None:
        self.engine = engine
        self.interval_s = interval_s
        self.rolled = 0  # ids moved over (tests, logs)
        # Shared with the shipping beside it: one warning for the process, not one each.
        self.outage = outage or OutageLog(probe=probe_of(engine))
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pointsman-roller", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, wait_s: float = 15.0) -> None:
        self._stopping.set()
        self._thread.join(wait_s)

    def run_once(self) -> None:
        try:
            self.rolled += roll_up_pending(self.engine)
        except Exception as exc:  # the store may be down for a while: readers add the tail
            if not self.outage.failed("log rollups", exc):
                log.exception("rolling up the prediction log failed; trying again")
        else:
            self.outage.succeeded("log rollups")

    def _run(self) -> None:
        while not self._stopping.wait(self.interval_s):
            self.run_once()
        self.run_once()  # what was shipped after the workers stopped
