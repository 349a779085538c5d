"""A revocation in one process reaches the others' caches through Redis pub/sub."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest

from bff.auth import (
    ApiKeyCache,
    ApiKeyManager,
    ApiKeyVerifier,
    InvalidCredentials,
    KeySpec,
    RedisKeyEvents,
    key_events_for,
)
from bff.auth.key_events import LocalKeyEvents
from bff.store import Store
from tests.support.gateway import demo_config
from tests.support.servers import free_port


async def wait_for(condition: object, timeout: float = 2.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():  # type: ignore[operator]
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


async def test_revocation_reaches_another_process_at_once(
    redis_url: str, sqlite_store: Store
) -> None:
    channel = f"bff-test:{uuid.uuid4().hex}"
    admin_events = RedisKeyEvents(redis_url, channel=channel)
    gateway_events = RedisKeyEvents(redis_url, channel=channel)
    # A long TTL: only the Redis message can make the gateway forget the key.
    cache = ApiKeyCache(sqlite_store.api_keys.find_by_prefix, ttl=3600)
    gateway_events.subscribe(cache.invalidate)
    gateway_events.start()
    verifier = ApiKeyVerifier(cache)
    manager = ApiKeyManager(sqlite_store, admin_events)
    try:
        await asyncio.wait_for(gateway_events.subscribed.wait(), 5)
        record, key = await manager.create(KeySpec(name="k"))
        assert (await verifier.verify(key.encode(), None)).subject == record.id
        await manager.revoke(record.id)

        async def refused() -> bool:
            try:
                await verifier.verify(key.encode(), None)
            except InvalidCredentials:
                return True
            return False

        deadline = asyncio.get_running_loop().time() + 2.0
        while not await refused():
            assert asyncio.get_running_loop().time() < deadline, "revocation not seen in 2 s"
            await asyncio.sleep(0.01)
    finally:
        await gateway_events.aclose()
        await admin_events.aclose()
        await cache.aclose()


async def test_unreachable_redis_is_not_fatal(tmp_path: Path) -> None:
    events = RedisKeyEvents(f"redis://127.0.0.1:{free_port()}/0", channel="x")
    heard: list[str | None] = []
    events.subscribe(heard.append)
    events.start()
    await events.publish("bff_AAAAAAAA")  # logged, not raised; this process still hears it
    assert heard == ["bff_AAAAAAAA"]
    await asyncio.sleep(0.05)
    await events.aclose()


async def test_odd_messages_clear_everything(redis_url: str) -> None:
    channel = f"bff-test:{uuid.uuid4().hex}"
    listener = RedisKeyEvents(redis_url, channel=channel)
    heard: list[str | None] = []
    listener.subscribe(heard.append)
    listener.start()
    try:
        await asyncio.wait_for(listener.subscribed.wait(), 5)
        assert heard == [None]  # a (re)subscription clears the cache
        await listener._publisher.publish(channel, "not a prefix")
        await listener._publisher.publish(channel, "bff_BBBBBBBB")
        await wait_for(lambda: len(heard) == 3)
        assert heard == [None, None, "bff_BBBBBBBB"]
    finally:
        await listener.aclose()


@pytest.mark.parametrize(
    ("backend", "kind"), [("memory", LocalKeyEvents), ("redis", RedisKeyEvents)]
)
async def test_events_follow_the_state_backend(backend: str, kind: type) -> None:
    config = demo_config({}, {"state": {"backend": backend, "redis_url": "redis://127.0.0.1:1/0"}})
    events = key_events_for(config)
    assert type(events) is kind
    if backend == "redis":
        assert events.channel == "bff:auth:api-keys"  # type: ignore[attr-defined]
    await events.aclose()
