"""The cache stores: the same contract in memory and in a real Redis."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator

import pytest

from bff.cache import CacheStore, MemoryCacheStore, RedisCacheStore, cache_key
from bff.cache.memory import ENTRY_OVERHEAD
from tests.support.redis_server import RedisServer, redis_server_binary


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[CacheStore]:
    if request.param == "memory":
        yield MemoryCacheStore(max_bytes=1 << 20)
        return
    url = request.getfixturevalue("redis_url")
    redis = RedisCacheStore.from_url(url, key_prefix=f"test:{os.getpid()}:{id(request)}:")
    yield redis
    await redis.aclose()


async def test_get_set_delete(store: CacheStore) -> None:
    key = cache_key("t", "a")
    assert await store.get(key) is None
    await store.set(key, b"\x00value\xff", 30)
    assert await store.get(key) == b"\x00value\xff"
    await store.set(key, b"other", 30)
    assert await store.get(key) == b"other"
    await store.delete(key)
    assert await store.get(key) is None
    await store.delete(key)  # absent: nothing happens


async def test_many_in_order(store: CacheStore) -> None:
    keys = [cache_key("t", str(i)) for i in range(5)]
    await store.set_many({keys[1]: b"1", keys[3]: b"3"}, 30)
    assert await store.get_many(keys) == [None, b"1", None, b"3", None]
    assert await store.get_many([]) == []


async def test_zero_ttl_stores_nothing(store: CacheStore) -> None:
    key = cache_key("t", "zero")
    await store.set(key, b"x", 0)
    assert await store.get(key) is None


async def test_entries_expire(store: CacheStore) -> None:
    key = cache_key("t", "short")
    await store.set(key, b"x", 0.15)
    assert await store.get(key) == b"x"
    await asyncio.sleep(0.3)
    assert await store.get(key) is None


async def test_keys_are_checked(store: CacheStore) -> None:
    with pytest.raises(ValueError):
        await store.set("has space", b"x", 10)
    with pytest.raises(ValueError):
        await store.set("line\nbreak", b"x", 10)


def test_memory_expiry_follows_its_clock() -> None:
    clock = Clock()
    mem = MemoryCacheStore(max_bytes=10_000, clock=clock)
    asyncio.run(mem.set("k", b"v", 10))
    clock.now += 9.9
    assert asyncio.run(mem.get("k")) == b"v"
    clock.now += 0.2
    assert asyncio.run(mem.get("k")) is None
    assert len(mem) == 0 and mem.size == 0


async def test_memory_is_bounded_in_bytes_lru() -> None:
    entry = 100 + 1 + ENTRY_OVERHEAD  # value + one-character key + overhead
    mem = MemoryCacheStore(max_bytes=entry * 8)  # room for eight
    for name in "abcdefgh":
        await mem.set(name, b"x" * 100, 60)
    assert len(mem) == 8 and mem.evictions == 0
    await mem.get("a")  # recently used: survives the next evictions
    for name in "123":
        await mem.set(name, b"y" * 100, 60)
    assert mem.size <= mem.max_bytes
    assert await mem.get("a") == b"x" * 100
    assert await mem.get_many(["b", "c", "d"]) == [None, None, None]  # least recently used
    assert await mem.get("e") == b"x" * 100
    assert mem.evictions == 3


async def test_memory_refuses_an_entry_too_big_for_its_share() -> None:
    mem = MemoryCacheStore(max_bytes=8000)
    await mem.set("small", b"s", 60)
    await mem.set("big", b"b" * 2000, 60)
    assert await mem.get("big") is None
    assert await mem.get("small") == b"s"  # nothing flushed to make room for it


async def test_redis_down_reads_as_a_miss_and_recovers() -> None:
    if not redis_server_binary():
        pytest.skip("redis-server is not installed")
    with RedisServer() as server:
        store = RedisCacheStore.from_url(
            server.url, key_prefix="down:", socket_timeout=0.3, retry_interval=0.2
        )
        try:
            await store.set("k", b"v", 30)
            assert await store.get("k") == b"v"
            server.stop()
            assert await store.get("k") is None  # no exception: a miss
            await store.set("k2", b"v", 30)  # dropped
            assert store.failures >= 1
            assert not store.available
            server.start()
            await asyncio.sleep(0.3)
            await store.set("k3", b"back", 30)
            assert await store.get("k3") == b"back"
        finally:
            await store.aclose()
