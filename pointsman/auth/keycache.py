"""The request path's view of keys: an in-memory table by key hash, refreshed by polling.

No database round trip per request: the presented key is hashed once and looked up here.
A revoked or rotated key stops working once the poll (every refresh interval) sees it.
"""

from __future__ import annotations

import hmac
import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime

from pointsman.auth.keys import PREFIX, KeyBook, KeyRecord, hash_key, parse_rate
from pointsman.auth.ratelimit import capacity_of
from pointsman.auth.scopes import covers
from pointsman.errors import Forbidden, Unauthorized

log = logging.getLogger("pointsman.auth")
_NO_HASH = "0" * 64


@dataclass(frozen=True)
class Client:
    """Who is calling: the key's name (recorded with every prediction and admin action)."""

    name: str
    key_hash: str
    scopes: frozenset[str]
    rate: str | None
    rate_per_s: float | None
    burst: float
    expires_at: float | None  # epoch seconds
    revoked: bool

    @classmethod
    def from_record(cls, record: KeyRecord, replicas: int = 1) -> Client:
        parsed = parse_rate(record.rate)
        # Replicas on other machines count apart: each allows its share of the rate.
        per_s = parsed[1] / replicas if parsed else None
        return cls(
            name=record.name,
            key_hash=record.key_hash,
            scopes=frozenset(record.scopes),
            rate=record.rate,
            rate_per_s=per_s,
            burst=capacity_of(per_s) if per_s else 0.0,
            expires_at=record.expires_at.timestamp() if record.expires_at else None,
            revoked=record.revoked_at is not None,
        )

    def check(self, needed: tuple[str, ...]) -> None:
        """Raise Forbidden unless one of the `needed` scopes is granted."""
        if not needed or any(covers(self.scopes, n) for n in needed):
            return
        raise Forbidden(self.name, needed)


class KeyCache:
    """Key hash → Client for every key ever created (revoked and expired ones answer 401)."""

    def __init__(self, book: KeyBook, replicas: int = 1) -> None:
        self.book = book
        self.replicas = replicas
        self._clients: dict[str, Client] = {}
        self._fingerprint: object = None
        self._lock = threading.Lock()

    def refresh(self, force: bool = False) -> bool:
        """Reload the keys if any changed; True when it did."""
        fingerprint = self.book.fingerprint()
        if not force and fingerprint == self._fingerprint:
            return False
        with self._lock:
            records = self.book.list_keys()
            self._clients = {r.key_hash: Client.from_record(r, self.replicas) for r in records}
            self._fingerprint = fingerprint
        return True

    def client_by_hash(self, key_hash: str) -> Client | None:
        """The client of a stored key hash (a console session's key), or None."""
        return self._clients.get(key_hash)

    def authenticate(self, presented: str | None, now: float) -> Client:
        """The client a presented key belongs to; Unauthorized says why not (never the key)."""
        if not presented:
            raise Unauthorized(
                "missing",
                "Send an API key as `Authorization: Bearer pk_...` (or `X-API-Key: pk_...`); "
                "create one with `pointsman keys create NAME --scope predict:MODEL`.",
            )
        digest = hash_key(presented)
        client = self._clients.get(digest)
        # The table lookup is by hash (timing it tells nothing about a key); the comparison
        # is constant-time and runs for unknown keys too, so both paths take the same steps.
        expected = client.key_hash if client is not None else _NO_HASH
        if not hmac.compare_digest(expected, digest) or client is None:
            hint = "" if presented.startswith(PREFIX) else " (pointsman keys start with pk_)"
            raise Unauthorized("invalid", f"The API key is not valid{hint}.")
        if client.revoked:
            raise Unauthorized("revoked", f"The API key {client.name!r} was revoked.")
        if client.expires_at is not None and client.expires_at <= now:
            when = datetime.fromtimestamp(client.expires_at, UTC).isoformat(timespec="seconds")
            raise Unauthorized(
                "expired",
                f"The API key {client.name!r} expired at {when}; ask an admin for a new one "
                f"(`pointsman keys rotate {client.name}`).",
            )
        return client
