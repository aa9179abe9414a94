"""Route revisions: every change to a model's traffic policy is a new, numbered revision."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from pointsman.errors import InvalidRoute, NotDeployed, RouteConflict
from pointsman.registry.models import Registry, bump_changes
from pointsman.routing.compat import SignatureChange, audit_signature_changes, check_signatures
from pointsman.routing.policy import Arm, Canary, Gates, Policy, check_policy
from pointsman.routing.route import Route, RouteChange
from pointsman.routing.stats import window
from pointsman.store.audit import write_audit
from pointsman.store.tables import models, routes

# Called with (model, versions) before a revision is written: loads and warms them, raising
# if one cannot answer, so that a broken version never becomes routed.
Preflight = Callable[[str, list[int]], None]


class RouteBook:
    """Reads and writes route revisions; every write is checked, numbered and audited."""

    def __init__(
        self, engine: Engine, registry: Registry, preflight: Preflight | None = None
    ) -> None:
        self.engine = engine
        self.registry = registry
        self.preflight = preflight

    # -- reads ----------------------------------------------------------------------
    def get(self, model: str) -> Route:
        """The revision in force for `model`; ModelNotFound, or NotDeployed if it has none."""
        route = self.find(model)
        if route is None:
            versions = self.registry.version_numbers(model)  # ModelNotFound first
            raise NotDeployed(model, [str(v) for v in versions])
        return route

    def find(self, model: str) -> Route | None:
        """The revision in force for `model`, or None if it was never deployed."""
        return self.all_current().get(model)

    def all_current(self) -> dict[str, Route]:
        """The revision in force for every deployed model."""
        latest = (
            sa.select(routes.c.model_id, sa.func.max(routes.c.revision).label("revision"))
            .group_by(routes.c.model_id)
            .subquery()
        )
        query = (
            sa.select(models.c.name, routes)
            .join(routes, routes.c.model_id == models.c.id)
            .join(
                latest,
                (latest.c.model_id == routes.c.model_id) & (latest.c.revision == routes.c.revision),
            )
        )
        with self.engine.connect() as conn:
            return {r.name: Route.from_row(r.name, r) for r in conn.execute(query).all()}

    def history(self, model: str) -> list[Route]:
        """Every revision of `model`, oldest first."""
        with self.engine.connect() as conn:
            model_id = self.registry.model_id(conn, model)
            rows = conn.execute(
                sa.select(routes).where(routes.c.model_id == model_id).order_by(routes.c.revision)
            ).all()
        return [Route.from_row(model, r) for r in rows]

    # -- writes ---------------------------------------------------------------------
    def apply(
        self, model: str, policy: Policy, user: str, reason: str, *,
        expect_revision: int | None = None, allow_canary_change: bool = False,
        action: str = "route", allow_signature_change: bool = False, signatures: bool = True,
    ) -> RouteChange:  # fmt: skip
        """Check `policy`, load and warm its versions, then write it as a new revision.

        Versions it brings in must take the primary's inputs unless
        `allow_signature_change`, which is audited (a version already routed was checked when
        it came in); rollbacks and the canary controller's moves pass `signatures=False`.
        """
        current = self.find(model)
        _check_change(self.registry, model, policy, current, allow_canary_change)
        fresh = [v for v in policy.versions if current is None or v not in current.versions]
        allowed: list[SignatureChange] = []
        if signatures and current is not None:
            allowed = check_signatures(
                self.registry, model, current.primary, fresh, allow_signature_change
            )
        if self.preflight is not None:
            self.preflight(model, fresh)
        return self._append(model, policy.to_json(), user, reason, expect_revision, action, allowed)

    def deploy(
        self, model: str, version: int | str, user: str, reason: str = "", *,
        allow_signature_change: bool = False, expect_revision: int | None = None,
    ) -> RouteChange:  # fmt: skip
        """Make `version` the sole primary, keeping key, timeout and compatible extras.

        With `expect_revision` (here and in the other writes) nothing is written unless that
        revision is still the one in force: RouteConflict instead."""
        record = self.registry.get_version(model, version)
        return self.apply(
            model,
            self._sole(model, record.number, None),
            user,
            reason or f"deploy version {record.number}",
            action="deploy", allow_signature_change=allow_signature_change,
            expect_revision=expect_revision,
        )  # fmt: skip

    def promote(
        self, model: str, version: int | str, user: str, reason: str = "", *,
        allow_signature_change: bool = False, expect_revision: int | None = None,
    ) -> RouteChange:  # fmt: skip
        """Make `version` the sole primary; a running canary of it ends as promoted."""
        record = self.registry.get_version(model, version)
        current = self.find(model)
        canary = current.policy.canary if current else None
        ended = None
        if canary is not None and canary.is_running:
            state = "promoted" if canary.candidate == record.number else "aborted"
            ended = replace(canary, state=state, reason=reason or f"promoted {record.number}")
        return self.apply(
            model,
            self._sole(model, record.number, ended),
            user,
            reason or f"promote version {record.number}",
            allow_canary_change=True, action="promote",
            allow_signature_change=allow_signature_change, expect_revision=expect_revision,
        )  # fmt: skip

    def rollback(
        self, model: str, user: str, reason: str = "", *, expect_revision: int | None = None
    ) -> RouteChange:
        """Re-apply the revision before the one in force, as a new revision."""
        history = self.history(model)
        policy = rollback_policy(model, history)
        current, previous = history[-1], history[-2]
        return self.apply(
            model,
            policy,
            user,
            reason or f"rollback from revision {current.revision} to {previous.revision}",
            allow_canary_change=True,
            action="rollback",
            signatures=False,  # back to what was in force: never refused
            expect_revision=expect_revision,
        )

    def start_canary(
        self,
        model: str,
        candidate: int | str,
        steps: list[int],
        user: str,
        *,
        hold_requests: int = 500,
        hold_s: float = 120.0,
        gates: Gates | None = None,
        allow_signature_change: bool = False,
        reason: str = "",
        expect_revision: int | None = None,
    ) -> RouteChange:
        """Send the first step's share to `candidate`, the rest to the current primary."""
        record = self.registry.get_version(model, candidate)
        current = self.find(model)
        if current is None:
            raise RouteConflict(
                f"Model {model!r} is not deployed; deploy a baseline first with "
                f"`pointsman deploy {model} VERSION`."
            )
        running = current.policy.canary
        if running is not None and running.is_running:
            raise RouteConflict(
                f"Model {model!r} already has a canary of version {running.candidate} at "
                f"{running.weight} %; promote or abort it first."
            )
        baseline = current.primary
        if record.number == baseline:
            raise RouteConflict(f"Version {baseline} is already the primary of {model!r}.")
        steps = canary_steps(model, steps)
        shadowed = window(self.engine, model, [current.revision]).get((record.number, "shadow"))
        canary = Canary(
            candidate=record.number,
            baseline=baseline,
            steps=tuple(steps),
            hold_requests=hold_requests,
            hold_s=hold_s,
            gates=gates or Gates(),
            shadow_agreement=shadowed.agreement if shadowed and shadowed.compared >= 20 else None,
        )
        policy = canary_policy(current.policy, canary)
        why = f"canary of version {record.number} at {steps[0]} %"
        reason = f"{why}: {reason}" if reason else why
        return self.apply(
            model, policy, user, reason, action="canary.start",
            allow_signature_change=allow_signature_change, expect_revision=expect_revision,
        )  # fmt: skip

    def end_canary(
        self, model: str, state: str, reason: str, user: str, expect_revision: int | None = None
    ) -> RouteChange:
        """Stop the running canary: the baseline takes all traffic again (rolled back/aborted)."""
        current = self.find(model)
        canary = current.policy.canary if current else None
        if current is None or canary is None or not canary.is_running:
            raise RouteConflict(f"Model {model!r} has no canary running.")
        ended = replace(canary, state=state, reason=reason)
        return self.apply(
            model,
            self._sole(model, canary.baseline, ended),
            user,
            f"canary of version {canary.candidate} {state.replace('_', ' ')}: {reason}",
            expect_revision=expect_revision,
            allow_canary_change=True,
            action=f"canary.{state}"[:32],
            signatures=False,  # back to the baseline
        )

    def advance_canary(self, model: str, user: str, expect_revision: int) -> RouteChange:
        """Move the running canary to its next step; the last step promotes the candidate."""
        current = self.find(model)
        canary = current.policy.canary if current else None
        if current is None or canary is None or not canary.is_running:
            raise RouteConflict(f"Model {model!r} has no canary running.")
        if canary.step + 1 >= len(canary.steps) or canary.steps[canary.step + 1] >= 100:
            done = replace(canary, state="promoted", reason="every step held its gates")
            return self.apply(
                model,
                self._sole(model, canary.candidate, done),
                user,
                f"canary of version {canary.candidate} promoted: every step held its gates",
                expect_revision=expect_revision,
                allow_canary_change=True,
                action="canary.promoted",
                signatures=False,  # the candidate was checked when its canary started
            )
        following = replace(canary, step=canary.step + 1)
        return self.apply(
            model,
            canary_policy(current.policy, following),
            user,
            f"canary of version {canary.candidate} advanced to {following.weight} %",
            expect_revision=expect_revision,
            allow_canary_change=True,
            action="canary.advance",
            signatures=False,
        )

    def _sole(self, model: str, version: int, canary: Canary | None) -> Policy:
        current = self.find(model)
        return sole_policy(current.policy if current else Policy(arms=()), version, canary)

    def _append(
        self,
        model: str,
        spec: dict[str, Any],
        user: str,
        reason: str,
        expect_revision: int | None,
        action: str = "route",
        signature_changes: list[SignatureChange] | None = None,
    ) -> RouteChange:
        now = datetime.now(UTC)
        with self.engine.begin() as conn:
            model_id = self.registry.model_id(conn, model)
            # Lock the model row so two writers cannot take the same revision number.
            conn.execute(sa.select(models.c.id).where(models.c.id == model_id).with_for_update())
            latest = int(
                conn.execute(
                    sa.select(sa.func.coalesce(sa.func.max(routes.c.revision), 0)).where(
                        routes.c.model_id == model_id
                    )
                ).scalar_one()
            )
            if expect_revision is not None and latest != expect_revision:
                raise RouteConflict(
                    f"Route of {model!r} changed meanwhile (revision {latest}, expected "
                    f"{expect_revision}); nothing was written."
                )
            conn.execute(
                routes.insert().values(
                    model_id=model_id,
                    revision=latest + 1,
                    spec=spec,
                    reason=reason,
                    created_at=now,
                    created_by=user,
                )
            )
            # The revision this one replaces, read under the lock: what the change is against.
            row = conn.execute(
                sa.select(routes).where(
                    (routes.c.model_id == model_id) & (routes.c.revision == latest)
                )
            ).first()
            before = Route.from_row(model, row) if row is not None else None
            write_audit(
                conn,
                user,
                action,
                f"model:{model}",
                {"revision": latest, **row.spec} if row is not None else None,
                {"revision": latest + 1, **spec},
                reason,
            )
            audit_signature_changes(conn, user, model, latest + 1, signature_changes or [])
            bump_changes(conn, "routes")
        after = Route(model, latest + 1, Policy.from_json(spec), now, user, reason)
        return RouteChange(before, after)


