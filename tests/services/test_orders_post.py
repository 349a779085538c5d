"""POST /orders: creation, visibility, and every way to get it wrong."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from services import ServiceServer

from .test_services import assert_error

LINE = {"product_id": 1, "quantity": 1}


@pytest.fixture
def orders(fresh: Callable[..., ServiceServer]) -> ServiceServer:
    return fresh("orders")


def test_create_order(orders: ServiceServer, client: httpx.Client) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    lines = [{"product_id": 42, "quantity": 2}, {"product_id": 3, "quantity": 1}]
    r = client.post(orders.url + "/orders", json={"user_id": 13, "lines": lines})
    assert r.status_code == 201, r.text
    assert r.headers["content-type"] == "application/json"
    assert r.headers["location"] == "/orders/100000"
    order = r.json()
    created_at = order.pop("created_at")
    assert order == {
        "id": 100000,
        "user_id": 13,
        "status": "pending",
        "currency": "USD",
        "total_cents": 2 * 1654 + 1 * 211,
        "lines": [
            {"product_id": 42, "quantity": 2, "unit_price_cents": 1654},
            {"product_id": 3, "quantity": 1, "unit_price_cents": 211},
        ],
    }
    assert created_at.endswith("Z")
    stamp = datetime.strptime(created_at, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert before <= stamp <= datetime.now(UTC) + timedelta(seconds=1)

    second = client.post(orders.url + "/orders", json={"user_id": 1, "lines": lines[:1]})
    assert second.status_code == 201
    assert second.json()["id"] == 100001


def test_created_orders_are_visible(orders: ServiceServer, client: httpx.Client) -> None:
    lines = [{"product_id": 7, "quantity": 3}]
    created = client.post(orders.url + "/orders", json={"user_id": 2, "lines": lines}).json()
    oid = created["id"]

    assert client.get(f"{orders.url}/orders/{oid}").json() == created
    items = client.get(orders.url + f"/orders?ids={oid},20").json()["items"]
    assert sorted(o["id"] for o in items) == [20, oid]
    items = client.get(orders.url + "/orders?user_ids=2").json()["items"]
    assert sorted(o["id"] for o in items) == [20, 21, 22, oid]
    assert next(o for o in items if o["id"] == oid) == created


def test_created_orders_belong_to_their_app(
    fresh: Callable[..., ServiceServer], client: httpx.Client
) -> None:
    one, other = fresh("orders"), fresh("orders")
    assert client.post(one.url + "/orders", json={"user_id": 1, "lines": [LINE]}).status_code == 201
    assert_error(client.get(other.url + "/orders/100000"), 404, "not_found")
    assert len(client.get(other.url + "/orders?user_ids=1").json()["items"]) == 2


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"user_id": 1001, "lines": [{"product_id": 1, "quantity": 1}]}, "unknown_user"),
        ({"user_id": 1, "lines": [{"product_id": 501, "quantity": 1}]}, "unknown_product"),
        (
            {
                "user_id": 1,
                "lines": [{"product_id": 1, "quantity": 1}, {"product_id": 9999, "quantity": 1}],
            },
            "unknown_product",
        ),
    ],
)
def test_unknown_references_are_422(
    servers: dict[str, ServiceServer], client: httpx.Client, body: dict[str, Any], code: str
) -> None:
    url = servers["orders"].url
    assert_error(client.post(url + "/orders", json=body), 422, code)
    # Nothing was created.
    assert_error(client.get(url + "/orders/100000"), 404, "not_found")


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"{",
        b"not json",
        b"[]",
        b'"order"',
        b"null",
        b'{"lines": [{"product_id": 1, "quantity": 1}]}',
        b'{"user_id": 1}',
        b'{"user_id": "1", "lines": [{"product_id": 1, "quantity": 1}]}',
        b'{"user_id": true, "lines": [{"product_id": 1, "quantity": 1}]}',
        b'{"user_id": 1.0, "lines": [{"product_id": 1, "quantity": 1}]}',
        b'{"user_id": 0, "lines": [{"product_id": 1, "quantity": 1}]}',
        b'{"user_id": null, "lines": [{"product_id": 1, "quantity": 1}]}',
        b'{"user_id": 1, "lines": []}',
        b'{"user_id": 1, "lines": {"product_id": 1, "quantity": 1}}',
        b'{"user_id": 1, "lines": [1]}',
        b'{"user_id": 1, "lines": [{"quantity": 1}]}',
        b'{"user_id": 1, "lines": [{"product_id": 1}]}',
        b'{"user_id": 1, "lines": [{"product_id": 1, "quantity": 0}]}',
        b'{"user_id": 1, "lines": [{"product_id": 1, "quantity": -2}]}',
        b'{"user_id": 1, "lines": [{"product_id": 1, "quantity": 1.5}]}',
        b'{"user_id": 1, "lines": [{"product_id": "1", "quantity": 1}]}',
        b'{"user_id": 1, "lines": [{"product_id": 1, "quantity": 9223372036854775807}]}',
        b'{"user_id": 1, "lines": [{"product_id": 1, "quantity": 99999999999999999999999}]}',
    ],
)
def test_bad_input_is_400(
    servers: dict[str, ServiceServer], client: httpx.Client, body: bytes
) -> None:
    url = servers["orders"].url + "/orders"
    r = client.post(url, content=body, headers={"content-type": "application/json"})
    assert_error(r, 400, "bad_request")
    assert_error(client.get(servers["orders"].url + "/orders/100000"), 404, "not_found")


def test_oversized_body_is_413(servers: dict[str, ServiceServer], client: httpx.Client) -> None:
    lines = [LINE] * 60_000  # about 1.9 MB of JSON
    assert_error(
        client.post(servers["orders"].url + "/orders", json={"user_id": 1, "lines": lines}),
        413,
        "payload_too_large",
    )


def test_extra_keys_are_ignored(orders: ServiceServer, client: httpx.Client) -> None:
    body = {"user_id": 1, "note": "x", "lines": [{**LINE, "gift": True}]}
    r = client.post(orders.url + "/orders", json=body)
    assert r.status_code == 201
    assert r.json()["lines"] == [{"product_id": 1, "quantity": 1, "unit_price_cents": 137}]
