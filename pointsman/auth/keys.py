"""API keys: created random (`pk_…`), shown once, stored as their sha256 only."""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from pointsman.auth.scopes import check_scopes
from pointsman.errors import BadRequest, KeyExists, KeyNotFound
from pointsman.store.audit import write_audit
from pointsman.store.changes import notify_change
from pointsman.store.tables import api_keys
from pointsman.types import as_utc

PREFIX = "pk_"
# The forms a key's name, rate and expiry take (the admin API's schema shows them too).
NAME = r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$"
RATE = r"^(\s*0*[1-9]\d*\s*/\s*(s|sec|second|m|min|minute|h|hour)\s*)?$"  # "": no limit
# At most five digits: 99999w is some 1900 years, still a date (a longer one overflowed).
EXPIRY = r"^(\s*0*[1-9]\d{0,4}\s*(m|h|d|w)\s*)?$"  # "": no expiry
_NAME = re.compile(NAME)
_RATE = re.compile(r"^(\d+)\s*/\s*(s|sec|second|m|min|minute|h|hour)$")
_PER_S = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60, "h": 3600, "hour": 3600}
_SPAN = re.compile(r"^0*(\d{1,5})\s*(m|h|d|w)$")
_SPAN_S = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def new_key() -> str:
    """A fresh key: 256 random bits, URL-safe, with a prefix that secret scanners can spot."""
    return PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    """The stored form of a key. Keys are 256-bit random, so one sha256 suffices (no salt)."""
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()


def parse_rate(rate: str | None) -> tuple[int, float] | None:
    """`100/s`, `6000/min`, `10/h` → (count, requests per second); None for no limit."""
    if rate is None or rate == "":
        return None
    found = _RATE.match(rate.strip().lower())
    if not found or int(found.group(1)) == 0:
        raise BadRequest(
            f"Rate {rate!r} is not understood; write COUNT/UNIT with a count above 0 and "
            "UNIT s, min or h, e.g. 100/s or 6000/min."
        )
    count = int(found.group(1))
    return count, count / _PER_S[found.group(2)]


def parse_span(span: str) -> timedelta:
    """`90d`, `12h`, `2w`, `30m` → a timedelta."""
    found = _SPAN.match(span.strip().lower())
    if not found or int(found.group(1)) == 0:
        raise BadRequest(
            f"Expiry {span!r} is not understood; write a count (1 to 99999) and m, h, d or w, "
            "e.g. 90d."
        )
    return timedelta(seconds=int(found.group(1)) * _SPAN_S[found.group(2)])


@dataclass(frozen=True)
class KeyRecord:
    """One key as stored (never the key itself): its name is the client's name."""

    name: str
    key_hash: str
    prefix: str
    scopes: tuple[str, ...]
    rate: str | None
    expires_at: datetime | None
    created_at: datetime
    created_by: str
    revoked_at: datetime | None
    revoked_by: str | None

    @classmethod
    def from_row(cls, row: Any) -> KeyRecord:
        return cls(
            name=row.name,
            key_hash=row.key_hash,
            prefix=row.prefix,
            scopes=tuple(row.scopes),
            rate=row.rate,
            expires_at=as_utc(row.expires_at) if row.expires_at else None,
            created_at=as_utc(row.created_at),
            created_by=row.created_by,
            revoked_at=as_utc(row.revoked_at) if row.revoked_at else None,
            revoked_by=row.revoked_by,
        )

    def state(self, now: datetime | None = None) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= (now or datetime.now(UTC)):
            return "expired"
        return "active"

    def to_json(self) -> dict[str, Any]:
        """What `keys list` and the audit log show: the prefix, never the key or its hash."""
        return {
            "name": self.name,
            "prefix": self.prefix,
            "scopes": list(self.scopes),
            "rate": self.rate,
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
            "created_at": self.created_at.isoformat(),
            "created_by": self.created_by,
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
            "revoked_by": self.revoked_by,
            "state": self.state(),
        }


