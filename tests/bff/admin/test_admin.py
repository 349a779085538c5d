"""The admin API through the gateway: token, key lifecycle, authenticate, services, errors."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from bff.admin import build_admin_app
from bff.auth import ApiKeyManager, Authenticator, LocalKeyEvents
from bff.cli import demo_token
from bff.gateway import Gateway, build_gateway
from bff.store import Store
from tests.conftest import SampleServices
from tests.support.gateway import demo_config

TOKEN = "demo-admin-token"
ADMIN = {"authorization": f"Bearer {TOKEN}"}
DEMO_SECRET = demo_config({}).auth.jwt.secret or ""


async def started(config_overrides: dict[str, Any], services: SampleServices) -> Gateway:
    gw = build_gateway(demo_config(services.env, config_overrides))
    await gw.startup()
    return gw


@pytest.fixture(scope="module")
async def admin_gateway(services: SampleServices) -> AsyncIterator[Gateway]:
    gw = await started({}, services)
    yield gw
    await gw.shutdown()


@pytest.fixture
async def client(admin_gateway: Gateway) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=admin_gateway)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as c:
        yield c


async def create(client: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    body.setdefault("name", "a key")
    r = await client.post("/admin/keys", json=body, headers=ADMIN)
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


def error_of(r: httpx.Response) -> dict[str, Any]:
    assert r.headers["content-type"].startswith("application/json")
    assert "Traceback" not in r.text
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "request_id"}
    return body["error"]  # type: ignore[no-any-return]


# -- the door ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "headers"),
    [
        ({"admin": {"token": ""}}, ADMIN),
        ({"admin": {"token": ""}}, {}),
        # Disabled, the admin path is a path like any other: no credentials, 404.
        ({"admin": {"enabled": False}}, {}),
    ],
    ids=["no-token", "no-token-no-header", "disabled"],
)
async def test_admin_off_answers_404_everywhere(
    services: SampleServices, overrides: dict[str, Any], headers: dict[str, str]
) -> None:
    gw = await started(overrides, services)
    try:
        transport = httpx.ASGITransport(app=gw)
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as c:
            for method, path in (
                ("GET", "/admin/keys"),
                ("POST", "/admin/keys"),
                ("GET", "/admin/openapi.json"),
                ("GET", "/admin"),
                ("POST", "/admin/authenticate"),
            ):
                r = await c.request(method, path, headers=headers)
                assert r.status_code == 404, (method, path)
                assert error_of(r)["code"] == "NOT_FOUND"
            if overrides["admin"].get("enabled") is False:
                # Any bearer token is judged like on every other path: no hint of an admin API.
                admin = await c.get("/admin/keys", headers=ADMIN)
                other = await c.get("/no-such-path", headers=ADMIN)
                assert admin.status_code == other.status_code == 401
                assert error_of(admin)["message"] == error_of(other)["message"]
    finally:
        await gw.shutdown()


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"authorization": "Bearer wrong"},
        {"authorization": f"Bearer {TOKEN}x"},
        {"authorization": f"Basic {TOKEN}"},
        {"authorization": "Bearer"},
        {"authorization": "Bearer <a user's JWT>"},
    ],
)
async def test_wrong_or_missing_token_is_401(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    if headers.get("authorization") == "Bearer <a user's JWT>":
        headers = {"authorization": f"Bearer {demo_token(DEMO_SECRET)}"}
    for path in ("/admin/keys", "/admin/openapi.json", "/admin/nope"):
        r = await client.get(path, headers=headers)
        assert r.status_code == 401
        assert r.headers["www-authenticate"] == 'Bearer realm="bff"'
        assert error_of(r)["code"] == "UNAUTHENTICATED"


async def test_openapi_is_published(client: httpx.AsyncClient) -> None:
    r = await client.get("/admin/openapi.json", headers=ADMIN)
    assert r.status_code == 200
    paths = r.json()["paths"]
    assert {"/admin/keys", "/admin/keys/{key_id}", "/admin/authenticate", "/admin/services"} <= set(
        paths
    )
    assert set(paths["/admin/keys/{key_id}"]) == {"get", "patch", "delete"}


# -- keys --------------------------------------------------------------------------------------


async def test_create_shows_the_key_once(client: httpx.AsyncClient) -> None:
    created = await create(
        client,
        name="mobile-ios",
        owner="team-mobile",
        scopes=["orders:read", "orders:read", "users:read"],
        tier="pro",
        expires_at="2099-01-01T00:00:00Z",
        allowed_ips=["10.0.0.0/8", "2001:db8::/32"],
    )
    assert created["key"].startswith("bff_") and created["key"].startswith(created["prefix"])
    assert created["scopes"] == ["orders:read", "users:read"]
    assert created["expires_at"] == "2099-01-01T00:00:00Z"
    assert created["active"] is True and created["last_used"] is None
    listed = await client.get("/admin/keys", headers=ADMIN)
    assert created["key"] not in listed.text and "hash" not in listed.text
    one = await client.get(f"/admin/keys/{created['id']}", headers=ADMIN)
    assert one.status_code == 200 and "key" not in one.json()
    assert one.json() == {k: v for k, v in created.items() if k != "key"}


async def test_list_filters_and_pages(client: httpx.AsyncClient) -> None:
    owner = f"owner-{time.monotonic_ns()}"
    ids = [(await create(client, owner=owner, name=f"k{i}"))["id"] for i in range(3)]
    r = await client.get("/admin/keys", params={"owner": owner}, headers=ADMIN)
    assert [k["id"] for k in r.json()["items"]] == ids
    r = await client.get(
        "/admin/keys", params={"owner": owner, "limit": 1, "offset": 1}, headers=ADMIN
    )
    assert [k["id"] for k in r.json()["items"]] == ids[1:2]
    await client.delete(f"/admin/keys/{ids[0]}", headers=ADMIN)
    r = await client.get("/admin/keys", params={"owner": owner, "active": "true"}, headers=ADMIN)
    assert [k["id"] for k in r.json()["items"]] == ids[1:]
    r = await client.get("/admin/keys", params={"limit": 0}, headers=ADMIN)
    assert r.status_code == 422 and "limit" in error_of(r)["message"]


async def test_patch_and_delete(client: httpx.AsyncClient) -> None:
    created = await create(client, expires_at="2099-01-01T00:00:00+02:00")
    key_id = created["id"]
    r = await client.patch(
        f"/admin/keys/{key_id}",
        json={"scopes": ["a"], "tier": "enterprise", "expires_at": None},
        headers=ADMIN,
    )
    assert r.status_code == 200, r.text
    assert (r.json()["scopes"], r.json()["tier"], r.json()["expires_at"]) == (
        ["a"],
        "enterprise",
        None,
    )
    r = await client.patch(f"/admin/keys/{key_id}", json={"active": False}, headers=ADMIN)
    assert r.json()["active"] is False
    r = await client.patch(f"/admin/keys/{key_id}", json={"active": True}, headers=ADMIN)
    assert r.json()["active"] is True
    r = await client.delete(f"/admin/keys/{key_id}", headers=ADMIN)
    assert r.status_code == 200 and r.json()["active"] is False
    r = await client.delete(f"/admin/keys/{key_id}", headers=ADMIN)  # idempotent
    assert r.status_code == 200


@pytest.mark.parametrize("method", ["GET", "PATCH", "DELETE"])
async def test_unknown_key_is_404(client: httpx.AsyncClient, method: str) -> None:
    r = await client.request(method, "/admin/keys/key_0000", json={"active": False}, headers=ADMIN)
    assert r.status_code == 404
    assert error_of(r)["message"] == "no API key with id 'key_0000'"


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({}, 422, "name: Field required"),
        ({"name": ""}, 422, "name must be a non-empty string"),
        ({"name": "a\r\nb"}, 422, "control"),
        ({"name": "x", "extra": 1}, 422, "extra"),
        ({"name": "x", "scopes": "orders:read"}, 422, "scopes"),
        ({"name": "x", "scopes": ["has space"]}, 422, "invalid scope"),
        ({"name": "x", "tier": "gold"}, 400, "unknown tier 'gold'"),
        ({"name": "x", "allowed_ips": ["300.1.1.1/8"]}, 422, "invalid CIDR"),
        ({"name": "x", "expires_at": "yesterday"}, 422, "expires_at"),
        ({"name": "x", "expires_at": "2000-01-01T00:00:00Z"}, 400, "future"),
        ([1, 2], 422, ""),
    ],
)
async def test_invalid_create_bodies(
    client: httpx.AsyncClient, body: Any, status: int, message: str
) -> None:
    r = await client.post("/admin/keys", json=body, headers=ADMIN)
    assert r.status_code == status, r.text
    assert message in error_of(r)["message"]
    assert error_of(r)["code"] == "BAD_USER_INPUT"


async def test_malformed_json_is_400(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/admin/keys", content=b'{"name": ', headers={**ADMIN, "content-type": "application/json"}
    )
    assert r.status_code == 400
    assert error_of(r)["message"] == "the request body is not valid JSON"


@pytest.mark.parametrize(
    "body",
    [{"name": None}, {"scopes": None}, {"active": "maybe"}, {"tier": "no spaces allowed"}],
)
async def test_invalid_patches(client: httpx.AsyncClient, body: dict[str, Any]) -> None:
    key_id = (await create(client))["id"]
    r = await client.patch(f"/admin/keys/{key_id}", json=body, headers=ADMIN)
    assert r.status_code in (400, 422), r.text
    error_of(r)


async def test_sql_metacharacters_in_names(client: httpx.AsyncClient) -> None:
    name = "x'); DELETE FROM bff_api_keys; --"
    created = await create(client, name=name, owner="o'brien")
    r = await client.get(f"/admin/keys/{created['id']}", headers=ADMIN)
    assert r.json()["name"] == name
    r = await client.get("/admin/keys/x';--", headers=ADMIN)
    assert r.status_code == 422
    r = await client.get("/admin/keys", params={"owner": "' OR '1'='1"}, headers=ADMIN)
    assert r.json()["items"] == []


async def test_unknown_paths_and_methods(client: httpx.AsyncClient) -> None:
    r = await client.get("/admin/nothing-here", headers=ADMIN)
    assert r.status_code == 404 and error_of(r)["code"] == "NOT_FOUND"
    r = await client.put("/admin/keys", headers=ADMIN)
    assert r.status_code == 405 and error_of(r)["code"] == "METHOD_NOT_ALLOWED"


# -- authenticate ------------------------------------------------------------------------------


async def test_authenticate_a_key(client: httpx.AsyncClient) -> None:
    created = await create(client, scopes=["b", "a"], tier="pro", allowed_ips=["10.0.0.0/8"])
    r = await client.post("/admin/authenticate", json={"key": created["key"]}, headers=ADMIN)
    assert r.json() == {
        "valid": True,
        "principal": {
            "kind": "api_key",
            "subject": created["id"],
            "scopes": ["a", "b"],
            "tier": "pro",
        },
        "reason": None,
    }
    r = await client.post(
        "/admin/authenticate",
        json={"key": created["key"], "client_ip": "192.0.2.1"},
        headers=ADMIN,
    )
    assert r.json()["valid"] is False and "allowlist" in r.json()["reason"]
    wrong = created["key"][:12] + "x" * 35
    r = await client.post("/admin/authenticate", json={"key": wrong}, headers=ADMIN)
    assert r.json() == {"valid": False, "principal": None, "reason": "wrong secret"}
    assert created["key"] not in r.text
    await client.delete(f"/admin/keys/{created['id']}", headers=ADMIN)
    r = await client.post("/admin/authenticate", json={"key": created["key"]}, headers=ADMIN)
    assert r.json()["reason"] == "key revoked"
    r = await client.post("/admin/authenticate", json={"key": "nonsense"}, headers=ADMIN)
    assert r.json()["valid"] is False


async def test_authenticate_a_token(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/admin/authenticate", json={"token": demo_token(DEMO_SECRET)}, headers=ADMIN
    )
    assert r.json()["principal"] == {
        "kind": "user",
        "subject": "1",
        "scopes": ["orders:read", "orders:write"],
        "tier": "pro",
    }
    r = await client.post("/admin/authenticate", json={"token": "x.y.z"}, headers=ADMIN)
    assert r.json() == {"valid": False, "principal": None, "reason": "not a well-formed JWT"}


@pytest.mark.parametrize("body", [{}, {"key": "a", "token": "b"}, {"key": 5}])
async def test_authenticate_needs_exactly_one_credential(
    client: httpx.AsyncClient, body: dict[str, Any]
) -> None:
    r = await client.post("/admin/authenticate", json=body, headers=ADMIN)
    assert r.status_code == 422
    error_of(r)


# -- services ----------------------------------------------------------------------------------


async def test_services(client: httpx.AsyncClient, services: SampleServices) -> None:
    r = await client.get("/admin/services", headers=ADMIN)
    assert r.status_code == 200
    by_name = {s["name"]: s for s in r.json()["services"]}
    assert set(by_name) == {"users", "orders", "products", "reviews", "users_next"}
    assert [t["url"] for t in by_name["users"]["targets"]] == [services["users"].url]


# -- failures ----------------------------------------------------------------------------------


async def test_store_down_is_503(admin_gateway: Gateway, client: httpx.AsyncClient) -> None:
    assert admin_gateway.store is not None
    await admin_gateway.store.aclose()
    try:
        r = await client.get("/admin/keys", headers=ADMIN)
        assert r.status_code == 503
        assert error_of(r)["code"] == "SERVICE_UNAVAILABLE"
        assert admin_gateway.store.url not in r.text
    finally:
        await admin_gateway.store.open()


async def test_unexpected_errors_are_masked(tmp_path: Any) -> None:
    store = Store(f"sqlite:///{tmp_path}/x.db")  # never opened: this manager's lookups blow up
    manager = ApiKeyManager(store, LocalKeyEvents())

    async def broken(**_: Any) -> Any:
        raise RuntimeError("secret internal detail")

    manager.list = broken  # type: ignore[method-assign]
    app = build_admin_app(
        path="/admin", token="t", manager=manager, authenticator=Authenticator(), upstreams={}
    )
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as c:
        r = await c.get("/admin/keys", headers={"authorization": "Bearer t"})
    assert r.status_code == 500
    assert error_of(r) == {
        "code": "INTERNAL_SERVER_ERROR",
        "message": "internal server error",
        "request_id": None,
    }
    assert "secret internal detail" not in r.text
