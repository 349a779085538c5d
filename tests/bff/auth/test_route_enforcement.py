"""Passthrough routes through the gateway: 401/403, and what identity the upstream sees."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import orjson
import pytest

from bff.gateway import Gateway, build_gateway
from tests.bff.auth.conftest import make_token
from tests.conftest import SampleServices
from tests.support.gateway import demo_config
from tests.support.servers import ThreadedServer

ADMIN = {"authorization": "Bearer demo-admin-token"}


async def echo_headers(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """An upstream that answers with the request headers it received."""
    if scope["type"] != "http":
        return
    body = orjson.dumps({k.decode(): v.decode("latin-1") for k, v in scope["headers"]})
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": body})


@pytest.fixture(scope="module")
def echo_server() -> Iterator[ThreadedServer]:
    with ThreadedServer(echo_headers, lifespan="off") as server:
        yield server


@pytest.fixture(scope="module")
async def gateway(services: SampleServices, echo_server: ThreadedServer) -> AsyncIterator[Gateway]:
    secret = demo_config({}).auth.jwt.secret or ""
    overrides = {
        "auth": {"jwt": {"secret": secret}},
        "upstreams": {"echo": {"targets": [echo_server.url]}},
        "routes": [
            {
                "id": "scoped",
                "path": "/api/scoped",
                "upstream": "echo",
                "auth": {"required": True, "scopes": ["echo:read"]},
            },
            {
                "id": "forwarding",
                "path": "/api/forwarding",
                "upstream": "echo",
                "auth": {"required": True, "forward_jwt": True},
            },
            {"id": "public", "path": "/api/public", "upstream": "echo"},
        ],
    }
    gw = build_gateway(demo_config(services.env, overrides))
    await gw.startup()
    yield gw
    await gw.shutdown()


@pytest.fixture
async def client(gateway: Gateway) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=gateway)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as c:
        yield c


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def secret() -> str:
    return demo_config({}).auth.jwt.secret or ""


async def test_scoped_route(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/scoped/x")
    assert r.status_code == 401 and r.headers["www-authenticate"] == 'Bearer realm="bff"'
    assert r.json()["error"]["code"] == "UNAUTHENTICATED"
    r = await client.get("/api/scoped/x", headers=bearer(make_token(secret(), scope="other")))
    assert r.status_code == 403 and r.json()["error"]["message"] == "missing scope: echo:read"
    r = await client.get(
        "/api/scoped/x",
        headers={
            **bearer(make_token(secret(), sub="u-7", scope="echo:read other")),
            "x-auth-subject": "admin",  # a caller cannot pick its own identity
            "x-auth-scopes": "everything",
        },
    )
    assert r.status_code == 200, r.text
    seen = r.json()
    assert seen["x-auth-subject"] == "u-7"
    assert seen["x-auth-scopes"] == "echo:read other"
    assert "authorization" not in seen  # forward_jwt is off


async def test_bad_credentials_on_a_public_route_are_still_401(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/public", headers=bearer("garbage"))
    assert r.status_code == 401 and r.json()["error"]["code"] == "UNAUTHENTICATED"
    r = await client.get("/api/public")
    assert r.status_code == 200 and "x-auth-subject" not in r.json()


async def test_forward_jwt(client: httpx.AsyncClient) -> None:
    token = make_token(secret(), sub="u-8")
    r = await client.get("/api/forwarding", headers=bearer(token))
    assert r.json()["authorization"] == f"Bearer {token}"


async def test_api_keys_never_reach_the_upstream(client: httpx.AsyncClient) -> None:
    created = (
        await client.post(
            "/admin/keys", json={"name": "svc", "scopes": ["echo:read"]}, headers=ADMIN
        )
    ).json()
    for headers in ({"x-api-key": created["key"]}, bearer(created["key"])):
        for path in ("/api/scoped", "/api/forwarding"):
            r = await client.get(path, headers=headers)
            assert r.status_code == 200, r.text
            seen = r.json()
            assert seen["x-auth-subject"] == created["id"]
            assert created["key"] not in r.text
            assert "x-api-key" not in seen and "authorization" not in seen
