"""A nested query costs one upstream request per service per level, never N+1.

Counted twice: by the sample services themselves (``/_stats``) and by the gateway's
``upstream_calls()`` helper, which is what backend teams use in their own tests.
"""

from __future__ import annotations

import time

import httpx
import pytest

from bff.upstream import upstream_calls
from tests.conftest import SampleServices
from tests.support.gateway import gql

Q1 = """{ users(limit: 20) { items { id name orders { id status total { formatted }
  lines { quantity product { id name price { amountCents } } } } } } }"""
Q1_REVIEWS = """{ users(limit: 20) { items { id name orders { id status total { formatted }
  lines { quantity product { id name price { amountCents }
  reviews { author { name } } } } } } } }"""


async def _count(client: httpx.AsyncClient, services: SampleServices, query: str) -> dict[str, int]:
    services.reset()
    with upstream_calls() as calls:
        response = await gql(client, "web", query)
    assert response.status_code == 200, response.text
    assert "errors" not in response.json()
    counted = services.requests()
    assert counted == {n: calls.count(n) for n in counted}
    return counted


async def test_q1_costs_four_requests(client: httpx.AsyncClient, services: SampleServices) -> None:
    counts = await _count(client, services, Q1)
    # 20 users -> 60 orders -> 122 lines referencing 113 distinct products: two chunks of <= 100.
    assert counts == {"users": 1, "orders": 1, "products": 2, "reviews": 0}


async def test_q1_data_matches_the_contract(client: httpx.AsyncClient) -> None:
    data = (await gql(client, "web", Q1)).json()["data"]
    users = data["users"]["items"]
    assert [u["id"] for u in users] == [str(i) for i in range(1, 21)]
    user13 = users[12]
    assert [o["id"] for o in user13["orders"] if int(o["id"]) < 100000] == [
        "130",
        "131",
        "132",
        "133",
    ]
    order = user13["orders"][1]  # order 131: 131 % 3 + 1 = 3 lines, status paid (131 % 5 = 1)
    assert order["status"] == "PAID"
    assert len(order["lines"]) == 3
    first = order["lines"][0]
    product_id = (131 * 7) % 500 + 1
    assert first["product"]["id"] == str(product_id)
    assert first["quantity"] == (131 % 4) + 1
    assert first["product"]["price"]["amountCents"] == 100 + (product_id * 37) % 9900
    total = sum(
        line["quantity"] * line["product"]["price"]["amountCents"] for line in order["lines"]
    )
    assert order["total"]["formatted"] == f"${total // 100:,}.{total % 100:02d}"
    # Orders placed by other tests (ids from 100000) are not part of the deterministic data.
    products = {
        line["product"]["id"]
        for u in users
        for o in u["orders"]
        if int(o["id"]) < 100000
        for line in o["lines"]
    }
    assert len(products) == 113


async def test_reviews_and_authors_cost_eight(
    client: httpx.AsyncClient, services: SampleServices
) -> None:
    counts = await _count(client, services, Q1_REVIEWS)
    # reviews of 113 products: 2 chunks; their 171 distinct authors: 2 chunks of users.
    assert counts == {"users": 3, "orders": 1, "products": 2, "reviews": 2}
    assert sum(counts.values()) == 8


async def test_a_hundred_users_stay_one_batch_per_level(
    client: httpx.AsyncClient, services: SampleServices
) -> None:
    counts = await _count(client, services, Q1.replace("limit: 20", "limit: 100"))
    assert counts["users"] == 1
    assert counts["orders"] == 1
    stats = services.stats()["products"]
    # Every product batch is one request of at most 100 ids, all at the same level.
    assert counts["products"] == stats["by_path"]["/products"]  # type: ignore[index]
    assert sum(counts.values()) == 6


async def test_duplicate_keys_are_fetched_once(
    client: httpx.AsyncClient, services: SampleServices
) -> None:
    query = "{ a: product(id: 7) { name } b: product(id: 7) { stock } c: product(id: 8) { name } }"
    counts = await _count(client, services, query)
    assert counts["products"] == 1


@pytest.mark.parametrize("latency_ms", [200])
async def test_sibling_fields_resolve_concurrently(
    client: httpx.AsyncClient, services: SampleServices, latency_ms: int
) -> None:
    query = "{ a: product(id: 1) { name } b: user(id: 1) { name } }"
    await gql(client, "web", query)  # warm connections and the document cache
    for name in ("users", "products"):
        services[name].latency_ms = latency_ms
    try:
        started = time.perf_counter()
        response = await gql(client, "web", query)
        elapsed = time.perf_counter() - started
    finally:
        for name in ("users", "products"):
            services[name].latency_ms = 0
    assert response.json()["data"] == {"a": {"name": "Product 1"}, "b": {"name": "User 1"}}
    # Sequential would take two latencies (400 ms); concurrent takes one plus overhead. The
    # latency is large so that a loaded machine cannot blur the difference.
    assert 0.2 <= elapsed < 0.35, elapsed
