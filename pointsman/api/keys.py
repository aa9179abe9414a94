"""The admin API for keys and the audit log: /v1/admin/keys and /v1/admin/audit."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.routing import BaseRoute

from pointsman.api.access import client_of
from pointsman.api.admin import ErrorOut, User, checked, who
from pointsman.api.common import project_of
from pointsman.auth import KeyBook, read_audit
from pointsman.auth.keys import EXPIRY, NAME, RATE
from pointsman.auth.scopes import SCOPE
from pointsman.errors import KeyInUse
from pointsman.logstore.query import TIME_FORMS, parse_time

router = APIRouter(
    prefix="/v1/admin",
    tags=["keys and audit"],
    responses={
        401: {"model": ErrorOut, "description": "No valid API key"},
        403: {"model": ErrorOut, "description": "The key lacks the admin scope"},
        404: {"model": ErrorOut, "description": "Unknown key"},
        409: {"model": ErrorOut, "description": "A key revoking itself, or a name in use"},
    },
)


class KeyIn(BaseModel):
    """A new key: its name (the client's), scopes, and optional rate and lifetime."""

    model_config = ConfigDict(extra="forbid")

    # The forms are checked by KeyBook.create, whose 400 says what to write.
    name: str = Field(
        description="Up to 64 letters, digits, '_', '.', '@', '-'.", **checked(pattern=NAME)
    )
    scopes: list[Annotated[str, Field(**checked(pattern=SCOPE))]] = Field(
        description="predict:MODEL, read:, register:, outcome:, deploy: or admin.",
        **checked(minItems=1),
    )
    rate: str | None = Field(None, description="e.g. 100/s, 6000/min", **checked(pattern=RATE))
    expires: str | None = Field(None, description="e.g. 90d, 12h", **checked(pattern=EXPIRY))


def _book(request: Request) -> KeyBook:
    return KeyBook(project_of(request).engine)


@router.get("/keys", summary="List API keys (never the keys themselves)")
def list_keys(request: Request, include_revoked: bool = False) -> list[dict[str, Any]]:
    return [r.to_json() for r in _book(request).list_keys(include_revoked)]


@router.post("/keys", status_code=201, summary="Create an API key; the answer shows it once")
def create_key(request: Request, body: KeyIn, user: User = None) -> dict[str, Any]:
    key, record = _book(request).create(
        body.name, body.scopes, who(request, user), rate=body.rate, expires=body.expires
    )
    return {"key": key, **record.to_json()}


@router.delete("/keys/{name}", summary="Revoke an API key")
def revoke_key(request: Request, name: str, user: User = None) -> dict[str, Any]:
    if client_of(request) == name:
        raise KeyInUse(name)
    return _book(request).revoke(name, who(request, user)).to_json()


@router.get("/audit", summary="Admin actions: who, when, what, before and after")
def audit(
    request: Request,
    since: Annotated[str | None, Query(description=f"From: {TIME_FORMS}; default: all.")] = None,
    action: Annotated[str | None, Query(description="An action or family: deploy, key.")] = None,
    target: Annotated[str | None, Query(description="model:churn, key:ci, …")] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> list[dict[str, Any]]:
    engine = project_of(request).engine
    return [e.to_json() for e in read_audit(engine, _since(since), action, target, limit)]


def routes() -> list[BaseRoute]:
    return list(router.routes)


def _since(text: str | None) -> datetime | None:
    """A span back from now (`1h`) or an ISO time; BadLogQuery (400) naming `since`."""
    return parse_time("since", text) if text is not None else None
