"""A model as `pointsman models` lists it: held apart from the registry, which needs the store."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pointsman.types import as_utc


@dataclass(frozen=True)
class ModelSummary:
    """One row of `pointsman models`."""

    name: str
    versions: int
    latest: int | None
    deployed: list[int]
    route_revision: int | None
    created_at: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "versions": self.versions,
            "latest": self.latest,
            "deployed": self.deployed,
            "route_revision": self.route_revision,
            "created_at": self.created_at.isoformat(),
        }

    @classmethod
    def from_row(cls, row: Any) -> ModelSummary:
        """From a row of name, created_at, n (versions), latest, and the latest route's
        revision and spec (None when never deployed)."""
        return cls(
            name=row.name,
            versions=int(row.n or 0),
            latest=row.latest,
            deployed=[int(a["version"]) for a in (row.spec or {}).get("arms", [])],
            route_revision=row.revision,
            created_at=as_utc(row.created_at),
        )