class KeyBook:
    """Creating, listing, revoking and rotating keys; every change is audited."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def list_keys(self, include_revoked: bool = True) -> list[KeyRecord]:
        query = sa.select(api_keys).order_by(api_keys.c.name, api_keys.c.id)
        if not include_revoked:
            query = query.where(api_keys.c.revoked_at.is_(None))
        with self.engine.connect() as conn:
            return [KeyRecord.from_row(r) for r in conn.execute(query)]

    def create(
        self,
        name: str,
        scopes: list[str],
        user: str,
        rate: str | None = None,
        expires: str | None = None,
    ) -> tuple[str, KeyRecord]:
        """A new key named `name`; returns the key (shown once) and its record."""
        if not _NAME.match(name):
            raise BadRequest(
                f"Key name {name!r} is not allowed; use up to 64 letters, digits, "
                "'_', '.', '@' or '-', starting with a letter or digit."
            )
        granted = check_scopes(scopes)
        parse_rate(rate)
        now = datetime.now(UTC)
        expires_at = now + parse_span(expires) if expires else None
        key = new_key()
        with self.engine.begin() as conn:
            if self._active(conn, name) is not None:
                raise KeyExists(name)
            conn.execute(
                api_keys.insert().values(
                    name=name,
                    key_hash=hash_key(key),
                    prefix=key[:8],
                    scopes=granted,
                    rate=rate or None,
                    expires_at=expires_at,
                    created_at=now,
                    created_by=user,
                    updated_at=now,
                )
            )
            record = KeyRecord.from_row(self._active(conn, name))
            write_audit(conn, user, "key.create", f"key:{name}", None, record.to_json())
            notify_change(conn, "keys")
        return key, record

    def revoke(self, name: str, user: str) -> KeyRecord:
        """Revoke the active key `name`; every server refuses it within a refresh interval."""
        now = datetime.now(UTC)
        with self.engine.begin() as conn:
            row = self._get_active(conn, name)
            before = KeyRecord.from_row(row)
            conn.execute(
                api_keys.update()
                .where(api_keys.c.id == row.id)
                .values(revoked_at=now, revoked_by=user, updated_at=now)
            )
            after = KeyRecord.from_row(self._by_id(conn, row.id))
            write_audit(conn, user, "key.revoke", f"key:{name}", before.to_json(), after.to_json())
            notify_change(conn, "keys")
        return after

    def rotate(self, name: str, user: str) -> tuple[str, KeyRecord]:
        """A new secret for key `name` (same scopes, rate, expiry); the old one stops working."""
        now = datetime.now(UTC)
        key = new_key()
        with self.engine.begin() as conn:
            row = self._get_active(conn, name)
            before = KeyRecord.from_row(row)
            conn.execute(
                api_keys.update()
                .where(api_keys.c.id == row.id)
                .values(key_hash=hash_key(key), prefix=key[:8], updated_at=now)
            )
            after = KeyRecord.from_row(self._by_id(conn, row.id))
            write_audit(conn, user, "key.rotate", f"key:{name}", before.to_json(), after.to_json())
            notify_change(conn, "keys")
        return key, after

    def fingerprint(self) -> tuple[int, datetime | None]:
        """Changes whenever a key is created, revoked or rotated: one cheap read for pollers."""
        query = sa.select(sa.func.count(), sa.func.max(api_keys.c.updated_at))
        with self.engine.connect() as conn:
            count, latest = conn.execute(query).one()
        return int(count), latest

    def _active(self, conn: Connection, name: str) -> Any:
        return conn.execute(
            sa.select(api_keys).where((api_keys.c.name == name) & api_keys.c.revoked_at.is_(None))
        ).first()

    def _by_id(self, conn: Connection, key_id: int) -> Any:
        return conn.execute(sa.select(api_keys).where(api_keys.c.id == key_id)).one()

    def _get_active(self, conn: Connection, name: str) -> Any:
        row = self._active(conn, name)
        if row is None:
            known = sorted(
                {
                    r
                    for r in conn.execute(
                        sa.select(api_keys.c.name).where(api_keys.c.revoked_at.is_(None))
                    ).scalars()
                }
            )
            raise KeyNotFound(name, known)
        return row
