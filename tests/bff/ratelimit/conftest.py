"""Stores under test: memory and Redis, both on a clock the test moves."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Sequence

import pytest
from redis.asyncio import Redis

from bff.ratelimit import Algorithm, Batch, CounterSet, MemoryStore, RedisStore, Store, Window


class Clock:
    """Seconds that only move when a test says so."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def batch(
    *counters: Sequence[Window], keys: Sequence[str] | None = None, prefix: str = ""
) -> Batch:
    """One store batch: a key (``prefix{c}:<i>``) per counter, each holding some windows."""
    names = keys or [f"{prefix}{{c}}:{i}" for i in range(len(counters))]
    return list(names), CounterSet(tuple(tuple(c) for c in counters))


def minute(limit: int, burst: int | None = None) -> Window:
    return Window(60.0, limit, burst or limit)


def hour(limit: int) -> Window:
    return Window(3600.0, limit, limit)


@pytest.fixture
def key_prefix() -> str:
    """A prefix no other test (or concurrent test run) uses."""
    return f"bfftest:{uuid.uuid4().hex[:12]}:"


StoreFactory = Callable[[Algorithm], Store]


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest.fixture(params=["memory", "redis", "redis-pooled"])
async def make_store(
    request: pytest.FixtureRequest, clock: Clock
) -> AsyncIterator[Callable[[Algorithm], Store]]:
    """``make_store(algorithm)``: a memory or a Redis store on the test's clock (``redis``:
    through the store's own client; ``redis-pooled``: through redis-py's pool, as with TLS)."""
    made: list[Store] = []
    url = request.getfixturevalue("redis_url") if request.param != "memory" else None

    def make(algorithm: Algorithm) -> Store:
        store: Store
        if url is None:
            store = MemoryStore(algorithm, clock=clock)
        else:
            store = RedisStore(Redis.from_url(url), algorithm=algorithm, clock=clock)
            if request.param == "redis-pooled":
                store.resp = None
        made.append(store)
        return store

    yield make
    for store in made:
        await store.aclose()


@pytest.fixture
def clock() -> Clock:
    return Clock()
