"""Development mode names the field behind an N+1; a batched query raises no warning."""

from __future__ import annotations

import logging

import httpx
import pytest

from bff.gateway import build_gateway
from bff.upstream import upstream_calls
from tests.conftest import SampleServices
from tests.support.gateway import demo_config, gql

MODULES = [
    "schema.users",
    "schema.orders",
    "schema.products",
    "schema.reviews",
    "tests.bff.graphql.naive_module",
]


async def _run(services: SampleServices, query: str, mode: str) -> None:
    config = demo_config(
        services.env,
        {"mode": mode, "graphql": {"schema_modules": MODULES, "n_plus_one_threshold": 3}},
    )
    gw = build_gateway(config)
    await gw.startup()
    try:
        transport = httpx.ASGITransport(app=gw)
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
            response = await gql(client, "web", query)
            assert "errors" not in response.json(), response.text
    finally:
        await gw.shutdown()


async def test_an_n_plus_one_is_named_in_development(
    services: SampleServices, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="bff.graphql"), upstream_calls() as calls:
        await _run(services, "{ users(limit: 10) { items { nextUser { name } } } }", "development")
    assert calls.count("users", "/users/{id}") == 10
    warnings = [r.getMessage() for r in caplog.records if "N+1" in r.getMessage()]
    assert len(warnings) == 1
    assert "User.nextUser" in warnings[0]
    assert "10 requests to users /users/{id}" in warnings[0]


async def test_batched_queries_do_not_warn(
    services: SampleServices, caplog: pytest.LogCaptureFixture
) -> None:
    query = "{ users(limit: 100) { items { orders { lines { product { name } } } } } }"
    with caplog.at_level(logging.WARNING, logger="bff.graphql"):
        await _run(services, query, "development")
    assert not [r for r in caplog.records if "N+1" in r.getMessage()]


async def test_production_does_not_count(
    services: SampleServices, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="bff.graphql"):
        await _run(services, "{ users(limit: 10) { items { nextUser { name } } } }", "production")
    assert not [r for r in caplog.records if "N+1" in r.getMessage()]


async def test_the_guide_example_is_batched(services: SampleServices) -> None:
    """docs/registering-resolvers.md's module (copied to recommendations_module.py)."""
    modules = [*MODULES[:4], "tests.bff.graphql.recommendations_module"]
    gw = build_gateway(demo_config(services.env, {"graphql": {"schema_modules": modules}}))
    await gw.startup()
    try:
        transport = httpx.ASGITransport(app=gw)
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
            with upstream_calls() as calls:
                r = await gql(
                    client, "web", "{ users(limit: 20) { items { recommended { name } } } }"
                )
            iot = await gql(client, "mobile", "{ me { recommended { name } } }")
    finally:
        await gw.shutdown()
    body = r.json()
    assert "errors" not in body
    assert len(body["data"]["users"]["items"][0]["recommended"]) == 3
    assert calls.count("products") == 1
    assert iot.status_code == 200
