"""Both algorithms on both stores: the same decisions, to the millisecond."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest
from redis.asyncio import Redis

from bff.errors import ServiceUnavailable
from bff.ratelimit import (
    Algorithm,
    Batch,
    Decision,
    MemoryStore,
    RedisStore,
    Store,
    Window,
    token_bucket,
)
from bff.ratelimit.decision import Tightest
from tests.bff.ratelimit.conftest import Clock, batch, hour, minute
from tests.support.servers import free_port

MakeStore = Callable[[Algorithm], Store]


# -- token bucket ------------------------------------------------------------------------------


async def test_token_bucket_holds_its_limit_then_refills(
    make_store: MakeStore, clock: Clock, key_prefix: str
) -> None:
    store = make_store("token_bucket")
    b = [batch([minute(60)], prefix=key_prefix)]
    assert await store.decide(b, 1) == Decision(True, 60, 59, 1000, 0)
    d = await store.decide(b, 59)
    assert (d.allowed, d.remaining, d.reset_ms) == (True, 0, 60_000)
    d = await store.decide(b, 1)
    assert (d.allowed, d.remaining, d.retry_ms) == (False, 0, 1000)
    clock.advance(1.0)  # one token back
    assert (await store.decide(b, 1)).allowed
    assert not (await store.decide(b, 1)).allowed
    clock.advance(30.0)
    d = await store.decide(b, 1)
    assert (d.allowed, d.remaining, d.reset_ms) == (True, 29, 31_000)


async def test_burst_sizes_the_bucket(make_store: MakeStore, clock: Clock, key_prefix: str) -> None:
    store = make_store("token_bucket")
    b = [batch([minute(60, burst=10)], prefix=key_prefix)]
    results = [(await store.decide(b, 1)).allowed for _ in range(11)]
    assert results == [True] * 10 + [False]
    clock.advance(5.0)  # 60 per minute: one token a second
    d = await store.decide(b, 5)
    assert (d.allowed, d.limit, d.remaining) == (True, 10, 0)


async def test_a_refused_request_costs_nothing(
    make_store: MakeStore, clock: Clock, key_prefix: str
) -> None:
    store = make_store("token_bucket")
    b = [batch([minute(10)], prefix=key_prefix)]
    assert (await store.decide(b, 8)).remaining == 2
    d = await store.decide(b, 3)
    assert (d.allowed, d.remaining, d.retry_ms) == (False, 2, 6000)  # a token every 6 s
    assert (await store.decide(b, 2)).allowed


async def test_the_tightest_window_is_reported(
    make_store: MakeStore, clock: Clock, key_prefix: str
) -> None:
    store = make_store("token_bucket")
    b = [batch([minute(10), hour(12)], prefix=key_prefix)]
    d = await store.decide(b, 10)
    assert (d.allowed, d.limit, d.remaining) == (True, 10, 0)  # the minute: 0 left, hour: 2
    clock.advance(60.0)
    d = await store.decide(b, 2)
    assert (d.allowed, d.limit, d.remaining) == (True, 12, 0)  # now the hour is tighter
    d = await store.decide(b, 1)
    assert (d.allowed, d.limit) == (False, 12)
    assert 239_000 < d.retry_ms <= 240_001  # 0.8 of a token at 300 s per token


async def test_all_counters_allow_or_none_is_charged(
    make_store: MakeStore, clock: Clock, key_prefix: str
) -> None:
    store = make_store("token_bucket")
    plan, route = [minute(100)], [minute(1)]
    both = [batch(plan, route, prefix=key_prefix)]
    assert (await store.decide(both, 1)).allowed
    d = await store.decide(both, 1)
    assert not d.allowed and (d.limit, d.remaining) == (1, 0)
    only_plan = [batch(plan, keys=[f"{key_prefix}{{c}}:0"])]
    assert (await store.decide(only_plan, 1, charge=False)).remaining == 98  # 99 left: uncharged


# -- sliding window ---------------------------------------------------------------------------


async def test_sliding_window_weights_the_previous_window(
    make_store: MakeStore, clock: Clock, key_prefix: str
) -> None:
    clock.now = 60.0 * 20_000  # the start of a minute
    store = make_store("sliding_window")
    b = [batch([minute(10)], prefix=key_prefix)]
    assert (await store.decide(b, 10)).remaining == 0
    d = await store.decide(b, 1)
    # Refused until the next minute, plus the time for 10 x (1 - elapsed) to fit one more.
    assert (d.allowed, d.remaining, d.reset_ms, d.retry_ms) == (False, 0, 60_000, 66_000)
    clock.advance(90.0)  # half-way through the next minute: 10 x 0.5 still count
    d = await store.decide(b, 5)
    assert (d.allowed, d.remaining, d.reset_ms) == (True, 0, 30_000)
    d = await store.decide(b, 1)
    assert (d.allowed, d.retry_ms) == (False, 6000)
    clock.advance(6.0)
    assert (await store.decide(b, 1)).allowed
    clock.advance(120.0)  # two quiet minutes: everything forgotten
    assert (await store.decide(b, 1)).remaining == 9


async def test_sliding_window_admits_at_most_twice_the_limit_in_any_window(
    make_store: MakeStore, clock: Clock, key_prefix: str
) -> None:
    """The documented error bound, at its worst: the previous window's requests all at its end."""
    start = clock.now = 60.0 * 20_000 + 59.9
    store = make_store("sliding_window")
    b = [batch([minute(100)], prefix=key_prefix)]
    admitted = 0
    for _ in range(100):  # the whole quota at the very end of a minute...
        admitted += (await store.decide(b, 1)).allowed
    while clock.now < start + 59.95:  # ...then a request every 0.1 s for the next 60 s
        clock.advance(0.1)
        admitted += (await store.decide(b, 1)).allowed
    assert 190 < admitted < 200  # a true sliding window would admit 100


