"""Deterministic data of the sample shop, and its JSON precomputed as bytes.

The formulas follow ``services.md`` to the letter, so that any independent implementation of the
services (or a test computing expectations by hand) agrees with this one.

Every entity is serialized once, here, and the apps answer by joining these byte fragments: the
services are the upstreams of gateway benchmarks and must cost as little per request as possible.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

__all__ = [
    "CURRENCY",
    "FIRST_CREATED_ORDER_ID",
    "ORDER_CREATED_AT",
    "ORDER_STATUSES",
    "PRODUCT_COUNT",
    "TIERS",
    "USER_COUNT",
    "USER_CREATED_AT",
    "EntityTable",
    "OrderTable",
    "ReviewTable",
    "make_order",
    "make_product",
    "make_reviews",
    "make_user",
    "order_ids_of_user",
    "orders_table",
    "product_price_cents",
    "products_table",
    "reviews_table",
    "users_table",
]

USER_COUNT = 1000
PRODUCT_COUNT = 500
TIERS = ("free", "pro", "enterprise")
ORDER_STATUSES = ("pending", "paid", "shipped", "delivered", "cancelled")
USER_CREATED_AT = "2025-01-01T00:00:00Z"
ORDER_CREATED_AT = "2025-06-01T00:00:00Z"
CURRENCY = "USD"
FIRST_CREATED_ORDER_ID = 100_000
"""Orders created with ``POST /orders`` are numbered from here upward."""


def make_user(i: int) -> dict[str, Any]:
    """User ``i`` (1..USER_COUNT) as a JSON-ready dict."""
    return {
        "id": i,
        "name": f"User {i}",
        "email": f"user{i}@example.com",
        "tier": TIERS[i % 3],
        "created_at": USER_CREATED_AT,
    }


def product_price_cents(p: int) -> int:
    """Price of product ``p`` in cents."""
    return 100 + (p * 37) % 9900


def make_product(p: int) -> dict[str, Any]:
    """Product ``p`` (1..PRODUCT_COUNT) as a JSON-ready dict."""
    return {
        "id": p,
        "name": f"Product {p}",
        "description": f"Description of product {p}",
        "price_cents": product_price_cents(p),
        "currency": CURRENCY,
        "image_url": f"https://img.example.com/p/{p}.jpg",
        "stock": (p * 13) % 50,
    }


def order_ids_of_user(i: int) -> list[int]:
    """Ids of the seeded orders of user ``i``: ``i*10 + k`` for ``k = 0..i%5``."""
    return [i * 10 + k for k in range(i % 5 + 1)]


def make_order(o: int) -> dict[str, Any]:
    """Seeded order ``o`` as a JSON-ready dict; its user is ``o // 10``, as ``k`` stays below 10."""
    lines = []
    for j in range(o % 3 + 1):
        product_id = (o * 7 + j * 31) % PRODUCT_COUNT + 1
        lines.append(
            {
                "product_id": product_id,
                "quantity": (o + j) % 4 + 1,
                "unit_price_cents": product_price_cents(product_id),
            }
        )
    return {
        "id": o,
        "user_id": o // 10,
        "status": ORDER_STATUSES[o % 5],
        "created_at": ORDER_CREATED_AT,
        "currency": CURRENCY,
        "total_cents": sum(line["quantity"] * line["unit_price_cents"] for line in lines),
        "lines": lines,
    }


def make_reviews(p: int) -> list[dict[str, Any]]:
    """The ``p % 4`` reviews of product ``p`` as JSON-ready dicts."""
    return [
        {
            "id": p * 10 + k,
            "product_id": p,
            "user_id": (p * 17 + k * 101) % USER_COUNT + 1,
            "rating": (p + k) % 5 + 1,
            "body": f"Review {k} of product {p}",
        }
        for k in range(p % 4)
    ]


@dataclass(frozen=True, slots=True)
class EntityTable:
    """Entities with ids ``1..len(ordered)``: JSON by id, and the same fragments in id order."""

    by_id: Mapping[int, bytes]
    ordered: tuple[bytes, ...]
    total_bytes: bytes
    """``total`` as JSON bytes, ready to splice into a page."""


@dataclass(frozen=True, slots=True)
class OrderTable:
    """Seeded orders: JSON by order id, and each user's orders pre-joined with commas."""

    by_id: Mapping[int, bytes]
    by_user: Mapping[int, bytes]


@dataclass(frozen=True, slots=True)
class ReviewTable:
    """Reviews pre-joined per product; products without reviews are absent."""

    by_product: Mapping[int, bytes]


def _entity_table(items: list[dict[str, Any]]) -> EntityTable:
    ordered = tuple(orjson.dumps(item) for item in items)
    by_id = {item["id"]: blob for item, blob in zip(items, ordered, strict=True)}
    return EntityTable(by_id=by_id, ordered=ordered, total_bytes=str(len(items)).encode())


# Built on first use and shared read-only by every app in the process: per-app state (created
# orders) lives in the apps, never in these tables.
@functools.cache
def users_table() -> EntityTable:
    """All users, precomputed."""
    return _entity_table([make_user(i) for i in range(1, USER_COUNT + 1)])


@functools.cache
def products_table() -> EntityTable:
    """All products, precomputed."""
    return _entity_table([make_product(p) for p in range(1, PRODUCT_COUNT + 1)])


@functools.cache
def orders_table() -> OrderTable:
    """All seeded orders, precomputed."""
    by_id: dict[int, bytes] = {}
    by_user: dict[int, bytes] = {}
    for i in range(1, USER_COUNT + 1):
        blobs = [orjson.dumps(make_order(o)) for o in order_ids_of_user(i)]
        by_id.update(zip(order_ids_of_user(i), blobs, strict=True))
        by_user[i] = b",".join(blobs)
    return OrderTable(by_id=by_id, by_user=by_user)


@functools.cache
def reviews_table() -> ReviewTable:
    """All reviews, precomputed."""
    by_product = {}
    for p in range(1, PRODUCT_COUNT + 1):
        reviews = make_reviews(p)
        if reviews:
            by_product[p] = b",".join(orjson.dumps(r) for r in reviews)
    return ReviewTable(by_product=by_product)
