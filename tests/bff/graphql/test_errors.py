"""Failures under one field keep the data of the others (DESIGN.md's error table)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from bff.gateway import Gateway, build_gateway
from services import SERVICE_NAMES, ServiceServer
from tests.support.gateway import demo_config, gql
from tests.support.servers import free_port


@pytest.fixture
def own_services() -> Iterator[dict[str, ServiceServer]]:
    """Services private to one test, so stopping one disturbs nobody else."""
    started = {n: ServiceServer(n).start() for n in SERVICE_NAMES}
    yield started
    for s in started.values():
        s.stop()


async def _gateway(servers: dict[str, ServiceServer], overrides: dict[str, Any]) -> Gateway:
    env = {f"{n.upper()}_URL": s.url for n, s in servers.items()}
    env["USERS_NEXT_URL"] = servers["users"].url
    gw = build_gateway(demo_config(env, overrides))
    await gw.startup()
    return gw


@pytest.fixture
async def fault_client(
    own_services: dict[str, ServiceServer],
) -> AsyncIterator[tuple[httpx.AsyncClient, dict[str, ServiceServer]]]:
    overrides = {
        "upstreams": {
            name: {
                "targets": [own_services[name].url],
                "timeout": {"connect": 0.5, "read": 0.3},
                "retries": {"attempts": 0},
            }
            for name in SERVICE_NAMES
        }
    }
    gw = await _gateway(own_services, overrides)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=gw), base_url="http://gw"
    ) as client:
        yield client, own_services
    await gw.shutdown()


async def test_a_failed_service_keeps_the_other_fields(fault_client: Any) -> None:
    client, servers = fault_client
    servers["products"].stop()
    r = await gql(client, "web", "{ user(id: 1) { name } product(id: 1) { name } }")
    assert r.status_code == 200
    body = r.json()
    assert body["data"] == {"user": {"name": "User 1"}, "product": None}
    (error,) = body["errors"]
    assert error["path"] == ["product"]
    assert error["extensions"]["code"] in ("UPSTREAM_ERROR", "UPSTREAM_UNAVAILABLE")
    assert "127.0.0.1" not in r.text  # no upstream address leaks


async def test_a_slow_service_times_out_with_partial_data(fault_client: Any) -> None:
    client, servers = fault_client
    servers["orders"].latency_ms = 1000
    r = await gql(client, "web", "{ user(id: 2) { name orders { id } } }")
    body = r.json()
    assert body["data"] == {"user": None} or body["data"]["user"] is None
    assert body["errors"][0]["extensions"]["code"] == "UPSTREAM_TIMEOUT"
    assert body["errors"][0]["path"][:2] == ["user", "orders"]
    r = await gql(client, "web", "{ a: user(id: 2) { name } b: order(id: 20) { id } }")
    body = r.json()
    assert body["data"]["a"] == {"name": "User 2"}
    assert body["data"]["b"] is None
    assert body["errors"][0]["extensions"]["code"] == "UPSTREAM_TIMEOUT"


async def test_unknown_entities_resolve_to_null(client: httpx.AsyncClient) -> None:
    r = await gql(
        client, "web", "{ user(id: 999999) { name } order(id: 5) { id } product(id: 501) { id } }"
    )
    assert r.json() == {"data": {"user": None, "order": None, "product": None}}


async def test_refused_connections_are_upstream_errors(services: Any) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    overrides = {"upstreams": {"reviews": {"targets": [dead], "retries": {"attempts": 0}}}}
    gw = build_gateway(demo_config(services.env, overrides))
    await gw.startup()
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=gw), base_url="http://gw"
        ) as client:
            r = await gql(client, "web", "{ product(id: 3) { name averageRating } }")
    finally:
        await gw.shutdown()
    body = r.json()
    assert body["data"] == {"product": {"name": "Product 3", "averageRating": None}}
    assert body["errors"][0]["path"] == ["product", "averageRating"]
    assert body["errors"][0]["extensions"]["code"] in ("UPSTREAM_ERROR", "UPSTREAM_UNAVAILABLE")
    assert dead not in r.text
