"""Circuit breakers: stop sending to a version after N failures in a row, probe after a pause."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Breaker:
    """One version's breaker in this process: closed, open, or half-open (one probe out)."""

    failures: int = 0
    opened_at: float | None = None
    probing: bool = False
    last_failure: str = ""  # told with "circuit open": the caller learns why, not only that

    @property
    def state(self) -> str:
        if self.opened_at is None:
            return "closed"
        return "half_open" if self.probing else "open"

    def allow(self, now: float, pause_s: float) -> bool:
        """May a request go to this version now? After the pause, one probe may."""
        if self.opened_at is None:
            return True
        if not self.probing and now - self.opened_at >= pause_s:
            self.probing = True
            return True
        return False

    def success(self) -> None:
        self.failures = 0
        self.opened_at = None
        self.probing = False

    def release(self) -> None:
        """The request let through proved nothing (the caller's input was at fault): if it
        was the probe, the next request probes instead; the count of failures stands."""
        self.probing = False

    def failure(self, now: float, threshold: int, why: str = "") -> None:
        self.failures += 1
        self.last_failure = why
        if self.probing or self.failures >= threshold:
            self.opened_at = now
            self.probing = False
