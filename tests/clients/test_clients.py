"""The typed clients against the real sample services."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from bff.errors import BadRequest, UpstreamError, UpstreamTimeout
from bff.upstream import Upstream, UpstreamPool, upstream_calls
from clients import OrdersClient, ProductsClient, ReviewsClient, UsersClient
from services import ServiceServer
from tests.conftest import SampleServices
from tests.support.servers import free_port


@pytest.fixture
async def pool(services: SampleServices) -> AsyncIterator[UpstreamPool]:
    p = UpstreamPool({name: Upstream(name, [(services[name].url, 1)]) for name in services.servers})
    yield p
    await p.aclose()


async def test_batches_of_250_ids_are_three_concurrent_chunks(
    pool: UpstreamPool, services: SampleServices
) -> None:
    services.reset()
    ids = list(range(1, 251))
    users = await UsersClient(pool).get_users(ids)
    assert [u.id for u in users if u] == ids
    stats = services.stats()["users"]
    assert stats["requests"] == 3
    assert stats["by_path"]["/users"] == 3  # type: ignore[index]


async def test_chunks_run_concurrently(pool: UpstreamPool, services: SampleServices) -> None:
    await UsersClient(pool).get_users([1])  # a warm connection
    services["users"].latency_ms = 150
    try:
        loop = asyncio.get_running_loop()
        started = loop.time()
        await UsersClient(pool).get_users(list(range(1, 251)))
        elapsed = loop.time() - started
    finally:
        services["users"].latency_ms = 0
    assert elapsed < 0.4, elapsed  # three chunks one after another would take 450 ms


async def test_results_match_keys_not_positions(pool: UpstreamPool) -> None:
    ids = [42, 7, 9999, 7, 1]
    users = await UsersClient(pool).get_users(ids)
    assert [u.id if u else None for u in users] == [42, 7, None, 7, 1]
    assert users[0] is not None
    assert users[0].tier == ["free", "pro", "enterprise"][42 % 3]
    assert users[0].created_at.isoformat() == "2025-01-01T00:00:00+00:00"


async def test_typed_results(pool: UpstreamPool) -> None:
    (product,) = await ProductsClient(pool).get_products([42])
    assert product is not None
    assert product.price_cents == 100 + (42 * 37) % 9900
    assert product.stock == (42 * 13) % 50
    orders = await OrdersClient(pool).get_orders_by_user([13, 999999])
    assert [o.id for o in orders[0]] == [130, 131, 132, 133]
    assert orders[1] == []
    order = orders[0][1]
    assert order.total_cents == sum(li.quantity * li.unit_price_cents for li in order.lines)
    reviews = await ReviewsClient(pool).get_reviews_by_product([7, 8])
    assert sorted(r.id for r in reviews[0]) == [70, 71, 72]
    assert reviews[1] == []  # 8 % 4 == 0 reviews
    page = await UsersClient(pool).list_users(limit=5, offset=10)
    assert page.total == 1000
    assert [u.id for u in page.items] == [11, 12, 13, 14, 15]
    assert await UsersClient(pool).get_user(999999) is None
    assert (await ProductsClient(pool).list_products(limit=3)).total == 500


async def test_create_order(pool: UpstreamPool) -> None:
    client = OrdersClient(pool)
    with upstream_calls() as calls:
        order = await client.create_order(977, [(3, 2), (4, 1)])
    assert calls.count("orders") == 1
    assert order.id >= 100000
    assert order.status == "pending"
    assert (await client.get_order(order.id)) == order
    with pytest.raises(BadRequest):
        await client.create_order(977, [(999999, 1)])
    with pytest.raises(BadRequest):
        await client.create_order(999999, [(1, 1)])


async def test_a_slow_service_raises_upstream_timeout() -> None:
    with ServiceServer("users", latency_ms=500) as slow:
        upstream = Upstream("users", [(slow.url, 1)], read_timeout=0.1)
        try:
            with pytest.raises(UpstreamTimeout):
                await UsersClient({"users": upstream}).get_users([1])
        finally:
            await upstream.aclose()


async def test_a_refused_connection_raises_upstream_error() -> None:
    upstream = Upstream("users", [(f"http://127.0.0.1:{free_port()}", 1)])
    try:
        with pytest.raises(UpstreamError) as info:
            await UsersClient({"users": upstream}).get_users([1])
        assert "127.0.0.1" not in info.value.message
    finally:
        await upstream.aclose()


@pytest.mark.parametrize("transport", ["native", "aiohttp", "httpx"])
async def test_every_transport_behaves_alike(services: SampleServices, transport: str) -> None:
    upstream = Upstream("users", [(services["users"].url, 1)], transport=transport)  # type: ignore[arg-type]
    try:
        users = await UsersClient({"users": upstream}).get_users([3, 1])
        assert [u.id for u in users if u] == [3, 1]
        response = await upstream.request("GET", "/users/0")
        assert response.status_code == 404
    finally:
        await upstream.aclose()
