"""Whether a version takes what callers of the primary send: its signature against the primary's.

A version that lacks an input the primary takes, needs one it does not, reads one as another
type, or takes them in another order (positional payloads: V1 instance lists, MLflow's
dataframe_split, CSV) would answer 422 to callers that the primary serves. Route changes
that bring such a version in are refused with this diff unless the user allows it.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.engine import Connection

from pointsman.errors import IncompatibleSignature
from pointsman.registry.models import Registry
from pointsman.store.audit import write_audit
from pointsman.types import Signature


@dataclass(frozen=True)
class SignatureChange:
    """A version let in although its signature differs from the primary's (audited)."""

    version: int
    primary: int
    diff: list[str]


def check_signatures(
    registry: Registry, model: str, primary: int, entering: list[int], allow: bool
) -> list[SignatureChange]:
    """The entering versions whose signature differs from the primary's: IncompatibleSignature
    for the first, unless `allow` (then all of them, for the audit log)."""
    known = registry.version_numbers(model)
    if primary not in known:
        return []
    base = registry.get_version(model, primary).signature
    changes = []
    for number in sorted(set(entering)):
        if number == primary or number not in known:
            continue
        other = registry.get_version(model, number).signature
        diff = signature_diff(base, other, primary, number)
        if diff and not allow:
            raise IncompatibleSignature(model, number, primary, diff)
        if diff:
            changes.append(SignatureChange(number, primary, diff))
    return changes


def audit_signature_changes(
    conn: Connection, user: str, model: str, revision: int, changes: list[SignatureChange]
) -> None:
    """One `signature.allowed` audit entry per version let in with another signature."""
    for change in changes:
        write_audit(
            conn, user, "signature.allowed", f"model:{model}",
            {"version": change.primary}, {"version": change.version, "diff": change.diff},
            f"route revision {revision}: " + "; ".join(change.diff),
        )  # fmt: skip


def signature_diff(
    primary: Signature, candidate: Signature, primary_version: int, candidate_version: int
) -> list[str]:
    """What differs, one line each: `- x: long (missing in v3)`, `+ z: double (new in v3; …)`,
    `~ plan: string → long`, `↕ order: …`; empty when the candidate takes what the primary does."""
    old = {c.name: c.type for c in primary.inputs}
    new = {c.name: c.type for c in candidate.inputs}
    v, p = f"v{candidate_version}", f"v{primary_version}"
    lines = [f"- {name}: {kind} (missing in {v})" for name, kind in old.items() if name not in new]
    lines += [
        f"+ {name}: {kind} (new in {v}; callers of {p} do not send it)"
        for name, kind in new.items()
        if name not in old
    ]
    lines += [
        f"~ {name}: {kind} → {new[name]}"
        for name, kind in old.items()
        if name in new and new[name] != kind
    ]
    shared_old = [n for n in old if n in new]
    shared_new = [n for n in new if n in old]
    if not lines and shared_old != shared_new:
        lines.append(
            f"↕ order: {', '.join(shared_old)} → {', '.join(shared_new)} (positional payloads, "
            "such as V1 instance lists, would be read into the wrong inputs)"
        )
    return lines
