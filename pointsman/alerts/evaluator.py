"""The alert evaluator: every tick, each rule's metric per model, through a small state machine.

ok ──condition holds──► pending ──held for `for`──► firing (notice "firing")
firing ──still holds, `cooldown` since the last notice──► firing (notice "repeat")
firing ──condition clears──► ok (notice "resolved");  pending ──clears──► ok (silently)

Every server process runs `tick` (so each keeps its snapshot ring warm), but only the one
holding the `alert-evaluator` lease in the store evaluates and sends: one sender however
many workers or replicas. The state lives in the store, so a new lease holder neither fires
again nor forgets to resolve.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from pointsman.alerts.dispatch import Dispatcher
from pointsman.alerts.events import prune_events
from pointsman.alerts.history import Notice, insert_notice, prune_history, utc
from pointsman.alerts.metrics import METRICS, MetricContext, format_value, get_metric
from pointsman.alerts.rules import Rule, RuleBook, format_duration
from pointsman.alerts.snapshots import NotCovered, Snapshots
from pointsman.errors import InvalidAlertRule
from pointsman.routing.revisions import RouteBook
from pointsman.store.leases import hold_lease, release_lease
from pointsman.store.tables import alert_states
from pointsman.store.upsert import update_or_insert

log = logging.getLogger("pointsman.alerts")

LEASE = "alert-evaluator"


@dataclass(frozen=True)
class State:
    """Where one (rule, model) stands."""

    status: str = "ok"  # ok | pending | firing
    value: float | None = None
    pending_since: datetime | None = None
    firing_since: datetime | None = None
    last_sent_at: datetime | None = None


def step(rule: Rule, state: State, value: float | None, now: datetime) -> tuple[State, str | None]:
    """The next state and the notice to send (firing | repeat | resolved), if any."""
    holds = value is not None and rule.condition.holds(value)
    if not holds:
        return State("ok", value), "resolved" if state.status == "firing" else None
    if state.status == "ok":
        state = State("pending", value, pending_since=now)
    if state.status == "pending":
        since = state.pending_since or now
        if (now - since).total_seconds() >= rule.for_s:
            return State("firing", value, since, now, now), "firing"
        return replace(state, value=value), None
    last = state.last_sent_at or now
    if rule.cooldown_s > 0 and (now - last).total_seconds() >= rule.cooldown_s:
        return replace(state, value=value, last_sent_at=now), "repeat"
    return replace(state, value=value), None


def targets(rule: Rule, models: list[str], context: MetricContext | None = None) -> list[str]:
    """What a rule is evaluated for: each model it names, each replica heard from, or "*"
    for a server-wide metric."""
    metric = METRICS.get(rule.condition.metric)
    if metric is not None and metric.per_replica:
        return sorted({b.replica for b in context.beats()}) if context is not None else []
    if metric is not None and not metric.per_model:
        return ["*"]
    return models if rule.model == "*" else [rule.model]


def describe(rule: Rule, model: str, value: float | None, event: str) -> tuple[str, str]:
    """The one-line summary and the rule in words."""
    c = rule.condition
    model = "the server" if model == "*" else model
    window = format_duration(rule.window_s)
    limit = f"{c.op} {format_value(c.metric, c.threshold)}"
    if event == "resolved":
        summary = (
            f"{c.metric} on {model} back to {format_value(c.metric, value)} (alert at {limit})"
        )
    else:
        summary = (
            f"{c.metric} on {model} is {format_value(c.metric, value)} ({limit}, last {window})"
        )
    held = f" held for {format_duration(rule.for_s)}" if rule.for_s else ""
    words = rule.description or f"{c.text} over the last {window}{held}"
    return summary, words


class Evaluator:
    """Ticks every rule of a project; safe to run in every worker and replica (lease)."""

    def __init__(
        self,
        engine: Engine,
        routes: RouteBook,
        rules: RuleBook,
        dispatcher: Dispatcher,
        holder: str,
        *,
        interval_s: float = 10.0,
        lease_s: float = 30.0,
        history_days: float = 90.0,
        live_within_s: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.engine = engine
        self.routes = routes
        self.rules = rules
        self.dispatcher = dispatcher
        self.holder = holder
        self.interval_s = interval_s
        self.history_days = history_days
        self.live_within_s = live_within_s  # a worker silent longer is not live
        self.lease_s = max(lease_s, 3 * interval_s)  # outlives a late tick or two
        self.clock = clock
        self.snapshots = Snapshots()
        self._ticks = 0
        self._has_held = False

    def tick(self) -> list[Notice]:
        """One round: snapshot the counters; if this process holds the lease, evaluate."""
        now_s = self.clock()
        now = datetime.fromtimestamp(now_s, UTC)
        rules = self.rules.list_rules()
        if not rules:
            return []
        keep_s = max(r.window_s for r in rules) + 2 * self.interval_s
        self.snapshots.take(self.engine, now_s, keep_s)
        if not hold_lease(self.engine, LEASE, self.holder, self.lease_s):
            return []
        self._has_held = True
        states = self.load_states()
        context = MetricContext(
            self.engine, self.routes, self.snapshots, now, live_within_s=self.live_within_s
        )
        models = self.routes.registry.model_names()
        notices = []
        for rule in rules:
            for model in targets(rule, models, context):
                notice = self.evaluate(
                    rule, model, states.get((rule.name, model), State()), context
                )
                if notice is not None:
                    notices.append(notice)
        self._ticks += 1
        if self._ticks % 360 == 1:  # the first tick, then about once an hour
            prune_events(self.engine, now)
            if self.history_days > 0:
                prune_history(self.engine, now - timedelta(days=self.history_days))
        return notices

    def evaluate(
        self, rule: Rule, model: str, state: State, context: MetricContext
    ) -> Notice | None:
        """One rule on one model: step its state, store it, send what it calls for."""
        try:
            value = get_metric(rule.condition.metric, rule.name).fn(context, model, rule.window_s)
        except NotCovered:
            return None  # warming up: hold the state
        except InvalidAlertRule as exc:
            log.error("%s", exc.message)
            return None
        except Exception:
            log.exception(
                "alert rule %s on %s: cannot read %s", rule.name, model, rule.condition.metric
            )
            return None
        new, event = step(rule, state, value, context.now)
        notice = None
        if event is not None:
            summary, words = describe(rule, model, value, event)
            started = state.firing_since if event == "resolved" else new.firing_since
            notice = Notice(
                rule=rule.name, model=model, event=event, severity=rule.severity, value=value,
                summary=summary, description=words, started_at=started or context.now,
                at=context.now, metric=rule.condition.metric,
            )  # fmt: skip
        if new == state:
            return None
        # The state and its notice are written together: never "firing" with nothing sent.
        with self.engine.begin() as conn:
            save_state(conn, rule.name, model, new, context.now)
            if notice is not None:
                notice = replace(notice, alert_id=insert_notice(conn, notice))
        if notice is None:
            return None
        log.warning("alert %s %s: %s", rule.name, notice.event, notice.summary)
        self.dispatcher.send(notice, rule.channels)
        return notice

    def load_states(self) -> dict[tuple[str, str], State]:
        with self.engine.connect() as conn:
            rows = conn.execute(alert_states.select()).all()
        return {
            (r.rule, r.model): State(
                r.status,
                r.value,
                maybe_utc(r.pending_since),
                maybe_utc(r.firing_since),
                maybe_utc(r.last_sent_at),
            )
            for r in rows
        }

    def close(self) -> None:
        """Stop the senders and hand the lease over at once."""
        self.dispatcher.close()
        if not self._has_held:
            return
        try:
            release_lease(self.engine, LEASE, self.holder)
        except Exception:  # the store may be gone: the lease expires by itself
            log.warning("could not release the alert lease; it expires in %g s", self.lease_s)


def save_state(conn: Connection, rule: str, model: str, state: State, now: datetime) -> None:
    """Write where (rule, model) stands."""
    values = {
        "status": state.status,
        "value": state.value,
        "pending_since": state.pending_since,
        "firing_since": state.firing_since,
        "last_sent_at": state.last_sent_at,
        "updated_at": now,
    }
    update_or_insert(conn, alert_states, {"rule": rule, "model": model}, values)


def read_states(engine: Engine) -> dict[tuple[str, str], dict[str, object]]:
    """Every (rule, model) state, for listings."""
    with engine.connect() as conn:
        rows = conn.execute(sa.select(alert_states)).all()
    return {
        (r.rule, r.model): {
            "model": r.model,
            "status": r.status,
            "value": r.value,
            "since": (
                maybe_utc(r.firing_since) or maybe_utc(r.pending_since) or utc(r.updated_at)
            ).isoformat(),
        }
        for r in rows
    }


def maybe_utc(at: datetime | None) -> datetime | None:
    return None if at is None else utc(at)
