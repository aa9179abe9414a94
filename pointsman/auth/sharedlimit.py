"""Rate limits shared by every replica: one token bucket per key in Redis.

With `redis_url` set, each request spends a token of its key's bucket in Redis through one
Lua script, so the check and the spend are atomic across every worker of every replica, and
the bucket refills by Redis's own clock (replicas' clocks never disagree about it). The
script is sent by its sha1 (EVALSHA), and in full (EVAL) when Redis does not know it yet.
Buckets are hashes under `redis_key_prefix` that expire once they would be full again.

When Redis cannot be reached, `redis_down_policy` decides: `local` spends from this
machine's bucket file instead (rate / rate_limit_replicas, as without Redis), `open` admits,
`closed` refuses with 503. A warning is logged once per outage; Redis is tried again at most
every RETRY_S meanwhile, so an outage costs no time per request.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from typing import Literal

import redis.asyncio as aioredis
from redis.exceptions import NoScriptError, RedisError

from pointsman.auth.ratelimit import RateLimiter, capacity_of
from pointsman.errors import ConfigError, RateLimiterUnavailable

log = logging.getLogger("pointsman.auth")

DownPolicy = Literal["local", "open", "closed"]
TIMEOUT_S = 0.25  # a request waits at most this for Redis before the down policy applies
RETRY_S = 1.0  # during an outage, Redis is tried again this often (not on every request)

# KEYS[1]: the bucket; ARGV: rate per second, capacity, expiry in ms. Returns the seconds
# to wait, as a string (Redis would cut a Lua number to an integer): "0" when admitted.
SCRIPT = """
local rate = tonumber(ARGV[1])
local capacity = tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'stamp')
local tokens = tonumber(state[1])
local stamp = tonumber(state[2])
if tokens == nil or stamp == nil then
  tokens, stamp = capacity, now
elseif now > stamp then
  tokens = math.min(capacity, tokens + (now - stamp) * rate)
  stamp = now
end
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
else
  wait = (1 - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', string.format('%.17g', tokens),
           'stamp', string.format('%.17g', stamp))
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return string.format('%.17g', wait)
"""
SCRIPT_SHA = hashlib.sha1(SCRIPT.encode()).hexdigest()


class SharedRateLimiter:
    """Token buckets by key hash in Redis, one per key across every replica."""

    def __init__(
        self,
        url: str,
        prefix: str,
        down_policy: DownPolicy,
        local: RateLimiter,
        replicas: int = 1,
    ) -> None:
        try:
            self.redis = aioredis.Redis.from_url(
                url, socket_timeout=TIMEOUT_S, socket_connect_timeout=TIMEOUT_S
            )
        except ValueError as exc:
            raise ConfigError(
                f"redis_url {url!r} is not a Redis URL ({exc}); write "
                "redis://host:6379/0 (rediss:// for TLS), or leave it empty."
            ) from exc
        self.prefix = prefix
        self.down_policy = down_policy
        self.local = local
        self.replicas = replicas
        self.script, self.script_sha = SCRIPT, SCRIPT_SHA
        self.is_down = False
        self._retry_at = 0.0
        self.redis_calls = 0  # requests counted in Redis (tests and metrics read it)

    def bucket(self, key_hash: str) -> str:
        """The Redis key of a key's bucket."""
        return f"{self.prefix}ratelimit:{key_hash[:32]}"

    async def take(self, key_hash: str, rate_per_s: float, client: str) -> float:
        """Spend one token: 0.0 if allowed, else the seconds until one is available."""
        now = time.monotonic()
        if not self.is_down or now >= self._retry_at:
            try:
                wait = await self._spend(key_hash, rate_per_s)
            except RedisError as exc:
                self._lost(exc, now)
            else:
                if self.is_down:
                    self.is_down = False
                    log.info("Redis is reachable again: rate limits are shared again")
                return wait
        return self._fallback(key_hash, rate_per_s, client)

    async def _spend(self, key_hash: str, rate_per_s: float) -> float:
        capacity = capacity_of(rate_per_s)
        expiry_ms = math.ceil(capacity / rate_per_s * 1000) + 1000  # full again by then
        args = (self.bucket(key_hash), rate_per_s, capacity, expiry_ms)
        try:
            reply = await self.redis.evalsha(self.script_sha, 1, *args)
        except NoScriptError:  # a Redis that restarted, or never saw it: send it whole
            reply = await self.redis.eval(self.script, 1, *args)
        self.redis_calls += 1
        return float(reply)

    def _lost(self, exc: RedisError, now: float) -> None:
        self._retry_at = now + RETRY_S
        if not self.is_down:
            self.is_down = True
            log.warning(
                "Redis cannot be reached for rate limits (%s); redis_down_policy = %s: %s",
                exc,
                self.down_policy,
                FALLBACKS[self.down_policy],
            )

    def _fallback(self, key_hash: str, rate_per_s: float, client: str) -> float:
        if self.down_policy == "open":
            return 0.0
        if self.down_policy == "closed":
            raise RateLimiterUnavailable(client, RETRY_S)
        share = rate_per_s / self.replicas
        return self.local.take(key_hash, share, capacity_of(share), time.time())

    async def close(self) -> None:
        await self.redis.aclose()


FALLBACKS = {
    "local": "each machine counts in its own bucket meanwhile (rate / rate_limit_replicas)",
    "open": "requests are admitted without a limit meanwhile",
    "closed": "keys with a rate limit are refused (503) meanwhile",
}
