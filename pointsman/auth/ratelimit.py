"""Rate limits per key, shared by every worker process on one machine.

A token bucket per key lives in a small memory-mapped file in the project folder, updated
under an exclusive `flock`: a few microseconds per request and no database round trip, and
the workers of one `pointsman serve --workers N` draw from the same bucket. Replicas on
other machines have their own file: each enforces `rate / rate_limit_replicas`.
"""

from __future__ import annotations

import fcntl
import logging
import math
import mmap
import os
import struct
import threading
from pathlib import Path

log = logging.getLogger("pointsman.auth")

SLOTS = 4096
_SLOT = struct.Struct("<16sdd")  # key id (first 16 bytes of its hash), tokens, last refill time
_SIZE = SLOTS * _SLOT.size
_PROBE = 64
BURST_S = 0.5  # a key may send half a second's worth at once (50 of 100/s), at least 1


class RateLimiter:
    """Token buckets by key hash in a file shared across processes (or in memory)."""

    def __init__(self, path: Path | None) -> None:
        self._thread_lock = threading.Lock()
        self._fd: int | None = None
        if path is not None:
            try:
                self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
                if os.fstat(self._fd).st_size < _SIZE:
                    os.ftruncate(self._fd, _SIZE)
                self._map = mmap.mmap(self._fd, _SIZE)
                return
            except OSError as exc:
                if self._fd is not None:
                    os.close(self._fd)
                    self._fd = None
                log.warning(
                    "cannot share rate-limit counters through %s (%s): each worker process "
                    "now counts alone, so a key may get up to workers x its rate",
                    path,
                    exc,
                )
        self._map = mmap.mmap(-1, _SIZE)

    def take(self, key_hash: str, rate_per_s: float, capacity: float, now: float) -> float:
        """Spend one token: 0.0 if allowed, else the seconds until one is available."""
        ident = bytes.fromhex(key_hash[:32])
        with self._thread_lock:
            if self._fd is not None:
                fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                offset, tokens, stamp = self._find(ident, now)
                if stamp is None:
                    tokens, stamp = capacity, now
                elif now > stamp:
                    tokens = min(capacity, tokens + (now - stamp) * rate_per_s)
                    stamp = now
                # else: another process stamped a later time; never move it back (that would
                # refill the same interval twice)
                wait = 0.0
                if tokens >= 1.0:
                    tokens -= 1.0
                else:
                    wait = (1.0 - tokens) / rate_per_s
                _SLOT.pack_into(self._map, offset, ident, tokens, stamp)
                return wait
            finally:
                if self._fd is not None:
                    fcntl.flock(self._fd, fcntl.LOCK_UN)

    def _find(self, ident: bytes, now: float) -> tuple[int, float, float | None]:
        """The slot of `ident` (tokens, stamp), or a free or stalest one (stamp None)."""
        start = int.from_bytes(ident[:4], "little") % SLOTS
        stalest, stalest_stamp = start, math.inf
        for i in range(_PROBE):
            offset = ((start + i) % SLOTS) * _SLOT.size
            slot_id, tokens, stamp = _SLOT.unpack_from(self._map, offset)
            if slot_id == ident:
                return offset, tokens, stamp
            if slot_id == bytes(16):
                return offset, 0.0, None
            if stamp < stalest_stamp:
                stalest, stalest_stamp = offset, stamp
        return stalest, 0.0, None

    def close(self) -> None:
        self._map.close()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def capacity_of(rate_per_s: float) -> float:
    """The bucket size: half a second's worth of the rate, at least one request."""
    return max(1.0, rate_per_s * BURST_S)


def retry_after_header(wait_s: float) -> str:
    """Retry-After in whole seconds (HTTP allows nothing finer), at least 1."""
    return str(max(1, math.ceil(wait_s)))
