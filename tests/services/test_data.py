"""The served data follows the formulas of services.md.

Expectations are written out here (spot checks by hand, and a reference re-implementation of the
formulas) rather than taken from services.data, so a slip in the formulas there cannot hide.
"""

from __future__ import annotations

from typing import Any

import httpx

from services import ServiceServer

STATUSES = ["pending", "paid", "shipped", "delivered", "cancelled"]


def price(p: int) -> int:
    return 100 + (p * 37) % 9900


def ref_user(i: int) -> dict[str, Any]:
    return {
        "id": i,
        "name": f"User {i}",
        "email": f"user{i}@example.com",
        "tier": ["free", "pro", "enterprise"][i % 3],
        "created_at": "2025-01-01T00:00:00Z",
    }


def ref_product(p: int) -> dict[str, Any]:
    return {
        "id": p,
        "name": f"Product {p}",
        "description": f"Description of product {p}",
        "price_cents": price(p),
        "currency": "USD",
        "image_url": f"https://img.example.com/p/{p}.jpg",
        "stock": (p * 13) % 50,
    }


def ref_orders(i: int) -> list[dict[str, Any]]:
    orders = []
    for k in range(i % 5 + 1):
        o = i * 10 + k
        lines = [
            {
                "product_id": (o * 7 + j * 31) % 500 + 1,
                "quantity": (o + j) % 4 + 1,
                "unit_price_cents": price((o * 7 + j * 31) % 500 + 1),
            }
            for j in range(o % 3 + 1)
        ]
        orders.append(
            {
                "id": o,
                "user_id": i,
                "status": STATUSES[o % 5],
                "created_at": "2025-06-01T00:00:00Z",
                "currency": "USD",
                "total_cents": sum(x["quantity"] * x["unit_price_cents"] for x in lines),
                "lines": lines,
            }
        )
    return orders


def ref_reviews(p: int) -> list[dict[str, Any]]:
    return [
        {
            "id": p * 10 + k,
            "product_id": p,
            "user_id": (p * 17 + k * 101) % 1000 + 1,
            "rating": (p + k) % 5 + 1,
            "body": f"Review {k} of product {p}",
        }
        for k in range(p % 4)
    ]


def by_id(items: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    return {item["id"]: item for item in items}


def test_user_7(servers: dict[str, ServiceServer], client: httpx.Client) -> None:
    r = client.get(servers["users"].url + "/users/7")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    assert r.json() == {
        "id": 7,
        "name": "User 7",
        "email": "user7@example.com",
        "tier": "pro",
        "created_at": "2025-01-01T00:00:00Z",
    }


def test_user_tiers(servers: dict[str, ServiceServer], client: httpx.Client) -> None:
    items = client.get(servers["users"].url + "/users?ids=3,4,5").json()["items"]
    assert {u["id"]: u["tier"] for u in items} == {3: "free", 4: "pro", 5: "enterprise"}


def test_product_42(servers: dict[str, ServiceServer], client: httpx.Client) -> None:
    r = client.get(servers["products"].url + "/products/42")
    assert r.status_code == 200
    assert r.json() == {
        "id": 42,
        "name": "Product 42",
        "description": "Description of product 42",
        "price_cents": 1654,
        "currency": "USD",
        "image_url": "https://img.example.com/p/42.jpg",
        "stock": 46,
    }


def test_orders_of_user_13(servers: dict[str, ServiceServer], client: httpx.Client) -> None:
    items = client.get(servers["orders"].url + "/orders?user_ids=13").json()["items"]
    orders = by_id(items)
    assert sorted(orders) == [130, 131, 132, 133]
    summary = {
        o["id"]: (
            o["user_id"],
            o["status"],
            o["total_cents"],
            [(x["product_id"], x["quantity"], x["unit_price_cents"]) for x in o["lines"]],
        )
        for o in items
    }
    assert summary == {
        130: (13, "pending", 42437, [(411, 3, 5407), (442, 4, 6554)]),
        131: (13, "paid", 45397, [(418, 4, 5666), (449, 1, 6813), (480, 2, 7960)]),
        132: (13, "shipped", 5925, [(425, 1, 5925)]),
        133: (13, "delivered", 34361, [(432, 2, 6184), (463, 3, 7331)]),
    }
    assert all(o["created_at"] == "2025-06-01T00:00:00Z" for o in items)
    assert all(o["currency"] == "USD" for o in items)
    assert client.get(servers["orders"].url + "/orders/131").json() == orders[131]


def test_reviews_of_product_7(servers: dict[str, ServiceServer], client: httpx.Client) -> None:
    items = client.get(servers["reviews"].url + "/reviews?product_ids=7").json()["items"]
    assert sorted(items, key=lambda r: r["id"]) == [
        {"id": 70, "product_id": 7, "user_id": 120, "rating": 3, "body": "Review 0 of product 7"},
        {"id": 71, "product_id": 7, "user_id": 221, "rating": 4, "body": "Review 1 of product 7"},
        {"id": 72, "product_id": 7, "user_id": 322, "rating": 5, "body": "Review 2 of product 7"},
    ]


def test_product_without_reviews(servers: dict[str, ServiceServer], client: httpx.Client) -> None:
    r = client.get(servers["reviews"].url + "/reviews?product_ids=8,12")
    assert r.status_code == 200
    assert r.json() == {"items": []}


def test_every_user_and_product_by_paging(
    servers: dict[str, ServiceServer], client: httpx.Client
) -> None:
    for name, count, ref in (("users", 1000, ref_user), ("products", 500, ref_product)):
        seen: list[dict[str, Any]] = []
        for offset in range(0, count, 100):
            page = client.get(f"{servers[name].url}/{name}?limit=100&offset={offset}").json()
            assert page["total"] == count
            seen.extend(page["items"])
        assert seen == [ref(i) for i in range(1, count + 1)], name


def test_every_order_and_review_by_batches(
    servers: dict[str, ServiceServer], client: httpx.Client
) -> None:
    orders: list[dict[str, Any]] = []
    for start in range(1, 1001, 100):
        ids = ",".join(map(str, range(start, start + 100)))
        orders.extend(client.get(servers["orders"].url + f"/orders?user_ids={ids}").json()["items"])
    expected = [o for i in range(1, 1001) for o in ref_orders(i)]
    assert by_id(orders) == by_id(expected)
    assert len(orders) == len(expected) == 3000

    reviews: list[dict[str, Any]] = []
    for start in range(1, 501, 100):
        ids = ",".join(map(str, range(start, start + 100)))
        url = servers["reviews"].url + f"/reviews?product_ids={ids}"
        reviews.extend(client.get(url).json()["items"])
    expected = [r for p in range(1, 501) for r in ref_reviews(p)]
    assert by_id(reviews) == by_id(expected)
    assert len(reviews) == len(expected) == 750
