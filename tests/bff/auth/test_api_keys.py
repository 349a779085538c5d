"""API keys against a real SQLite store: format, lifecycle, cache, last_used, timing."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from bff.auth import (
    ApiKeyCache,
    ApiKeyManager,
    ApiKeyVerifier,
    InvalidCredentials,
    KeySpec,
    LocalKeyEvents,
    Principal,
    generate_api_key,
    hash_api_key,
    key_prefix,
)
from bff.auth.last_used import LastUsedRecorder
from bff.errors import BadRequest, ServiceUnavailable
from bff.store import Store, StoreError


@dataclass
class Keys:
    store: Store
    manager: ApiKeyManager
    cache: ApiKeyCache
    verifier: ApiKeyVerifier
    last_used: LastUsedRecorder

    async def create(self, **kw: Any) -> tuple[str, str]:
        kw.setdefault("name", "test")
        record, plaintext = await self.manager.create(KeySpec(**kw))
        return record.id, plaintext

    async def verify(self, key: str | bytes, ip: str | None = "127.0.0.1") -> Principal:
        raw = key.encode() if isinstance(key, str) else key
        return await self.verifier.verify(raw, ip)

    async def reason(self, key: str | bytes, ip: str | None = "127.0.0.1") -> str:
        with pytest.raises(InvalidCredentials) as info:
            await self.verify(key, ip)
        assert info.value.message == "invalid API key"
        assert info.value.scheme == "ApiKey"
        return info.value.reason


@pytest.fixture
async def keys(sqlite_store: Store) -> AsyncIterator[Keys]:
    events = LocalKeyEvents()
    cache = ApiKeyCache(sqlite_store.api_keys.find_by_prefix, ttl=2.0)
    events.subscribe(cache.invalidate)
    last_used = LastUsedRecorder(sqlite_store.api_keys.touch_last_used, interval=3600)
    manager = ApiKeyManager(sqlite_store, events, tiers=["anonymous", "free", "pro"])
    yield Keys(sqlite_store, manager, cache, ApiKeyVerifier(cache, last_used), last_used)
    await cache.aclose()


# -- format --------------------------------------------------------------------------------------


def test_generated_keys() -> None:
    new = generate_api_key()
    assert new.plaintext.startswith("bff_") and len(new.plaintext) == 4 + 43
    assert new.prefix == new.plaintext[:12]
    assert new.key_hash == hash_api_key(new.plaintext) and len(new.key_hash) == 64
    assert new.plaintext not in new.key_hash
    assert generate_api_key().plaintext != new.plaintext
    assert key_prefix(new.plaintext.encode()) == new.prefix


@pytest.mark.parametrize(
    "value",
    [
        b"",
        b"bff_",
        b"bff_short",
        b"xyz_" + b"a" * 43,
        b"bff_" + b"a" * 42,
        b"bff_" + b"!" * 43,
        b"bff_" + b"a" * 200,
        b"bff_" + b"a" * 40 + b"\r\n1",
    ],
)
def test_malformed_keys_have_no_prefix(value: bytes) -> None:
    assert key_prefix(value) is None


# -- verification --------------------------------------------------------------------------------


async def test_a_created_key_authenticates(keys: Keys) -> None:
    key_id, plaintext = await keys.create(name="iot", owner="team", scopes=("a", "b"), tier="pro")
    p = await keys.verify(plaintext, "10.1.2.3")
    assert (p.kind, p.subject, p.tier, p.client_ip) == ("api_key", key_id, "pro", "10.1.2.3")
    assert p.scopes == frozenset({"a", "b"})
    assert p.claims == {"key_id": key_id, "key_name": "iot", "owner": "team"}


async def test_the_plaintext_is_never_stored(keys: Keys) -> None:
    key_id, plaintext = await keys.create()
    record = await keys.store.api_keys.get(key_id)
    assert record is not None
    assert plaintext not in repr(record) and plaintext[12:] not in repr(record)


async def test_wrong_secret_unknown_prefix_and_garbage(keys: Keys) -> None:
    _, plaintext = await keys.create()
    wrong_secret = plaintext[:12] + ("A" if plaintext[12] != "A" else "B") + plaintext[13:]
    assert await keys.reason(wrong_secret) == "wrong secret"
    assert await keys.reason("bff_ZZZZZZZZ" + plaintext[12:]) == "unknown key prefix"
    assert await keys.reason(plaintext[:-5]) == "not shaped like a bff API key"
    assert await keys.reason(b"\xff\x00garbage") == "not shaped like a bff API key"
    assert await keys.reason(plaintext + "x" * 200) == "not shaped like a bff API key"


async def test_revoked_key_fails_at_once_in_this_process(keys: Keys) -> None:
    key_id, plaintext = await keys.create()
    await keys.verify(plaintext)  # cached now
    await keys.manager.revoke(key_id)
    assert await keys.reason(plaintext) == "key revoked"
    await keys.manager.update(key_id, {"active": True})
    assert (await keys.verify(plaintext)).subject == key_id


async def test_expired_key(keys: Keys) -> None:
    now = [time.time()]
    verifier = ApiKeyVerifier(keys.cache, clock=lambda: now[0])
    _, plaintext = await keys.create(expires_at=time.time() + 60)
    assert (await verifier.verify(plaintext.encode(), None)).kind == "api_key"
    now[0] += 61
    with pytest.raises(InvalidCredentials) as info:
        await verifier.verify(plaintext.encode(), None)
    assert info.value.reason == "key expired"


async def test_ip_allowlist(keys: Keys) -> None:
    _, plaintext = await keys.create(allowed_ips=("10.0.0.0/8", "2001:db8::/32", "192.0.2.7"))
    for ip in ("10.9.8.7", "2001:db8::1", "192.0.2.7"):
        assert (await keys.verify(plaintext, ip)).client_ip == ip
    for ip in ("11.0.0.1", "192.0.2.8", None, "not-an-ip"):
        assert "allowlist" in await keys.reason(plaintext, ip)


async def test_other_processes_see_a_revocation_within_the_ttl(keys: Keys) -> None:
    # Another process: its own cache over the same store, not told of the change.
    now = [0.0]
    other = ApiKeyCache(keys.store.api_keys.find_by_prefix, ttl=2.0, clock=lambda: now[0])
    verifier = ApiKeyVerifier(other)
    key_id, plaintext = await keys.create()
    await verifier.verify(plaintext.encode(), None)
    await keys.manager.revoke(key_id)
    now[0] = 0.9  # still cached, still accepted
    await verifier.verify(plaintext.encode(), None)
    now[0] = 2.01  # the entry has expired: re-read, refused
    with pytest.raises(InvalidCredentials, match="invalid API key"):
        await verifier.verify(plaintext.encode(), None)


async def test_store_down_is_503_not_401(keys: Keys) -> None:
    _, plaintext = await keys.create()
    await keys.store.aclose()
    with pytest.raises(ServiceUnavailable):
        await keys.verify(plaintext)
    await keys.store.open()


async def test_record_edited_into_an_unsafe_state_is_refused(keys: Keys) -> None:
    key_id, plaintext = await keys.create()
    await keys.store.api_keys.update(key_id, {"scopes": ["ok", "bad\nscope"]})
    keys.cache.invalidate()
    assert "unusable" in await keys.reason(plaintext)


# -- the cache -----------------------------------------------------------------------------------


async def test_lookups_are_cached_and_shared(keys: Keys) -> None:
    _, plaintext = await keys.create()
    loads = keys.cache.loads
    await asyncio.gather(*(keys.verify(plaintext) for _ in range(20)))
    assert keys.cache.loads == loads + 1
    for _ in range(5):
        await keys.reason("bff_QQQQQQQQ" + plaintext[12:])
    assert keys.cache.loads == loads + 2  # unknown prefixes are cached too


async def test_busy_keys_are_refreshed_in_the_background() -> None:
    now = [0.0]
    reads: list[str] = []
    gate = asyncio.Event()

    async def lookup(prefix: str) -> None:
        reads.append(prefix)
        if len(reads) > 1:
            await gate.wait()
        return None

    cache = ApiKeyCache(lookup, ttl=2.0, clock=lambda: now[0])
    assert await cache.get("bff_AAAAAAAA") is None
    now[0] = 1.5  # past half the TTL: served from the cache, refreshed behind it
    assert await asyncio.wait_for(cache.get("bff_AAAAAAAA"), 0.5) is None
    await asyncio.sleep(0)
    assert len(reads) == 2
    gate.set()
    await asyncio.sleep(0.01)
    await cache.aclose()


async def test_invalidation_during_a_load_is_not_undone(keys: Keys) -> None:
    key_id, plaintext = await keys.create()
    started = asyncio.Event()
    release = asyncio.Event()
    real = keys.store.api_keys.find_by_prefix

    async def slow(prefix: str) -> Any:
        record = await real(prefix)
        started.set()
        await release.wait()
        return record

    cache = ApiKeyCache(slow, ttl=60)
    pending = asyncio.ensure_future(cache.get(plaintext[:12]))
    await started.wait()
    cache.invalidate(plaintext[:12])  # a revocation arrives while the old record is in flight
    release.set()
    assert (await pending) is not None
    assert cache._entries.get(plaintext[:12]) is None
    await cache.aclose()
    assert key_id


async def test_ttl_zero_disables_caching(keys: Keys) -> None:
    cache = ApiKeyCache(keys.store.api_keys.find_by_prefix, ttl=0)
    _, plaintext = await keys.create()
    for _ in range(3):
        await ApiKeyVerifier(cache).verify(plaintext.encode(), None)
    assert cache.loads == 3


async def test_cache_is_bounded(keys: Keys) -> None:
    cache = ApiKeyCache(keys.store.api_keys.find_by_prefix, ttl=60, maxsize=4)
    for i in range(10):
        await cache.get(f"bff_{i:08d}")
    assert len(cache._entries) == 4


# -- last_used -----------------------------------------------------------------------------------


async def test_last_used_is_recorded_in_the_background(keys: Keys) -> None:
    key_id, plaintext = await keys.create()
    await keys.verify(plaintext)
    assert key_id in keys.last_used.pending
    record = await keys.store.api_keys.get(key_id)
    assert record is not None and record.last_used is None  # not on the request's path
    await keys.last_used.flush()
    record = await keys.store.api_keys.get(key_id)
    assert record is not None and record.last_used is not None
    assert keys.last_used.pending == {}


async def test_last_used_survives_a_store_outage(keys: Keys) -> None:
    key_id, plaintext = await keys.create()
    await keys.verify(plaintext)
    await keys.store.aclose()
    await keys.last_used.flush()  # fails quietly, keeps the batch
    assert key_id in keys.last_used.pending
    await keys.store.open()
    await keys.last_used.flush()
    record = await keys.store.api_keys.get(key_id)
    assert record is not None and record.last_used is not None


async def test_last_used_background_task_flushes_and_stops(keys: Keys) -> None:
    recorder = LastUsedRecorder(keys.store.api_keys.touch_last_used, interval=0.05)
    key_id, _ = await keys.create()
    recorder.start()
    recorder.touch(key_id)
    await asyncio.sleep(0.2)
    record = await keys.store.api_keys.get(key_id)
    assert record is not None and record.last_used is not None
    recorder.touch(key_id)
    await recorder.aclose()  # the final flush
    assert recorder.pending == {}


# -- the manager's validation --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"name": ""}, "name"),
        ({"name": "a\nb"}, "control"),
        ({"name": "x" * 201}, "longer"),
        ({"owner": "o\x00"}, "owner"),
        ({"scopes": ("ok", "not ok")}, "invalid scope"),
        ({"scopes": ("\x07",)}, "invalid scope"),
        ({"tier": "gold"}, "unknown tier 'gold'"),
        ({"tier": "pro\n"}, "tier"),
        ({"allowed_ips": ("10.0.0.1/8",)}, "host bits set"),
        ({"allowed_ips": ("nope",)}, "invalid CIDR"),
        ({"expires_at": time.time() - 1}, "future"),
    ],
)
async def test_invalid_specs_are_bad_requests(
    keys: Keys, spec: dict[str, Any], message: str
) -> None:
    spec.setdefault("name", "test")
    with pytest.raises(BadRequest, match=message):
        await keys.manager.create(KeySpec(**spec))


async def test_update_validation(keys: Keys) -> None:
    key_id, _ = await keys.create()
    with pytest.raises(BadRequest, match="cannot be changed"):
        await keys.manager.update(key_id, {"key_hash": "x"})
    with pytest.raises(BadRequest, match="active"):
        await keys.manager.update(key_id, {"active": "yes"})
    assert await keys.manager.update("key_nope", {"active": False}) is None


async def test_sql_metacharacters_in_names(keys: Keys) -> None:
    name = "Robert'); DROP TABLE bff_api_keys;--"
    key_id, plaintext = await keys.create(name=name, owner="o'hara")
    assert (await keys.verify(plaintext)).claims == {
        "key_id": key_id,
        "key_name": name,
        "owner": "o'hara",
    }
    assert len(await keys.manager.list()) == 1


async def test_store_failures_surface_as_store_errors(keys: Keys) -> None:
    await keys.store.aclose()
    with pytest.raises(StoreError):
        await keys.create()
    await keys.store.open()


# -- timing ----------------------------------------------------------------------------------


async def test_unknown_prefix_and_wrong_secret_take_the_same_time(keys: Keys) -> None:
    """Statistically: the medians of both failures differ by no more than noise.

    Both are measured with the lookup cached (the steady state an attacker probes) and, to
    cover the store's side, uncached (every attempt reads the store).
    """
    _, plaintext = await keys.create()
    wrong_secret = (plaintext[:12] + "A" * 35).encode()
    unknown = ("bff_UNKNOWN0" + plaintext[12:]).encode()
    assert wrong_secret != plaintext.encode()

    async def sample(verifier: ApiKeyVerifier, key: bytes) -> float:
        start = time.perf_counter()
        with pytest.raises(InvalidCredentials):
            await verifier.verify(key, None)
        return time.perf_counter() - start

    async def medians(verifier: ApiKeyVerifier, rounds: int) -> tuple[float, float]:
        a: list[float] = []
        b: list[float] = []
        for _ in range(rounds):  # interleaved, so drift in machine load hits both alike
            a.append(await sample(verifier, unknown))
            b.append(await sample(verifier, wrong_secret))
        return statistics.median(a), statistics.median(b)

    for verifier, rounds in (
        (keys.verifier, 400),
        (ApiKeyVerifier(ApiKeyCache(keys.store.api_keys.find_by_prefix, ttl=0)), 60),
    ):
        await medians(verifier, 10)  # warm up
        unknown_median, wrong_median = await medians(verifier, rounds)
        slower, faster = max(unknown_median, wrong_median), min(unknown_median, wrong_median)
        # Generous: a real leak (a store hit for one but not the other, an early exit before
        # hashing) is many times larger than this bound.
        assert slower <= faster * 1.5 + 50e-6, (unknown_median, wrong_median)
