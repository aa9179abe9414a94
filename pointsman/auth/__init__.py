"""API keys (stored hashed), scopes, rate limits and the audit log."""

from pointsman.auth.audit import AuditEntry, read_audit
from pointsman.auth.keycache import Client, KeyCache
from pointsman.auth.keys import KeyBook, KeyRecord, hash_key
from pointsman.auth.ratelimit import RateLimiter
from pointsman.auth.scopes import check_scopes, covers
from pointsman.auth.sharedlimit import SharedRateLimiter

__all__ = [
    "AuditEntry",
    "Client",
    "KeyBook",
    "KeyCache",
    "KeyRecord",
    "RateLimiter",
    "SharedRateLimiter",
    "check_scopes",
    "covers",
    "hash_key",
    "read_audit",
]