def _check_change(
    registry: Registry, model: str, policy: Policy, current: Route | None, canary_change: bool
) -> None:
    """InvalidRoute for a policy that cannot be served; RouteConflict while a canary runs."""
    known = registry.version_numbers(model)
    features = None
    if policy.validation.features:
        routed = [v for v in policy.versions if v in known]
        features = sorted(
            {n for v in routed for n in registry.get_version(model, v).signature.names}
        )
    check_policy(policy, model, known, features)
    running = current.policy.canary if current else None
    if running and running.is_running and not canary_change:
        raise RouteConflict(
            f"Model {model!r} has a canary of version {running.candidate} running; finish it "
            f"first with `pointsman promote {model} {running.candidate}` or "
            f"`pointsman canary {model} --abort`."
        )


def canary_steps(model: str, steps: list[int]) -> list[int]:
    """A canary's steps, checked to rise strictly within 1..100, ending at 100."""
    if not steps or any(not 0 < s <= 100 for s in steps) or steps != sorted(set(steps)):
        raise InvalidRoute(  # the request is malformed (422), not in conflict with the route
            model,
            [f"canary steps must rise strictly within 1..100, e.g. 5,25,50,100; got {steps}"],
        )
    return steps if steps[-1] == 100 else [*steps, 100]


def canary_policy(base: Policy, canary: Canary) -> Policy:
    """The policy of one canary step: candidate at the step's weight, baseline the rest."""
    weight = canary.weight
    arms: tuple[Arm, ...] = (Arm(canary.baseline, 100 - weight), Arm(canary.candidate, weight))
    if weight == 100:
        arms = (Arm(canary.candidate, 100),)
    shadows = tuple(s for s in base.shadows if s.version not in (canary.candidate, canary.baseline))
    fallback = None if base.fallback == canary.candidate else base.fallback
    return replace(base, arms=arms, shadows=shadows, fallback=fallback, canary=canary)


def sole_policy(base: Policy, version: int, canary: Canary | None) -> Policy:
    """`base` with `version` as its sole primary (no longer a shadow or the fallback)."""
    shadows = tuple(s for s in base.shadows if s.version != version)
    fallback = None if base.fallback == version else base.fallback
    return replace(
        base, arms=(Arm(version, 100),), shadows=shadows, fallback=fallback, canary=canary
    )


def rollback_policy(model: str, history: list[Route]) -> Policy:
    """The policy a rollback puts in force, given `model`'s revisions oldest first: the one
    before the revision in force, except that a canary still running in it is not resurrected
    (its baseline alone, on the policy in force). The RouteBook writes it; the console shows it."""
    if len(history) < 2:
        raise RouteConflict(f"Model {model!r} has no earlier route revision to roll back to.")
    policy = history[-2].policy
    if policy.canary is not None and policy.canary.is_running:
        return sole_policy(history[-1].policy, policy.canary.baseline, None)
    return policy
