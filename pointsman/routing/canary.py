"""The canary controller: advance a healthy candidate step by step, roll back a failing one.

One process at a time runs it (a lease in the store). Each tick it reads the window of the
step in force (the stats of its route revision, summed over every worker) and decides.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.engine import Engine

from pointsman.errors import RouteConflict
from pointsman.routing.policy import Canary
from pointsman.routing.revisions import RouteBook
from pointsman.routing.route import Route
from pointsman.routing.stats import Counts, window
from pointsman.store.leases import hold_lease

log = logging.getLogger("pointsman.canary")

LEASE = "canary-controller"
# Latency differences under this many milliseconds never fail the p99 gate: on tiny models
# the bucket edges alone would otherwise make 1 ms vs 2 ms look like "twice as slow".
P99_SLACK_MS = 5.0
# The validation gate fails only when the candidate's excess is this many standard errors
# past zero as well as past the gate: about 1 in 700 for two arms that really are alike.
NOISE_Z = 3.0


@dataclass(frozen=True)
class Verdict:
    """What the controller decides for one canary step."""

    action: str  # wait | advance | rollback
    reason: str


def gate_failures(canary: Canary, candidate: Counts, baseline: Counts) -> list[str]:
    """Every gate the candidate fails against the baseline over the same window."""
    g = canary.gates
    failures = []
    for name, label, limit in (
        ("errors", "error rate", g.max_error_rate_delta),
        ("fallbacks", "fallback rate", g.max_fallback_rate_delta),
        ("invalid", "validation-failure rate", g.max_validation_rate_delta),
    ):
        c, b = candidate.rate(name), baseline.rate(name)
        # Validation rates follow what callers send, on both arms: only a difference past the
        # luck of the split counts there. Errors and fallbacks of a healthy version are ~0.
        if c - b > limit and (name != "invalid" or _beyond_noise(candidate, baseline, name)):
            failures.append(f"{label} {c:.1%} vs baseline {b:.1%} (allowed +{limit:.1%})")
    c99, b99 = candidate.percentile_ms(0.99), baseline.percentile_ms(0.99)
    if c99 is not None and b99 is not None and c99 > g.max_p99_ratio * b99 + P99_SLACK_MS:
        failures.append(f"p99 {c99:g} ms vs baseline {b99:g} ms (allowed {g.max_p99_ratio:g}x)")
    return failures


def _beyond_noise(candidate: Counts, baseline: Counts, name: str) -> bool:
    """Whether the candidate's higher rate of `name` is more than the luck of the split.

    A two-proportion z-test: requests go to an arm at random, so a client sending bad input
    at a high rate raises both arms' validation rates by about as much, and the difference
    between two samples of a few hundred is noise of several points.
    """
    n, m = candidate.requests, baseline.requests
    if not n or not m:
        return True
    pooled = (getattr(candidate, name) + getattr(baseline, name)) / (n + m)
    spread = math.sqrt(pooled * (1 - pooled) * (1 / n + 1 / m))
    return spread == 0 or (candidate.rate(name) - baseline.rate(name)) / spread > NOISE_Z


# Why a canary's candidate fails its quality gate on the outcomes so far, or None: supplied
# by the worker (scoring outcomes sits above routing).
QualityCheck = Callable[[Route], str | None]


def judge(
    canary: Canary,
    cells: dict[tuple[int, str], Counts],
    held_s: float,
    quality_failure: str | None = None,
) -> Verdict:
    """Advance when held long enough with every gate passing; roll back on any failure."""
    if quality_failure is not None:
        return Verdict("rollback", quality_failure)
    candidate = cells.get((canary.candidate, "primary"), Counts())
    baseline = cells.get((canary.baseline, "primary"), Counts())
    if canary.shadow_agreement is not None and canary.shadow_agreement < canary.gates.min_agreement:
        return Verdict(
            "rollback",
            f"agreement with the baseline while shadowed was {canary.shadow_agreement:.1%} "
            f"(needs {canary.gates.min_agreement:.0%})",
        )
    # Judge only on enough evidence: a few requests prove nothing either way.
    minimum = max(20, canary.hold_requests // 10)
    if candidate.requests >= minimum:
        failures = gate_failures(canary, candidate, baseline)
        if failures:
            return Verdict("rollback", "; ".join(failures))
    if candidate.requests >= canary.hold_requests and held_s >= canary.hold_s:
        return Verdict("advance", f"held {candidate.requests} requests over {held_s:.0f} s")
    return Verdict(
        "wait",
        f"{candidate.requests}/{canary.hold_requests} requests, {held_s:.0f}/{canary.hold_s:.0f} s",
    )


def canary_status(engine: Engine, route: Route) -> dict[str, Any]:
    """The canary of `route` with its current window, for the CLI and the admin API."""
    canary = route.policy.canary
    if canary is None:
        return {"state": "none"}
    cells = window(engine, route.model, [route.revision])
    held_s = (datetime.now(UTC) - route.created_at).total_seconds()
    arms = {
        str(v): cells.get((v, "primary"), Counts()).summary()
        for v in (canary.baseline, canary.candidate)
    }
    status: dict[str, Any] = {
        **canary.to_json(),
        "weight": canary.weight if canary.is_running else None,
        "revision": route.revision,
        "since": route.created_at.isoformat(),
        "held_s": held_s,
        "arms": arms,
    }
    if canary.is_running:
        verdict = judge(canary, cells, held_s)
        status["next"] = {"action": verdict.action, "reason": verdict.reason}
    return status


class CanaryController:
    """Ticks every running canary of a project; safe to run in every worker (lease)."""

    def __init__(
        self,
        engine: Engine,
        routes: RouteBook,
        holder: str,
        lease_s: float = 10.0,
        quality_check: QualityCheck | None = None,
    ):
        self.engine = engine
        self.routes = routes
        self.holder = holder
        self.lease_s = lease_s
        self.quality_check = quality_check

    def tick(self) -> list[Route]:
        """One round: returns the revisions it wrote."""
        running = [
            r
            for r in self.routes.all_current().values()
            if r.policy.canary is not None and r.policy.canary.is_running
        ]
        if not running or not self.hold_lease():
            return []
        written = []
        for route in running:
            canary = route.policy.canary
            assert canary is not None  # filtered above
            held_s = (datetime.now(UTC) - route.created_at).total_seconds()
            failure = self._quality(route) if canary.gates.quality else None
            cells = window(self.engine, route.model, [route.revision])
            verdict = judge(canary, cells, held_s, failure)
            try:
                if verdict.action == "advance":
                    change = self.routes.advance_canary(route.model, "canary", route.revision)
                    written.append(change.after)
                elif verdict.action == "rollback":
                    change = self.routes.end_canary(
                        route.model, "rolled_back", verdict.reason, "canary", route.revision
                    )
                    written.append(change.after)
            except RouteConflict as exc:  # someone changed the route meanwhile: look again
                log.info("canary of %s: %s", route.model, exc.message)
            except Exception:
                log.exception("canary of %s could not move", route.model)
        for route in written:
            log.warning("canary: %s revision %s: %s", route.model, route.revision, route.reason)
        return written

    def _quality(self, route: Route) -> str | None:
        if self.quality_check is None:
            return None
        try:
            return self.quality_check(route)
        except Exception:  # a failing check never moves a canary either way
            log.exception("canary of %s: quality gate could not be read", route.model)
            return None

    def hold_lease(self) -> bool:
        """Take or renew the controller lease; False if another process holds it."""
        return hold_lease(self.engine, LEASE, self.holder, self.lease_s)
