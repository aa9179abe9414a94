"""Schemathesis hooks of tests/api/test_openapi_contract.py (`st` loads them, not pytest).

A schema-valid request may still be refused where JSON Schema cannot say why: a predict
body's values against the route's validation policy or the model's arithmetic, a route's
weights adding up to 100, a tar archive's contents. The test's configuration lets those
operations answer 400 or 422 to schema-valid data; `refused_only_for_what_the_schema_cannot_say`
then checks that such a refusal carries one of the codes listed here, never a refusal of
the request's shape (a missing field, a wrong type), which the document must describe.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

import schemathesis

UPLOAD = "POST /v1/admin/models/{model}/versions"
PREDICT = re.compile(r"^POST .*(predict|infer|invocations)$")
# Operation → the codes a schema-valid request may be refused with, and why.
REFUSALS: dict[str, frozenset[str]] = {
    # a value the route's policy refuses, or one the model cannot compute (issue 19)
    "predict": frozenset({"input_rejected", "input_not_computable"}),
    # random bytes are no tar archive, nor a loadable model
    UPLOAD: frozenset({"malformed_upload", "invalid_artifact", "unsafe_artifact"}),
    # arm weights summing to 100, versions that exist, canary steps rising
    "PUT /v1/admin/models/{model}/route": frozenset({"invalid_route"}),
    "POST /v1/admin/models/{model}/canary": frozenset({"invalid_route"}),
    # limits on sizes and durations written as text (memory of at least 512 MiB)
    "PUT /v1/admin/models/{model}/runners": frozenset(
        {"invalid_runner_spec", "compiled_runtime_refused"}
    ),
    # files of the server's machine, which the schema cannot know
    "POST /v1/models/{model}/jobs": frozenset({"bad_batch_source"}),
    # the business key a route names for outcomes
    "POST /v1/models/{model}/outcomes": frozenset({"outcome_without_key"}),
    # a page cursor is opaque text that this server wrote
    "GET /v1/predictions": frozenset({"bad_cursor"}),
}

# The upload is an uncompressed tar archive: sent as the bytes generated.
schemathesis.serializer.alias("application/x-tar", "application/octet-stream")


def refusals_of(label: str) -> frozenset[str] | None:
    if PREDICT.match(label):
        return REFUSALS["predict"]
    return REFUSALS.get(label)


@schemathesis.hook
def map_case(context: Any, case: Any) -> Any:
    """A schema-valid upload declares the sha256 of its own bytes (as `pointsman register
    --url` does), so the server reads the archive instead of stopping at the digest."""
    meta = case.meta
    positive = meta is not None and meta.generation.mode.is_positive
    body = getattr(case.body, "data", case.body)  # binary bodies come wrapped
    if case.operation.label == UPLOAD and positive and isinstance(body, bytes):
        headers = dict(case.headers or {})
        headers["X-Pointsman-Sha256"] = hashlib.sha256(body).hexdigest()
        case.headers = headers
    return case


@schemathesis.check
def refused_only_for_what_the_schema_cannot_say(ctx: Any, response: Any, case: Any) -> None:
    """A schema-valid request refused with 400 or 422 names a reason listed in REFUSALS."""
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive:
        return
    if response.status_code not in (400, 422):
        return
    allowed = refusals_of(case.operation.label)
    body = response.json()
    code = body.get("code") if isinstance(body, dict) else None
    if allowed is None or code not in allowed:
        raise AssertionError(
            f"A schema-valid request was refused with {response.status_code} {code!r} "
            f"(the document should describe why): {str(body)[:300]}"
        )
