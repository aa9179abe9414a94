"""The Redis token bucket: atomic across replicas, expiring, and what happens when Redis is gone."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import AsyncIterator

import pytest
import redis

from pointsman.auth import RateLimiter, SharedRateLimiter, hash_key
from pointsman.auth.sharedlimit import RETRY_S, SCRIPT, DownPolicy
from pointsman.errors import ConfigError, RateLimiterUnavailable
from tests.conftest import REDIS_URL, free_port

KEY = hash_key("pk_shared")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def limiter(
    url: str, prefix: str, policy: DownPolicy = "local", replicas: int = 1
) -> SharedRateLimiter:
    return SharedRateLimiter(url, prefix, policy, RateLimiter(None), replicas)


async def admitted(shared: SharedRateLimiter, n: int, rate: float) -> int:
    return sum([await shared.take(KEY, rate, "k") == 0.0 for _ in range(n)])


@pytest.mark.redis
@pytest.mark.anyio
async def test_a_bucket_holds_half_a_second_then_refills_at_the_rate(redis_prefix: str) -> None:
    shared = limiter(REDIS_URL, redis_prefix)
    try:
        assert await admitted(shared, 5, 10.0) == 5  # 10/s: a burst of 5
        wait = await shared.take(KEY, 10.0, "k")
        assert 0.0 < wait <= 0.1
        await asyncio.sleep(0.25)
        assert await admitted(shared, 5, 10.0) == 2  # 0.25 s at 10/s
        ttl_ms = await shared.redis.pttl(shared.bucket(KEY))
        assert 0 < ttl_ms <= 1500  # gone once it would be full again (0.5 s), plus 1 s
        assert shared.bucket(KEY).startswith(redis_prefix)
    finally:
        await shared.close()


@pytest.mark.redis
@pytest.mark.anyio
async def test_two_replicas_draw_from_one_bucket(redis_prefix: str) -> None:
    a, b = limiter(REDIS_URL, redis_prefix), limiter(REDIS_URL, redis_prefix)
    try:
        answers = await asyncio.gather(*(r.take(KEY, 20.0, "k") for r in [a, b] * 20))
        assert sum(w == 0.0 for w in answers) == 10  # 20/s: one burst of 10 between them
    finally:
        await a.close()
        await b.close()


@pytest.mark.redis
@pytest.mark.anyio
async def test_the_script_is_sent_whole_when_redis_does_not_know_it(redis_prefix: str) -> None:
    shared = limiter(REDIS_URL, redis_prefix)
    # The same script, made new to this Redis (as after a restart) without flushing the
    # script cache that others share.
    shared.script = f"{SCRIPT}-- {redis_prefix}\n"
    shared.script_sha = hashlib.sha1(shared.script.encode()).hexdigest()
    try:
        assert await shared.redis.script_exists(shared.script_sha) == [False]
        assert await shared.take(KEY, 10.0, "k") == 0.0  # EVALSHA failed, EVAL did it
        assert await shared.redis.script_exists(shared.script_sha) == [True]
        assert await shared.take(KEY, 10.0, "k") == 0.0  # by its sha1 from now on
        assert shared.redis_calls == 2
    finally:
        await shared.close()


def test_a_malformed_url_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="redis_url 'http://x' is not a Redis URL"):
        limiter("http://x", "p:")


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("policy", "admits"),
    [("local", 5), ("open", 20)],  # local: this machine's bucket, 20/s over 2 replicas
)
async def test_unreachable_redis_falls_back_by_policy_and_warns_once(
    policy: DownPolicy, admits: int, caplog: pytest.LogCaptureFixture
) -> None:
    shared = limiter(f"redis://127.0.0.1:{free_port()}/0", "p:", policy, replicas=2)
    with caplog.at_level(logging.WARNING, "pointsman.auth"):
        assert await admitted(shared, 20, 20.0) == admits
    await shared.close()
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1, warnings
    assert f"redis_down_policy = {policy}" in warnings[0]
    assert shared.is_down and shared.redis_calls == 0


@pytest.mark.anyio
async def test_unreachable_redis_with_policy_closed_refuses() -> None:
    shared = limiter(f"redis://127.0.0.1:{free_port()}/0", "p:", "closed")
    with pytest.raises(RateLimiterUnavailable, match="redis_down_policy = closed"):
        await shared.take(KEY, 10.0, "k")
    await shared.close()


class Relay:
    """A TCP relay on loopback to the real Redis, to cut and restore its connections."""

    def __init__(self) -> None:
        self.port = free_port()
        self.server: asyncio.Server | None = None
        self.writers: list[asyncio.StreamWriter] = []

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)

    async def cut(self) -> None:
        assert self.server is not None
        self.server.close()
        for writer in self.writers:
            writer.close()
        await self.server.wait_closed()
        self.writers = []

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        target = redis.connection.parse_url(REDIS_URL)
        up_reader, up_writer = await asyncio.open_connection(target["host"], target["port"])
        self.writers += [writer, up_writer]

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError, OSError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


@pytest.fixture
async def relay() -> AsyncIterator[Relay]:
    relay = Relay()
    await relay.start()
    yield relay
    with contextlib.suppress(Exception):
        await relay.cut()


@pytest.mark.redis
@pytest.mark.anyio
async def test_an_outage_falls_back_then_shares_again_when_redis_is_back(
    redis_prefix: str, relay: Relay, caplog: pytest.LogCaptureFixture
) -> None:
    shared = limiter(f"redis://127.0.0.1:{relay.port}/0", redis_prefix)
    try:
        with caplog.at_level(logging.INFO, "pointsman.auth"):
            assert await shared.take(KEY, 100.0, "k") == 0.0 and shared.redis_calls == 1
            await relay.cut()
            for _ in range(10):
                await shared.take(KEY, 100.0, "k")  # counted locally, Redis not retried
            assert shared.is_down and shared.redis_calls == 1
            await relay.start()
            await asyncio.sleep(RETRY_S + 0.1)
            assert await shared.take(KEY, 100.0, "k") == 0.0
            assert not shared.is_down and shared.redis_calls == 2
    finally:
        await shared.close()
    said = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert [level for level, _ in said] == ["WARNING", "INFO"], said
    assert "reachable again" in said[1][1]
