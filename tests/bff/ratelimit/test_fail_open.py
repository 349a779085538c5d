"""Redis going away mid-traffic: local limits at once, a log line, a metric, and recovery."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from redis.asyncio import Redis

from bff.ratelimit import RedisStore
from tests.bff.ratelimit.support import Limited, limited_gateway, quota
from tests.conftest import SampleServices
from tests.support.redis_server import RedisServer, redis_server_binary

pytestmark = pytest.mark.skipif(redis_server_binary() is None, reason="needs redis-server")

SOCKET_TIMEOUT = 0.3


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


def overrides(server: RedisServer, *, fail_open: bool) -> dict[str, Any]:
    return {
        "state": {
            "backend": "redis",
            "redis_url": server.url,
            "redis_socket_timeout": SOCKET_TIMEOUT,
            "key_prefix": f"t{uuid.uuid4().hex[:6]}:",
        },
        "rate_limits": {"plans": {"anonymous": {"per_minute": 5}}, "fail_open": fail_open},
    }


def store_of(gw: Limited) -> RedisStore:
    limiter = gw.gateway.rate_limiter
    assert limiter is not None and isinstance(limiter.store, RedisStore)
    return limiter.store


async def keys(server: RedisServer) -> list[bytes]:
    client = Redis.from_url(server.url)
    try:
        return [k async for k in client.scan_iter("*rl:*")]
    finally:
        await client.aclose()


async def until(condition: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not await condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.1)


async def test_fail_open_uses_local_limits_and_comes_back(
    services: SampleServices, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="bff.ratelimit")
    async with limited_gateway(services, overrides(redis_server, fail_open=True)) as gw:
        client, store = gw.client(), store_of(gw)
        r = await client.get("/api/users/1")
        assert quota(r) == (5, 4, 12) and await keys(redis_server)

        redis_server.stop()
        started = time.monotonic()
        r = await client.get("/api/users/1")
        assert time.monotonic() - started < 1.0
        assert r.status_code == 200 and quota(r) == (5, 4, 12)  # local counters start afresh
        assert not store.available and store.outages == 1
        statuses = [(await client.get("/api/users/1")).status_code for _ in range(5)]
        assert statuses == [200] * 4 + [429]  # the local limit holds
        assert store.local_decisions == 6
        # The rate limiter's own line (the demo's /api/users is also cached in the same Redis).
        unreachable = [
            r
            for r in caplog.records
            if r.name == "bff.ratelimit" and "Redis unreachable" in r.message
        ]
        assert len(unreachable) == 1  # logged once, not per request

        redis_server.start()

        async def shared_again() -> bool:
            await client.get("/api/users/2", headers={"x-request-id": "probe"})
            return store.available and bool(await keys(redis_server))

        await until(shared_again)
        assert any("reachable again" in m for m in caplog.messages)
        r = await client.get("/api/users/1")
        assert r.status_code == 200 and quota(r) is not None and quota(r)[1] < 5  # type: ignore[index]
        assert gw.gateway.rate_limiter is not None
        stats = gw.gateway.rate_limiter.stats()
        assert stats["redis_available"] is True and stats["outages"] == 1


async def test_a_hung_redis_holds_no_request_past_the_socket_timeout(
    services: SampleServices, redis_server: RedisServer
) -> None:
    async with limited_gateway(services, overrides(redis_server, fail_open=True)) as gw:
        client, store = gw.client(), store_of(gw)
        assert (await client.get("/api/users/1")).status_code == 200
        redis_server.pause()
        try:
            started = time.monotonic()
            first = await client.get("/api/users/1")
            waited = time.monotonic() - started
            assert first.status_code == 200
            assert waited < SOCKET_TIMEOUT + 0.7  # the timeout, then local limits
            started = time.monotonic()
            for _ in range(3):
                assert (await client.get("/api/users/1")).status_code == 200
            assert time.monotonic() - started < SOCKET_TIMEOUT  # nobody waits on Redis again
            assert not store.available
        finally:
            redis_server.resume()

        async def shared_again() -> bool:
            await client.get("/api/users/2")  # requests are what schedule the probes
            return store.available

        await until(shared_again)


async def test_fail_closed_answers_503_until_redis_returns(
    services: SampleServices, redis_server: RedisServer
) -> None:
    async with limited_gateway(services, overrides(redis_server, fail_open=False)) as gw:
        client = gw.client()
        assert (await client.get("/api/users/1")).status_code == 200
        redis_server.stop()
        for _ in range(3):
            started = time.monotonic()
            r = await client.get("/api/users/1")
            assert r.status_code == 503 and time.monotonic() - started < 1.0
            assert r.json()["error"]["code"] == "SERVICE_UNAVAILABLE"
            assert r.headers["retry-after"] == "1"
        assert (await client.get("/healthz")).status_code == 200  # never limited
        redis_server.start()

        async def served() -> bool:
            return (await client.get("/api/users/1")).status_code == 200

        await until(served)
