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
    # The compile attempt: agreed, reason, rows, label_agreement, max_probability_diff,
    # tolerance, precision, seconds, converter; artifact and sha256 of the ONNX file and
    # the kept reference sample when there are. None: registered before compiling existed.
    compiled: dict[str, Any] | None = None

    @property
    def compiled_agreed(self) -> bool:
        """Whether a compiled artifact exists and agreed with the original."""
        c = self.compiled or {}
        return bool(c.get("agreed") and c.get("artifact"))

    def compiled_reason(self) -> str:
        """Why the compiled runtime cannot be used ("" when it can)."""
        if self.compiled is None:
            return f"version {self.number} has not been compiled: run `pointsman compile`"
        if self.compiled_agreed:
            return ""
        return str(self.compiled.get("reason") or "no compiled artifact")

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
            "compiled": self.compiled,
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
            compiled=row.compiled,
        )
