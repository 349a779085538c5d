"""/readyz follows the store, Redis and the upstreams' health; /healthz stays trivial."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from services import ServiceServer
from tests.support.redis_server import RedisServer, redis_server_binary


async def ready_state(client: Any, want: int, timeout: float = 10.0) -> dict[str, Any]:
    """Poll /readyz until it answers ``want``; its body."""
    deadline = time.monotonic() + timeout
    while True:
        r = await client.get("/readyz")
        if r.status_code == want or time.monotonic() > deadline:
            assert r.status_code == want, r.text
            assert r.headers["cache-control"] == "no-store"
            body: dict[str, Any] = r.json()
            return body
        await asyncio.sleep(0.05)


@pytest.fixture
def own_users() -> Any:
    with ServiceServer("users") as server:
        yield server


FAST_CHECKS = {
    "health_check": {
        "path": "/health",
        "interval": 0.1,
        "unhealthy_threshold": 1,
        "healthy_threshold": 1,
    }
}


async def test_readiness_follows_a_service_stopping(observed_gateway: Any, own_users: Any) -> None:
    overrides = {"rate_limits": {"plans": None}, "upstreams": {"users": FAST_CHECKS}}
    async with observed_gateway(overrides, env={"USERS_URL": own_users.url}) as obs:
        obs.gateway.readiness.max_age = 0
        body = await ready_state(obs.client, 200)
        assert body["status"] == "ok" and body["checks"]["store"] == "ok"
        assert body["checks"]["upstream users"] == "ok"

        own_users.stop()
        body = await ready_state(obs.client, 503)
        assert body["status"] == "unavailable"
        assert body["reasons"] == ["upstream users: no healthy target (0 of 1 available)"]
        assert own_users.url not in str(body)  # no addresses in a public answer
        assert (await obs.client.get("/healthz")).status_code == 200  # alive all the same

        own_users.start()
        await ready_state(obs.client, 200)


async def test_readiness_follows_redis(observed_gateway: Any) -> None:
    if redis_server_binary() is None:
        pytest.skip("redis-server is not installed")
    with RedisServer() as redis:
        overrides = {
            "rate_limits": {"plans": None},
            "state": {"backend": "redis", "redis_url": redis.url},
        }
        async with observed_gateway(overrides) as obs:
            obs.gateway.readiness.max_age = 0
            body = await ready_state(obs.client, 200)
            assert body["checks"]["redis"] == "ok"

            redis.stop()
            body = await ready_state(obs.client, 503)
            assert body["reasons"] == ["redis: unreachable"]
            assert str(redis.port) not in str(body)

            redis.start()
            await ready_state(obs.client, 200)


async def test_readiness_reports_the_store_and_start_up(observed_gateway: Any) -> None:
    async with observed_gateway({"rate_limits": {"plans": None}}) as obs:
        gateway = obs.gateway
        gateway.readiness.max_age = 0
        await ready_state(obs.client, 200)
        assert gateway.store is not None
        await gateway.store.aclose()
        body = await ready_state(obs.client, 503)
        assert body["reasons"] == ["store: not open"]
        await gateway.store.open()
        await ready_state(obs.client, 200)

        gateway.ready = False  # starting up, or draining before shutdown
        body = await ready_state(obs.client, 503)
        assert body["checks"] == {"gateway": "not serving (starting or shutting down)"}
        gateway.ready = True


async def test_concurrent_probes_share_one_check(observed_gateway: Any) -> None:
    async with observed_gateway({"rate_limits": {"plans": None}}) as obs:
        readiness = obs.gateway.readiness
        runs = 0
        original = readiness._run

        async def counted() -> Any:
            nonlocal runs
            runs += 1
            await asyncio.sleep(0.05)
            return await original()

        readiness._run = counted  # type: ignore[method-assign]
        readiness._last = None
        answers = await asyncio.gather(*(obs.client.get("/readyz") for _ in range(20)))
        assert {a.status_code for a in answers} == {200}
        assert runs == 1
