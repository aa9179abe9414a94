"""Many deadlines on one timer: each call registers when it is due and what to do then.

uvloop's `call_at` and the handle's `cancel` make and drop a libuv timer, ~5.5 µs a pair;
the front armed one per runner call and one per request (~11 µs of the ~250 µs of CPU a
request costs it), though nearly every call is answered long before its deadline. Here the
loop's one timer waits for the earliest deadline; a call answered in time only leaves the
table, and the timer, when it fires, runs what is due and waits for the next.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
from collections.abc import Callable, Hashable

SLACK_S = 0.001  # a deadline this close when the timer fires is due (the clock's resolution)
log = logging.getLogger("pointsman.runners")
_local = threading.local()  # a thread runs one event loop at a time


class Deadlines:
    """Deadlines in loop time on `loop`, each with its expiry callback."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.due: dict[Hashable, tuple[float, Callable[[], None]]] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf

    def __len__(self) -> int:
        return len(self.due)

    def add(self, key: Hashable, at: float, expire: Callable[[], None]) -> None:
        """Call `expire` at loop time `at` unless `key` is discarded first."""
        self.due[key] = (at, expire)
        if at < self._timer_at:
            self._arm(at)

    def discard(self, key: Hashable) -> None:
        self.due.pop(key, None)

    def clear(self) -> None:
        self.due.clear()

    def _arm(self, at: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = at
        self._timer = self.loop.call_at(at, self._fire)

    def _fire(self) -> None:
        self._timer, self._timer_at = None, math.inf
        now = self.loop.time() + SLACK_S
        later = math.inf
        expired = []
        for key, (at, expire) in list(self.due.items()):
            if at <= now:
                del self.due[key]
                expired.append(expire)
            elif at < later:
                later = at
        if later < math.inf:
            self._arm(later)
        for expire in expired:
            try:
                expire()
            except Exception:  # the others still expire
                log.exception("a deadline's expiry failed")


def of_running_loop() -> Deadlines:
    """The deadlines of the event loop running in this thread (made on first use)."""
    loop = asyncio.get_running_loop()
    deadlines: Deadlines | None = getattr(_local, "deadlines", None)
    if deadlines is None or deadlines.loop is not loop:  # the first, or a new loop
        deadlines = _local.deadlines = Deadlines(loop)
    return deadlines
