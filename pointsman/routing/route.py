"""A route revision as read: what `pointsman route`, the admin API and the servers work from.

Nothing here touches the store (`revisions.RouteBook` reads and writes the revisions), so the
commands that only print a route load neither SQLAlchemy nor numpy to hold one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pointsman.routing.changes import describe_changes
from pointsman.routing.policy import Arm, Policy
from pointsman.types import as_utc


@dataclass(frozen=True)
class Route:
    """One route revision of a model."""

    model: str
    revision: int
    policy: Policy
    created_at: datetime
    created_by: str
    reason: str = ""

    @property
    def arms(self) -> tuple[Arm, ...]:
        return self.policy.arms

    @property
    def versions(self) -> list[int]:
        """Every version this revision needs loaded (arms, shadows, fallback)."""
        return self.policy.versions

    @property
    def primary(self) -> int:
        return self.policy.primary

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "revision": self.revision,
            **self.policy.to_json(),
            "created_at": self.created_at.isoformat(),
            "created_by": self.created_by,
            "reason": self.reason,
        }

    @classmethod
    def from_row(cls, model: str, row: Any) -> Route:
        policy = Policy.from_json(row.spec)
        created = as_utc(row.created_at)
        return cls(model, row.revision, policy, created, row.created_by, row.reason)


@dataclass(frozen=True)
class RouteChange:
    """What one route write did: the revision in force before it (None if first), and after."""

    before: Route | None
    after: Route

    @property
    def changes(self) -> list[str]:
        """What differs from the revision before, as phrases (`describe_changes`)."""
        return describe_changes(self.before.policy if self.before else None, self.after.policy)

    def to_json(self) -> dict[str, Any]:
        """The new revision as JSON, plus `changes`."""
        return {**self.after.to_json(), "changes": self.changes}


def history_json(revisions: list[Route]) -> list[dict[str, Any]]:
    """Each revision as JSON plus `changes`: what differs from the revision before it."""
    return [
        RouteChange(revisions[i - 1] if i else None, revision).to_json()
        for i, revision in enumerate(revisions)
    ]
