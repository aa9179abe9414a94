"""Console sign-in: an API key traded for a session cookie, and the CSRF token of each change.

The cookie holds a random id; the store keeps its sha256, the key's hash and the CSRF token,
so any worker or replica can read it and revoking the key ends its sessions at once (the key
table is checked on every page). The key itself is never stored or sent back.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from starlette.requests import Request
from starlette.responses import Response

from pointsman.auth import Client, KeyCache
from pointsman.auth.scopes import covers
from pointsman.store.tables import ui_sessions

COOKIE = "pointsman_session"
PRE_COOKIE = "pointsman_signin"  # double-submit token of the sign-in form (no session yet)


@dataclass(frozen=True)
class Viewer:
    """Who is looking at a page: the key's client and the session's CSRF token."""

    client: Client
    csrf: str
    session_hash: str

    @property
    def name(self) -> str:
        return self.client.name

    def may(self, kind: str, model: str = "*") -> bool:
        """Whether the key holds `kind:model` (admin holds everything)."""
        if kind == "admin":
            return "admin" in self.client.scopes
        return covers(self.client.scopes, f"{kind}:{model}")

    def may_see(self, model: str) -> bool:
        return self.may("read", model) or self.may("predict", model) or self.may("deploy", model)


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def open_session(engine: Engine, client: Client, hours: float) -> tuple[str, str]:
    """A new session for `client`: (cookie value, CSRF token)."""
    session_id, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    now = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(ui_sessions.delete().where(ui_sessions.c.expires_at < now))
        conn.execute(
            ui_sessions.insert().values(
                id_hash=_digest(session_id),
                key_hash=client.key_hash,
                csrf=csrf,
                created_at=now,
                expires_at=now + timedelta(hours=hours),
            )
        )
    return session_id, csrf


def close_session(engine: Engine, session_hash: str) -> None:
    with engine.begin() as conn:
        conn.execute(ui_sessions.delete().where(ui_sessions.c.id_hash == session_hash))


def find_viewer(engine: Engine, keys: KeyCache | None, request: Request) -> Viewer | None:
    """The signed-in viewer of a request, or None (no cookie, expired, key revoked)."""
    session_id = request.cookies.get(COOKIE)
    if not session_id or keys is None:
        return None
    digest = _digest(session_id)
    with engine.connect() as conn:
        row = conn.execute(sa.select(ui_sessions).where(ui_sessions.c.id_hash == digest)).first()
    if row is None or _utc(row.expires_at) <= datetime.now(UTC):
        return None
    client = keys.client_by_hash(row.key_hash)
    if client is None or client.revoked:
        return None
    expires = client.expires_at
    if expires is not None and expires <= datetime.now(UTC).timestamp():
        return None
    return Viewer(client, row.csrf, digest)


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def is_secure(request: Request) -> bool:
    return request.url.scheme == "https"


def set_cookie(response: Response, request: Request, name: str, value: str, max_age: int) -> None:
    """HttpOnly, SameSite=Strict, Secure under TLS, scoped to the console's paths."""
    response.set_cookie(
        name, value, max_age=max_age, path="/ui", httponly=True, samesite="strict",
        secure=is_secure(request),
    )  # fmt: skip


def check_token(expected: str, given: str | None) -> bool:
    """Constant-time comparison of a CSRF token."""
    return bool(given) and hmac.compare_digest(expected, given or "")
