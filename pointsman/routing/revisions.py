"""Route revisions: every change to a model's traffic policy is a new, numbered revision."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from pointsman.registry import Registry, bump_changes
from pointsman.store.tables import models, routes


@dataclass(frozen=True)
class Arm:
    """A primary version and its share of traffic in percent."""

    version: int
    weight: int = 100


@dataclass(frozen=True)
class Route:
    """One route revision of a model."""

    model: str
    revision: int
    arms: tuple[Arm, ...]
    created_at: datetime
    created_by: str
    reason: str = ""

    @property
    def versions(self) -> list[int]:
        return [a.version for a in self.arms]

    @property
    def primary(self) -> int:
        """The version that answers (the heaviest arm)."""
        return max(self.arms, key=lambda a: a.weight).version

    def spec(self) -> dict[str, Any]:
        return {"arms": [{"version": a.version, "weight": a.weight} for a in self.arms]}

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "revision": self.revision,
            **self.spec(),
            "created_at": self.created_at.isoformat(),
            "created_by": self.created_by,
            "reason": self.reason,
        }

    @classmethod
    def from_row(cls, model: str, row: Any) -> Route:
        arms = tuple(Arm(int(a["version"]), int(a.get("weight", 100))) for a in row.spec["arms"])
        return cls(model, row.revision, arms, row.created_at, row.created_by, row.reason)


class RouteBook:
    """Reads and writes route revisions."""

    def __init__(self, engine: Engine, registry: Registry) -> None:
        self.engine = engine
        self.registry = registry

    def deploy(self, model: str, version: int | str, user: str, reason: str = "") -> Route:
        """Make `version` the sole primary of `model` in a new revision."""
        record = self.registry.get_version(model, version)
        spec = {"arms": [{"version": record.number, "weight": 100}]}
        return self._append(model, spec, user, reason or f"deploy version {record.number}")

    def _append(self, model: str, spec: dict[str, Any], user: str, reason: str) -> Route:
        now = datetime.now(UTC)
        with self.engine.begin() as conn:
            model_id = self.registry.model_id(conn, model)
            # Lock the model row so two deploys cannot take the same revision number.
            conn.execute(sa.select(models.c.id).where(models.c.id == model_id).with_for_update())
            revision = 1 + int(
                conn.execute(
                    sa.select(sa.func.coalesce(sa.func.max(routes.c.revision), 0)).where(
                        routes.c.model_id == model_id
                    )
                ).scalar_one()
            )
            conn.execute(
                routes.insert().values(
                    model_id=model_id,
                    revision=revision,
                    spec=spec,
                    reason=reason,
                    created_at=now,
                    created_by=user,
                )
            )
            bump_changes(conn)
        return self.current(model) or Route(model, revision, (), now, user, reason)

    def current(self, model: str) -> Route | None:
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
