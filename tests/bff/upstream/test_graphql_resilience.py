"""GraphQL resolvers and REST routes share one chain per upstream: one breaker for both."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from bff.gateway import Gateway, build_gateway
from tests.conftest import SampleServices
from tests.support.gateway import demo_config, gql
from tests.support.servers import ThreadedServer, free_port

QUERY = '{ user(id: "1") { id name } order(id: "5") { id } }'


@pytest.fixture
async def gateway_with_orders_down(services: SampleServices) -> AsyncIterator[Gateway]:
    env = {**services.env, "ORDERS_URL": f"http://127.0.0.1:{free_port()}"}
    overrides: dict[str, Any] = {
        "upstreams": {
            "orders": {
                "breaker": {"failure_threshold": 2, "recovery_timeout": 30},
                "retries": {"attempts": 0},
            }
        },
        # The same upstream behind a REST route (without auth, to reach the proxy directly).
        "routes": [{"id": "orders", "path": "/api/orders", "upstream": "orders"}],
    }
    gateway = build_gateway(demo_config(env, overrides))
    await gateway.startup()
    try:
        yield gateway
    finally:
        await gateway.shutdown()


async def test_an_open_breaker_fails_graphql_fields_fast_and_keeps_partial_data(
    gateway_with_orders_down: Gateway,
) -> None:
    gateway = gateway_with_orders_down
    transport = httpx.ASGITransport(app=gateway)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        for _ in range(2):  # two failures open the breaker
            body = (await gql(client, "web", QUERY)).json()
            assert body["data"] == {"user": {"id": "1", "name": "User 1"}, "order": None}
            assert [e["extensions"]["code"] for e in body["errors"]] == ["UPSTREAM_ERROR"]
        breaker = gateway.upstreams["orders"].breaker
        assert breaker is not None and breaker.state == "open"

        started = time.monotonic()
        response = await gql(client, "web", QUERY)
        assert time.monotonic() - started < 0.5
        body = response.json()
        assert response.status_code == 200
        assert body["data"] == {"user": {"id": "1", "name": "User 1"}, "order": None}
        (error,) = body["errors"]
        assert error["extensions"]["code"] == "UPSTREAM_UNAVAILABLE"
        assert error["path"] == ["order"]

        # The REST route to the same upstream meets the same open breaker.
        response = await client.get("/api/orders/5")
        assert response.status_code == 503
        assert response.headers["retry-after"]
        assert response.json()["error"]["code"] == "UPSTREAM_UNAVAILABLE"


async def test_a_spent_budget_fails_the_remaining_fields_and_keeps_the_resolved(
    services: SampleServices, fault: dict[str, ThreadedServer]
) -> None:
    fault["a"].app.latency_ms = 3000  # orders answer far too late
    env = {**services.env, "ORDERS_URL": fault["a"].url}
    gateway = build_gateway(demo_config(env))
    await gateway.startup()
    try:
        transport = httpx.ASGITransport(app=gateway)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            started = time.monotonic()
            response = await gql(client, "web", QUERY, headers={"x-request-timeout": "0.3"})
            elapsed = time.monotonic() - started
            body = response.json()
            assert elapsed < 1.5
            assert body["data"] == {"user": {"id": "1", "name": "User 1"}, "order": None}
            assert [e["extensions"]["code"] for e in body["errors"]] == ["UPSTREAM_TIMEOUT"]

            response = await gql(client, "web", QUERY, headers={"x-request-timeout": "later"})
            assert response.status_code == 400
            assert "X-Request-Timeout" in response.text
    finally:
        await gateway.shutdown()