async def test_sliding_window_ignores_burst(
    make_store: MakeStore, clock: Clock, key_prefix: str
) -> None:
    store = make_store("sliding_window")
    d = await store.decide([batch([Window(60.0, 5, 5)], prefix=key_prefix)], 5)
    assert (d.allowed, d.limit, d.remaining) == (True, 5, 0)


# -- memory vs Redis ---------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ["token_bucket", "sliding_window"])
async def test_memory_and_redis_decide_alike(
    algorithm: Algorithm, redis_url: str, key_prefix: str
) -> None:
    clock = Clock(1_700_000_000.123)
    memory = MemoryStore(algorithm, clock=clock)
    redis = RedisStore(Redis.from_url(redis_url), algorithm=algorithm, clock=clock)
    own = batch([minute(7, burst=3), hour(40)], [Window(1.0, 5, 5)], prefix=key_prefix)
    shared = batch([Window(10.0, 9, 9)], keys=[f"{key_prefix}{{g:all}}"])
    rnd = random.Random(6)
    steps = [0.0, 0.001, 0.1, 0.5, 1.0, 3.0, 60 / 7, 20.0, 61.0]
    try:
        outcomes = []
        for _ in range(500):
            clock.advance(rnd.choice(steps))
            cost = rnd.choice([1, 1, 1, 2, 5])
            batches = [own, shared] if rnd.random() < 0.3 else [own]
            expected = memory.decide_now(batches, cost)
            assert await redis.decide(batches, cost) == expected
            outcomes.append(expected.allowed)
        assert redis.local_decisions == 0
        assert 20 < sum(outcomes) < 480  # the sequence exercised both answers
    finally:
        await redis.aclose()


def _reference(
    state: dict[str, dict[str, float]], batches: list[Batch], cost: int, now: float
) -> Decision:
    """A decision by algorithms.token_bucket itself, folded by decision.Tightest."""
    tightest = Tightest()
    writes: list[tuple[str, tuple[tuple[str, float], ...]]] = []
    for keys, counter_set in batches:
        for key, windows in zip(keys, counter_set.counters, strict=True):
            fields = state.get(key, {})
            for w in windows:
                ok, rem, reset, retry, out = token_bucket(
                    fields, w.field, now, w.span, w.limit, w.capacity, cost
                )
                tightest.add(ok, w.capacity, rem, reset, retry)
                if out is not None:
                    writes.append((key, out))
    decision = tightest.decision()
    if decision.allowed:
        for key, out in writes:
            state.setdefault(key, {}).update(out)
    return decision


async def test_the_memory_token_bucket_is_algorithms_token_bucket() -> None:
    """The memory store inlines algorithms.token_bucket: the same decisions, without Redis."""
    clock = Clock(1_700_000_000.123)
    memory = MemoryStore("token_bucket", clock=clock)
    own = batch([minute(7, burst=3), hour(40)], [Window(1.0, 5, 5)])
    shared = batch([Window(10.0, 9, 9)], keys=["{g:all}"])
    state: dict[str, dict[str, float]] = {}
    rnd = random.Random(7)
    steps = [0.0, 0.001, 0.1, 0.5, 1.0, 3.0, 60 / 7, 20.0, 61.0]
    outcomes = []
    for _ in range(2000):
        clock.advance(rnd.choice(steps))
        cost = rnd.choice([1, 1, 1, 2, 5])
        batches = [own, shared] if rnd.random() < 0.3 else [own]
        expected = _reference(state, batches, cost, clock.now)
        assert memory.decide_now(batches, cost) == expected
        outcomes.append(expected.allowed)
    assert 100 < sum(outcomes) < 1900


# -- Redis specifics ---------------------------------------------------------------------------


