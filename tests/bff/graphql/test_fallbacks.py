"""Field fallbacks (stale_if_error) with the service really stopped, and shared loader caches."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

import httpx
import pytest

from bff.cache import MemoryCacheStore
from bff.errors import BadRequest, UpstreamError, UpstreamTimeout
from bff.gateway import Gateway
from bff.graphql import ClientCache, Context, LoaderSpec
from bff.graphql.loader_cache import LoaderCache
from services import SERVICE_NAMES, ServiceServer
from tests.bff.graphql.delivery_support import client_for, own_gateway
from tests.support.gateway import gql

MODULES = ["schema.users", "schema.orders", "schema.products", "schema.reviews"]


@pytest.fixture
def own_services() -> Iterator[dict[str, ServiceServer]]:
    """Services private to one test, so stopping one disturbs nobody else."""
    started = {n: ServiceServer(n).start() for n in SERVICE_NAMES}
    yield started
    for s in started.values():
        s.stop()


def env_of(servers: dict[str, ServiceServer]) -> dict[str, str]:
    env = {f"{n.upper()}_URL": s.url for n, s in servers.items()}
    env["USERS_NEXT_URL"] = servers["users"].url
    return env


def fast_failures(servers: dict[str, ServiceServer], **extra: Any) -> dict[str, Any]:
    """Upstreams that fail fast, and no whole-response cache (each request executes)."""
    upstreams = {
        n: {"targets": [servers[n].url], "timeout": {"connect": 0.5, "read": 0.5}}
        | {"retries": {"attempts": 0}, "health_check": None}
        for n in SERVICE_NAMES
    }
    overrides: dict[str, Any] = {"upstreams": upstreams, "graphql": {"response_cache": False}}
    for key, value in extra.items():
        overrides[key] = {**overrides.get(key, {}), **value}
    return overrides


@pytest.fixture
async def stale_client(
    own_services: dict[str, ServiceServer],
) -> AsyncIterator[tuple[httpx.AsyncClient, dict[str, ServiceServer]]]:
    async with (
        own_gateway(env_of(own_services), fast_failures(own_services)) as gw,
        client_for(gw) as client,
    ):
        yield client, own_services


async def test_a_stopped_service_serves_the_last_good_value(stale_client: Any) -> None:
    client, servers = stale_client
    query = "query P($id: ID!) { product(id: $id) { id name stock } }"
    fresh = await gql(client, "web", query, {"id": "3"})
    assert fresh.status_code == 200 and "errors" not in fresh.json()
    servers["products"].stop()
    r = await gql(client, "web", query, {"id": "3"})
    assert r.status_code == 200
    body = r.json()
    assert body["data"] == fresh.json()["data"]
    assert "errors" not in body
    assert body["extensions"]["degraded"] == ["product"]
    assert r.headers["cache-control"] == "no-store"  # a stale answer is never cached
    # A product never loaded has no fallback: the usual error, data for the rest kept.
    r = await gql(client, "web", "{ a: product(id: 3) { name } b: product(id: 4) { name } }")
    body = r.json()
    assert body["data"] == {"a": {"name": "Product 3"}, "b": None}
    (error,) = body["errors"]
    assert error["path"] == ["b"]
    assert error["extensions"]["code"] in ("UPSTREAM_ERROR", "UPSTREAM_UNAVAILABLE")
    assert body["extensions"]["degraded"] == ["a"]
    # Back up: fresh values again, nothing degraded.
    servers["products"].restart()
    r = await gql(client, "web", query, {"id": "3"})
    assert r.json() == fresh.json()


async def test_degraded_paths_in_lists_and_both_executors(stale_client: Any) -> None:
    client, servers = stale_client
    nested = "{ order(id: 131) { id lines { quantity product { id name } } } }"
    iot_like = "{ user(id: 13) { orders { id lines { product { id } } } } }"
    fresh = (await gql(client, "web", nested)).json()
    await gql(client, "web", iot_like)
    servers["products"].stop()
    r = (await gql(client, "web", nested)).json()
    assert r["data"] == fresh["data"] and "errors" not in r
    lines = len(fresh["data"]["order"]["lines"])
    assert r["extensions"]["degraded"] == [f"order.lines.{i}.product" for i in range(lines)]
    # graphql-core runs what the compiler leaves to it (a directive here): the same report.
    with_directive = nested.replace("order(id: 131)", "order(id: 131) @include(if: true)")
    r2 = (await gql(client, "web", with_directive)).json()
    assert r2["data"] == fresh["data"]
    assert sorted(r2["extensions"]["degraded"]) == sorted(r["extensions"]["degraded"])


async def test_an_open_breaker_serves_stale_values_too(own_services: Any) -> None:
    overrides = fast_failures(own_services)
    overrides["upstreams"]["products"]["breaker"] = {"failure_threshold": 1, "recovery_timeout": 30}
    async with own_gateway(env_of(own_services), overrides) as gw, client_for(gw) as client:
        query = "{ product(id: 9) { name } }"
        assert (await gql(client, "web", query)).status_code == 200
        own_services["products"].stop()
        for _ in range(3):  # the first failure opens the breaker; then it is not even tried
            r = (await gql(client, "web", query)).json()
            assert r["data"] == {"product": {"name": "Product 9"}}
            assert r["extensions"]["degraded"] == ["product"]
        breaker = gw.upstreams["products"].breaker
        assert breaker is not None and breaker.state != "closed"


async def test_fallbacks_are_shared_through_redis(own_services: Any, redis_url: str) -> None:
    state = {
        "backend": "redis",
        "redis_url": redis_url,
        "key_prefix": f"bff-stale-test:{uuid.uuid4().hex}:",
    }
    overrides = fast_failures(own_services, state=state)
    env = env_of(own_services)
    async with own_gateway(env, overrides) as one, client_for(one) as a:
        assert (await gql(a, "mobile", "{ product(id: 17) { name } }")).status_code == 200
    own_services["products"].stop()
    # Another gateway process, which never loaded product 17 itself.
    async with own_gateway(env, overrides) as two, client_for(two) as b:
        r = (await gql(b, "mobile", "{ product(id: 17) { name } }")).json()
        assert r["data"] == {"product": {"name": "Product 17"}}
        assert r["extensions"]["degraded"] == ["product"]


async def test_iot_lists_report_each_stale_item(own_services: Any) -> None:
    overrides = fast_failures(own_services)
    overrides["graphql"]["apps"] = {"iot": {"persisted_queries": "off"}}
    async with own_gateway(env_of(own_services), overrides) as gw, client_for(gw) as client:
        created = await client.post(
            "/admin/keys", json={"name": "d"}, headers={"authorization": "Bearer demo-admin-token"}
        )
        key = {"x-api-key": created.json()["key"]}
        query = '{ products(ids: ["1", "2"]) { id stock } }'
        fresh = await gql(client, "iot", query, headers=key)
        assert fresh.status_code == 200, fresh.text
        own_services["products"].stop()
        r = (await gql(client, "iot", query, headers=key)).json()
        assert r["data"] == fresh.json()["data"]
        assert r["extensions"]["degraded"] == ["products.0", "products.1"]


# -- the loader cache itself ----------------------------------------------------------------


class Flaky:
    """A batch function that fails on demand and counts the keys it was asked for."""

    def __init__(self) -> None:
        self.failure: Exception | None = None
        self.asked: list[list[int]] = []

    async def __call__(self, ctx: Any, keys: list[int]) -> Sequence[Any]:
        self.asked.append(list(keys))
        if self.failure is not None:
            return [self.failure] * len(keys)
        return [{"id": k, "name": f"thing {k}"} if k < 100 else None for k in keys]


def context(cache: LoaderCache, spec: LoaderSpec) -> Context:
    return Context(
        app="web", loaders={spec.name: spec}, clients=ClientCache({}), loader_cache=cache
    )


async def test_stale_values_expire_and_only_upstream_failures_use_them() -> None:
    batch = Flaky()
    spec = LoaderSpec("things", batch, "tests", stale_if_error=0.3, parse=lambda d: dict(d))
    cache = LoaderCache(MemoryCacheStore())
    ctx = context(cache, spec)
    assert await cache.load(spec, ctx, [1, 2, 100]) == [
        {"id": 1, "name": "thing 1"},
        {"id": 2, "name": "thing 2"},
        None,
    ]
    batch.failure = UpstreamTimeout(upstream="things")
    ctx = context(cache, spec)
    values = await cache.load(spec, ctx, [1, 3])
    assert values[0] == {"id": 1, "name": "thing 1"} and id(values[0]) in ctx.stale
    assert isinstance(values[1], UpstreamTimeout)  # never loaded: no fallback
    batch.failure = BadRequest("no")  # not the upstream's failure: never replaced
    values = await cache.load(spec, context(cache, spec), [1])
    assert isinstance(values[0], BadRequest)
    await asyncio.sleep(0.35)
    batch.failure = UpstreamError(upstream="things")
    values = await cache.load(spec, context(cache, spec), [1])
    assert isinstance(values[0], UpstreamError)  # past stale_if_error


async def test_a_batch_that_raises_falls_back_per_key() -> None:
    calls = 0

    async def batch(ctx: Any, keys: list[int]) -> Sequence[Any]:
        nonlocal calls
        calls += 1
        if calls > 1:
            raise UpstreamError(upstream="x")
        return [{"k": k} for k in keys]

    spec = LoaderSpec("raising", batch, "tests", stale_if_error=60)
    cache = LoaderCache(MemoryCacheStore())
    await cache.load(spec, context(cache, spec), [1])
    assert await cache.load(spec, context(cache, spec), [1]) == [{"k": 1}]
    with pytest.raises(UpstreamError):  # no fallback declared: it raises as before
        plain = LoaderSpec("plain", batch, "tests", shared_ttl=None)
        await LoaderCache(MemoryCacheStore()).load(plain, context(cache, plain), [1])


async def test_a_shared_cache_asks_the_upstream_for_misses_only() -> None:
    batch = Flaky()
    spec = LoaderSpec("shared", batch, "tests", shared_ttl=30)
    cache = LoaderCache(MemoryCacheStore())
    await cache.load(spec, context(cache, spec), [1, 2, 100])
    values = await cache.load(spec, context(cache, spec), [2, 3, 100, 1])
    assert values == [
        {"id": 2, "name": "thing 2"},
        {"id": 3, "name": "thing 3"},
        None,  # "not found" is remembered too
        {"id": 1, "name": "thing 1"},
    ]
    assert batch.asked == [[1, 2, 100], [3]]


async def test_values_that_are_not_json_are_served_but_not_kept(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def batch(ctx: Any, keys: list[int]) -> Sequence[Any]:
        return [object() for _ in keys]

    spec = LoaderSpec("objects", batch, "tests", shared_ttl=30)
    cache = LoaderCache(MemoryCacheStore())
    values = await cache.load(spec, context(cache, spec), [1])
    assert type(values[0]) is object
    assert "not JSON" in caplog.text


async def test_a_shared_loader_through_the_gateway(own_services: Any) -> None:
    overrides = fast_failures(own_services)
    overrides["graphql"]["schema_modules"] = [*MODULES, "tests.bff.graphql.shared_module"]
    async with own_gateway(env_of(own_services), overrides) as gw, client_for(gw) as client:
        query = "{ sharedProduct(id: 5) { id name } }"
        before = _requests(own_services["products"])
        for _ in range(3):
            r = await gql(client, "web", query)
            assert r.json() == {"data": {"sharedProduct": {"id": "5", "name": "Product 5"}}}
        assert _requests(own_services["products"]) - before == 1
        # The demo's own loaders keep one request per level (no shared cache declared).
        before = _requests(own_services["products"])
        for _ in range(2):
            await gql(client, "web", "{ product(id: 5) { id } }")
        assert _requests(own_services["products"]) - before == 2
    assert isinstance(gw, Gateway)


def _requests(server: ServiceServer) -> int:
    return int(httpx.get(server.url + "/_stats").json()["requests"])
