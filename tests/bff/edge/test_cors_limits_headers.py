"""CORS, header limits and security headers at the edge, through a real gateway config."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from bff.gateway import build_gateway
from tests.conftest import SampleServices
from tests.support.gateway import demo_config

ORIGIN = "http://localhost:3000"
QUERY = {"query": "{ user(id: 1) { name } }"}


@pytest.fixture
async def edge_client(services: SampleServices) -> AsyncIterator[httpx.AsyncClient]:
    config = demo_config(
        services.env,
        {
            "cors": {"allow_origins": [ORIGIN], "allow_credentials": True},
            "limits": {"max_header_bytes": 2048},
        },
    )
    gw = build_gateway(config)
    await gw.startup()
    transport = httpx.ASGITransport(app=gw)
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
        yield client
    await gw.shutdown()


async def test_preflight_from_an_allowed_origin(edge_client: httpx.AsyncClient) -> None:
    r = await edge_client.options(
        "/graphql/web",
        headers={
            "origin": ORIGIN,
            "access-control-request-method": "POST",
            "access-control-request-headers": "content-type, authorization",
        },
    )
    assert r.status_code == 204
    assert r.headers["access-control-allow-origin"] == ORIGIN
    assert r.headers["access-control-allow-credentials"] == "true"
    assert "POST" in r.headers["access-control-allow-methods"]
    assert "authorization" in r.headers["access-control-allow-headers"]
    assert r.headers["access-control-max-age"] == "600"


@pytest.mark.parametrize(
    "headers",
    [
        {"origin": "http://evil.example", "access-control-request-method": "POST"},
        {"origin": ORIGIN, "access-control-request-method": "PATCH"},
        {
            "origin": ORIGIN,
            "access-control-request-method": "POST",
            "access-control-request-headers": "x-not-allowed",
        },
    ],
)
async def test_preflights_outside_the_policy_are_refused(
    edge_client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    r = await edge_client.options("/graphql/web", headers=headers)
    assert r.status_code == 403
    assert "access-control-allow-origin" not in r.headers
    assert r.json()["error"]["code"] == "CORS_FORBIDDEN"


async def test_actual_requests_get_cors_headers_only_for_allowed_origins(
    edge_client: httpx.AsyncClient,
) -> None:
    ok = await edge_client.post("/graphql/web", json=QUERY, headers={"origin": ORIGIN})
    assert ok.json()["data"] == {"user": {"name": "User 1"}}
    assert ok.headers["access-control-allow-origin"] == ORIGIN
    assert "x-request-id" in ok.headers["access-control-expose-headers"]
    assert "Origin" in ok.headers["vary"]
    other = await edge_client.post(
        "/graphql/web", json=QUERY, headers={"origin": "http://evil.example"}
    )
    assert other.status_code == 200
    assert "access-control-allow-origin" not in other.headers


async def test_refusals_carry_cors_headers(edge_client: httpx.AsyncClient) -> None:
    r = await edge_client.post(
        "/graphql/web", json=QUERY, headers={"origin": ORIGIN, "authorization": "Bearer junk"}
    )
    assert r.status_code == 401
    assert r.headers["access-control-allow-origin"] == ORIGIN


async def test_oversized_headers_are_431(edge_client: httpx.AsyncClient) -> None:
    r = await edge_client.post("/graphql/web", json=QUERY, headers={"x-padding": "a" * 3000})
    assert r.status_code == 431
    body = r.json()
    assert body["error"]["code"] == "REQUEST_HEADERS_TOO_LARGE"
    assert body["error"]["request_id"] == r.headers["x-request-id"]


async def test_security_headers_everywhere(edge_client: httpx.AsyncClient) -> None:
    for r in (
        await edge_client.post("/graphql/web", json=QUERY),
        await edge_client.get("/api/users/1"),
        await edge_client.get("/nowhere"),
        await edge_client.get("/healthz"),
    ):
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["x-frame-options"] == "DENY"
        assert r.headers["referrer-policy"] == "no-referrer"