async def test_redis_keys_expire_with_their_state(
    redis_url: str, redis_client: Redis, key_prefix: str
) -> None:
    store = RedisStore(Redis.from_url(redis_url))  # the server's clock
    key = f"{key_prefix}{{u:1}}:p:free"
    try:
        first = await store.decide([batch([minute(60), hour(1000)], keys=[key])], 1)
        second = await store.decide([batch([minute(60), hour(1000)], keys=[key])], 1)
    finally:
        await store.aclose()
    assert first.remaining == 59 and second.remaining == 58
    ttl = await redis_client.pttl(key)
    assert 7000 < ttl <= 8200  # two tokens of the hour window (3.6 s each), plus a second
    assert set(await redis_client.hkeys(key)) == {b"60", b"3600"}


@pytest.mark.parametrize("client", ["own", "redis-py pool"])
async def test_the_script_is_loaded_again_after_a_flush(
    redis_url: str, redis_client: Redis, key_prefix: str, clock: Clock, client: str
) -> None:
    store = RedisStore(Redis.from_url(redis_url), clock=clock)
    if client == "redis-py pool":  # as with TLS
        store.resp = None
    b = [batch([minute(5)], prefix=key_prefix)]
    shared = batch([minute(5)], keys=[f"{key_prefix}{{g:x}}"])
    try:
        assert (await store.decide(b, 1)).remaining == 4
        await redis_client.script_flush()
        assert (await store.decide(b, 1)).remaining == 3
        await redis_client.script_flush()
        assert (await store.decide([*b, shared], 1)).remaining == 2  # the pipelined path too
    finally:
        await store.aclose()
    assert store.local_decisions == 0


async def test_a_refusal_by_a_global_counter_gives_back_the_callers_charge(
    redis_url: str, key_prefix: str, clock: Clock
) -> None:
    store = RedisStore(Redis.from_url(redis_url), clock=clock)
    own = batch([minute(10)], prefix=key_prefix)
    shared = batch([minute(1)], keys=[f"{key_prefix}{{g:all}}"])
    try:
        assert (await store.decide([own, shared], 1)).allowed
        d = await store.decide([own, shared], 1)
        assert not d.allowed and d.limit == 1
        assert (await store.decide([own], 1, charge=False)).remaining == 8  # 9 left
    finally:
        await store.aclose()


async def test_unreachable_redis_fails_open_or_closed() -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    b = [batch([minute(2)])]
    open_store = RedisStore.from_url(dead, fail_open=True)
    closed = RedisStore.from_url(dead, fail_open=False)
    try:
        assert (await open_store.decide(b, 1)).remaining == 1
        assert (await open_store.decide(b, 1)).remaining == 0  # the local counters hold
        assert open_store.local_decisions == 2 and open_store.outages == 1
        with pytest.raises(ServiceUnavailable):
            await closed.decide(b, 1)
    finally:
        await open_store.aclose()
        await closed.aclose()


# -- the memory store's bounds -----------------------------------------------------------------


async def test_memory_holds_at_most_max_keys(clock: Clock) -> None:
    store = MemoryStore(max_keys=100, clock=clock)
    for i in range(5000):
        store.decide_now([batch([minute(60)], keys=[f"{{ip:10.0.{i // 256}.{i % 256}}}:p"])], 1)
    assert len(store) == 100
    # The most recent callers are the ones kept.
    kept = store.decide_now([batch([minute(60)], keys=["{ip:10.0.19.135}:p"])], 1)
    assert kept.remaining == 58


async def test_a_steady_caller_keeps_the_memory_store_small(clock: Clock) -> None:
    store = MemoryStore(clock=clock)
    b = [batch([minute(60), hour(1000)], keys=["{u:1}:p"])]
    for _ in range(20_000):
        clock.advance(4.0)  # a little slower than the hour refills (3.6 s): never refused
        assert store.decide_now(b, 1).allowed
    assert len(store) == 1
    assert len(store._expiries) <= 2 * len(store) + 64  # the expiry heap does not grow


async def test_an_expired_counter_starts_over(clock: Clock) -> None:
    store = MemoryStore(clock=clock)
    b = [batch([minute(60)], keys=["a"])]
    assert store.decide_now(b, 30).remaining == 30
    clock.advance(63.0)  # full again after 30 s; kept twice as long (one re-insert, not many)
    assert store.decide_now([batch([minute(60)], keys=["b"])], 1).remaining == 59
    assert len(store) == 1
    assert store.decide_now(b, 1).remaining == 59
    assert len(store) == 2


async def test_idle_counters_expire(clock: Clock) -> None:
    store = MemoryStore("sliding_window", clock=clock)
    store.decide_now([batch([minute(60)], keys=["a"])], 1)
    store.decide_now([batch([Window(1.0, 5, 5)], keys=["b"])], 1)
    assert len(store) == 2
    clock.advance(5.0)
    assert len(store) == 1  # "b" (a one-second window) is forgotten; "a" still matters
    clock.advance(300.0)
    assert len(store) == 0
