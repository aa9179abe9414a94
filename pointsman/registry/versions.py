"""Version records: what the store holds about one immutable artifact."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pointsman.types import Signature, as_utc


@dataclass(frozen=True)
class VersionRecord:
    """One registered version of a model."""

    model: str
    number: int
    sha256: str
    format: str
    artifact: str
    entrypoint: str | None
    signature: Signature
    profile: dict[str, Any] | None
    lineage: dict[str, Any]
    input_example: list[dict[str, Any]] | None
    note: str
    created_at: datetime
    created_by: str

    @property
    def platform(self) -> str:
        return str(self.lineage.get("platform") or self.format)

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "version": self.number,
            "sha256": self.sha256,
            "format": self.format,
            "platform": self.platform,
            "artifact": self.artifact,
            "entrypoint": self.entrypoint,
            "signature": self.signature.to_json(),
            "profile": self.profile,
            "lineage": self.lineage,
            "input_example": self.input_example,
            "note": self.note,
            "created_at": self.created_at.isoformat(),
            "created_by": self.created_by,
        }

    @classmethod
    def from_row(cls, model: str, row: Any) -> VersionRecord:
        return cls(
            model=model,
            number=row.number,
            sha256=row.sha256,
            format=row.format,
            artifact=row.artifact,
            entrypoint=row.entrypoint,
            signature=Signature.from_json(row.signature),
            profile=row.profile,
            lineage=row.lineage,
            input_example=row.input_example,
            note=row.note,
            created_at=as_utc(row.created_at),
            created_by=row.created_by,
        )
