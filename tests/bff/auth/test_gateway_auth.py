"""End to end through the demo gateway: JWTs on /graphql/web, API keys on /graphql/iot."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import httpx
import pytest

from bff.cli import demo_token
from bff.gateway import Gateway, build_gateway
from services import ServiceServer
from tests.bff.auth.conftest import make_token
from tests.conftest import SampleServices
from tests.support.gateway import demo_config, gql

ADMIN = {"authorization": "Bearer demo-admin-token"}
DEMO_SECRET = demo_config({}).auth.jwt.secret or ""


@pytest.fixture(scope="module")
async def auth_gateway(services: SampleServices) -> AsyncIterator[Gateway]:
    """A gateway of its own (these tests create and revoke keys), with an orders service of
    its own (they place orders, which the shared one must not see)."""
    orders = ServiceServer("orders").start()
    # Any query on iot here, not only the registered ones (tests/bff/graphql/test_persisted.py).
    iot_open = {"graphql": {"apps": {"iot": {"persisted_queries": "off"}}}}
    gw = build_gateway(demo_config({**services.env, "ORDERS_URL": orders.url}, iot_open))
    await gw.startup()
    yield gw
    await gw.shutdown()
    orders.stop()


@pytest.fixture
async def client(auth_gateway: Gateway) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=auth_gateway, client=("192.0.2.10", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as c:
        yield c


def user(token: str | None = None) -> dict[str, str]:
    return {"authorization": f"Bearer {token or demo_token(DEMO_SECRET)}"}


ME_AND_USERS = "{ me { id name } users(limit: 1) { items { id } } }"
PLACE_ORDER = 'mutation { placeOrder(lines: [{productId: "1", quantity: 2}]) { id status } }'


async def test_me_with_the_demo_jwt(client: httpx.AsyncClient) -> None:
    r = await gql(client, "web", ME_AND_USERS, headers=user())
    assert r.status_code == 200, r.text
    assert r.json()["data"]["me"] == {"id": "1", "name": "User 1"}
    assert "errors" not in r.json()


async def test_me_without_a_token_errors_alone(client: httpx.AsyncClient) -> None:
    r = await gql(client, "web", ME_AND_USERS)
    body = r.json()
    assert r.status_code == 200
    assert body["data"]["me"] is None
    assert body["data"]["users"]["items"]  # the rest of the query still resolves
    assert [e["extensions"]["code"] for e in body["errors"]] == ["UNAUTHENTICATED"]


async def test_place_order_with_orders_write(client: httpx.AsyncClient) -> None:
    r = await gql(client, "web", PLACE_ORDER, headers=user())
    assert r.status_code == 200, r.text
    assert r.json()["data"]["placeOrder"]["id"]


async def test_place_order_without_the_scope_is_forbidden(client: httpx.AsyncClient) -> None:
    token = make_token(DEMO_SECRET, sub="1", scope="orders:read")
    r = await gql(client, "web", PLACE_ORDER, headers=user(token))
    assert [e["extensions"]["code"] for e in r.json()["errors"]] == ["FORBIDDEN"]
    r = await gql(client, "web", PLACE_ORDER)
    assert r.json()["errors"][0]["extensions"]["code"] in ("FORBIDDEN", "UNAUTHENTICATED")


@pytest.mark.parametrize(
    "token",
    ["garbage", make_token("wrong-secret-wrong-secret-wrong-secret!"), make_token(lifetime=-600)],
)
async def test_a_bad_token_is_a_graphql_shaped_401(client: httpx.AsyncClient, token: str) -> None:
    r = await gql(client, "web", ME_AND_USERS, headers=user(token))
    assert r.status_code == 401
    assert r.headers["www-authenticate"].startswith("Bearer")
    (error,) = r.json()["errors"]
    assert error["extensions"]["code"] == "UNAUTHENTICATED"
    assert "data" not in r.json()


async def test_iot_with_an_api_key_from_the_admin_api(
    client: httpx.AsyncClient, auth_gateway: Gateway
) -> None:
    r = await client.post(
        "/admin/keys", json={"name": "sensor-7", "scopes": ["telemetry:write"]}, headers=ADMIN
    )
    assert r.status_code == 201, r.text
    key, key_id = r.json()["key"], r.json()["id"]
    r = await gql(client, "iot", "{ __typename }", headers={"x-api-key": key})
    assert r.status_code == 200 and r.json() == {"data": {"__typename": "Query"}}
    # iot takes API keys only: no credentials, or a user's JWT, is a 401.
    for headers in ({}, user()):
        r = await gql(client, "iot", "{ __typename }", headers=headers)
        assert r.status_code == 401
        assert r.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    # The key is recorded as used, in the background.
    assert auth_gateway.authenticator is not None and auth_gateway.authenticator.keys is not None
    assert auth_gateway.authenticator.keys.last_used is not None
    assert key_id in auth_gateway.authenticator.keys.last_used.pending


async def test_a_revoked_key_stops_working_within_2_s(client: httpx.AsyncClient) -> None:
    r = await client.post("/admin/keys", json={"name": "to-revoke"}, headers=ADMIN)
    key, key_id = r.json()["key"], r.json()["id"]
    assert (await gql(client, "iot", "{ __typename }", headers={"x-api-key": key})).is_success
    assert (await client.delete(f"/admin/keys/{key_id}", headers=ADMIN)).status_code == 200
    revoked_at = time.monotonic()
    while True:
        r = await gql(client, "iot", "{ __typename }", headers={"x-api-key": key})
        if r.status_code == 401:
            break
        assert time.monotonic() - revoked_at < 2.0, "the revoked key still works"
        await asyncio.sleep(0.05)
    assert r.json()["errors"][0]["message"] == "invalid API key"


async def test_health_and_admin_are_not_authenticated_as_callers(
    client: httpx.AsyncClient,
) -> None:
    r = await client.get("/healthz", headers=user("garbage"))
    assert r.status_code == 200
    r = await client.get("/admin/services", headers=ADMIN)  # the admin token is no JWT
    assert r.status_code == 200


async def test_the_gateway_closes_the_store(services: SampleServices) -> None:
    gw = build_gateway(demo_config(services.env))
    await gw.startup()
    assert gw.store is not None and gw.store.is_open
    await gw.shutdown()
    assert not gw.store.is_open
