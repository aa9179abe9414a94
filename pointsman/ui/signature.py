"""A version's signature as table rows: type, nulls, training range or categories."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pointsman.registry.versions import VersionRecord


@dataclass(frozen=True)
class InputRow:
    name: str
    type: str
    nullable: bool
    allowed: str  # the range or the categories seen in the reference profile
    null_rate: str


def _number(value: float) -> str:
    return f"{value:.4g}"


def allowed_text(stats: dict[str, Any]) -> str:
    if stats.get("kind") == "numeric" and "min" in stats:
        return f"{_number(stats['min'])} … {_number(stats['max'])} (mean {_number(stats['mean'])})"
    categories = stats.get("categories")
    if categories:
        shown = ", ".join(f"{k} ({100 * v:.0f} %)" for k, v in list(categories.items())[:12])
        more = int(stats.get("n_categories", len(categories))) - min(12, len(categories))
        return shown + (f" and {more} more" if more > 0 else "")
    return "no reference profile"


def input_rows(version: VersionRecord) -> list[InputRow]:
    features = (version.profile or {}).get("features", {})
    rows = []
    for column in version.signature.inputs:
        stats = features.get(column.name, {})
        null_rate = stats.get("null_rate")
        rows.append(
            InputRow(
                column.name,
                column.type,
                column.nullable,
                allowed_text(stats) if stats else "no reference profile",
                "\N{EN DASH}" if null_rate is None else f"{100 * float(null_rate):.1f} %",
            )
        )
    return rows


# What a predict endpoint may answer, for the catalogue (docs/security.md, docs/api.md).
ERROR_CODES = [
    (400, "bad_request", "malformed JSON or body (the position is named)"),
    (401, "unauthorized", "no key, or an invalid, revoked or expired one"),
    (403, "forbidden", "the key lacks predict:MODEL"),
    (
        404,
        "model_not_found / version_not_found",
        "unknown model or version (the known ones listed)",
    ),
    (413, "payload_too_large", "body over max_body_bytes"),
    (
        422,
        "invalid_input / input_rejected",
        "wrong columns or types, or inputs refused by the validation policy",
    ),
    (429, "rate_limited", "past the key's rate (Retry-After)"),
    (500, "model_error", "the model raised (the request id is given, never a traceback)"),
    (503, "not_ready / not_deployed", "no version routed or warm yet"),
    (504, "request_timeout", "past the route's timeout or the runner's time limit"),
]
