"""The authentication edge layer: principal in the scope, refusals shaped by the path's kind."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest

from bff.asgi import Receive, Scope, Send, send_response
from bff.auth import (
    PRINCIPAL_KEY,
    ApiKeyCache,
    ApiKeyManager,
    ApiKeyVerifier,
    AuthenticationLayer,
    Authenticator,
    JWTVerifier,
    KeySpec,
    LocalKeyEvents,
    Principal,
)
from bff.edge import RequestIdLayer
from bff.store import Store
from tests.bff.auth.conftest import HS_SECRET, make_token


async def echo(scope: Scope, receive: Receive, send: Send) -> None:
    p: Principal = scope[PRINCIPAL_KEY]
    body = orjson.dumps(
        {
            "kind": p.kind,
            "subject": p.subject,
            "scopes": sorted(p.scopes),
            "tier": p.tier,
            "ip": p.client_ip,
        }
    )
    await send_response(send, 200, body, [("content-type", "application/json")])


async def no_principal(scope: Scope, receive: Receive, send: Send) -> None:
    assert PRINCIPAL_KEY not in scope
    await send_response(send, 204, b"", [])


class Env:
    def __init__(self, store: Store) -> None:
        events = LocalKeyEvents()
        cache = ApiKeyCache(store.api_keys.find_by_prefix, ttl=2)
        self.manager = ApiKeyManager(store, events)
        self.authenticator = Authenticator(
            jwt=JWTVerifier(algorithms=["HS256"], secret=HS_SECRET),
            keys=ApiKeyVerifier(cache),
            key_events=events,
            api_key_header="X-Device-Key",
        )
        self.store = store

    def app(self, **kw: Any) -> Any:
        async def router(scope: Scope, receive: Receive, send: Send) -> None:
            exempt = scope["path"].startswith(("/admin/", "/healthz")) or scope["path"] == "/admin"
            target = no_principal if exempt else echo
            await target(scope, receive, send)

        kw.setdefault("graphql_paths", ["/graphql/web"])
        kw.setdefault("exempt_paths", ["/healthz"])
        kw.setdefault("exempt_prefixes", ["/admin"])
        return RequestIdLayer(AuthenticationLayer(router, self.authenticator, **kw))


@pytest.fixture
async def env(sqlite_store: Store) -> Env:
    return Env(sqlite_store)


@pytest.fixture
async def client(env: Env) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=env.app(), client=("203.0.113.9", 4711))
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as c:
        yield c


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


async def test_no_credentials_is_anonymous_with_the_peer_ip(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/x")
    assert r.json() == {
        "kind": "anonymous",
        "subject": None,
        "scopes": [],
        "tier": "anonymous",
        "ip": "203.0.113.9",
    }


async def test_valid_jwt(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/x", headers=bearer(make_token(scope="a b", tier="pro")))
    assert r.json() == {
        "kind": "user",
        "subject": "42",
        "scopes": ["a", "b"],
        "tier": "pro",
        "ip": "203.0.113.9",
    }


async def test_api_key_in_its_header_or_as_a_bearer_token(
    client: httpx.AsyncClient, env: Env
) -> None:
    record, key = await env.manager.create(KeySpec(name="d", scopes=("t:w",)))
    for headers in ({"x-device-key": key}, bearer(key)):
        r = await client.get("/api/x", headers=headers)
        assert r.status_code == 200
        assert r.json()["kind"] == "api_key" and r.json()["subject"] == record.id


@pytest.mark.parametrize(
    "headers",
    [
        bearer("garbage"),
        bearer(make_token(lifetime=-300)),
        bearer(make_token(key="wrong-secret-wrong-secret-wrong-secret-0")),
        bearer(make_token(sub="x\ny")),
        {"authorization": "Basic dXNlcjpwdw=="},
        {"authorization": "Bearer"},
        {"authorization": ""},
        {"x-device-key": "bff_" + "A" * 43},
        {"x-device-key": "not-a-key"},
    ],
)
async def test_bad_credentials_are_401_rest_shaped(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    r = await client.get("/api/x", headers=headers)
    assert r.status_code == 401
    assert r.headers["www-authenticate"] in ('Bearer realm="bff"', 'ApiKey realm="bff"')
    body = r.json()["error"]
    assert body["code"] == "UNAUTHENTICATED"
    assert body["request_id"] == r.headers["x-request-id"]
    assert "Traceback" not in r.text and HS_SECRET not in r.text


async def test_bad_credentials_on_a_graphql_path_are_graphql_shaped(
    client: httpx.AsyncClient,
) -> None:
    for path in ("/graphql/web", "/graphql/web/"):
        r = await client.post(path, json={"query": "{ a }"}, headers=bearer("garbage"))
        assert r.status_code == 401
        assert r.headers["content-type"] == "application/json"
        assert r.headers["www-authenticate"] == 'Bearer realm="bff"'
        assert r.json() == {
            "errors": [
                {"message": "invalid bearer token", "extensions": {"code": "UNAUTHENTICATED"}}
            ]
        }
    r = await client.post(
        "/graphql/web",
        json={"query": "{ a }"},
        headers={**bearer("garbage"), "accept": "application/graphql-response+json"},
    )
    assert r.headers["content-type"] == "application/graphql-response+json"


async def test_expired_token_says_so(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/x", headers=bearer(make_token(lifetime=-300)))
    assert r.json()["error"]["message"] == "bearer token expired"


async def test_two_credentials_or_a_repeated_header_are_refused(
    client: httpx.AsyncClient, env: Env
) -> None:
    _, key = await env.manager.create(KeySpec(name="d"))
    r = await client.get("/api/x", headers={**bearer(make_token()), "x-device-key": key})
    assert r.status_code == 401 and "not both" in r.json()["error"]["message"]
    r = await client.get(
        "/api/x",
        headers=[("authorization", f"Bearer {make_token()}"), ("authorization", "Bearer x")],
    )
    assert r.status_code == 401


async def test_exempt_paths_are_not_authenticated(client: httpx.AsyncClient) -> None:
    for path in ("/admin", "/admin/keys", "/healthz"):
        r = await client.get(path, headers=bearer("an-admin-token-not-a-jwt"))
        assert r.status_code in (200, 204), path
    r = await client.get("/administrator", headers=bearer("garbage"))
    assert r.status_code == 401  # a prefix matches whole segments only


async def test_store_down_is_503_with_retry_after(client: httpx.AsyncClient, env: Env) -> None:
    _, key = await env.manager.create(KeySpec(name="d"))
    await env.store.aclose()
    try:
        r = await client.get("/api/x", headers={"x-device-key": key})
        assert r.status_code == 503 and r.headers["retry-after"] == "2"
        assert r.json()["error"]["code"] == "SERVICE_UNAVAILABLE"
    finally:
        await env.store.open()


async def test_client_ip_resolver_is_pluggable(env: Env) -> None:
    def forwarded(scope: Scope) -> str | None:
        return "198.51.100.1"

    transport = httpx.ASGITransport(app=env.app(client_ip=forwarded))
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as c:
        assert (await c.get("/")).json()["ip"] == "198.51.100.1"
        assert (await c.get("/", headers=bearer(make_token()))).json()["ip"] == "198.51.100.1"


async def test_no_jwt_configured_refuses_bearer_tokens(env: Env) -> None:
    authenticator = Authenticator(jwt=JWTVerifier(algorithms=["RS256"]), keys=None)
    app = AuthenticationLayer(echo, authenticator)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as c:
        assert (await c.get("/", headers=bearer(make_token()))).status_code == 401
        assert (await c.get("/", headers={"x-api-key": "bff_" + "a" * 43})).status_code == 401
        assert (await c.get("/")).json()["kind"] == "anonymous"


async def test_non_http_scopes_pass_through(env: Env) -> None:
    seen: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope["type"])

    layer = AuthenticationLayer(app, env.authenticator)
    await layer({"type": "lifespan"}, None, None)  # type: ignore[arg-type]
    assert seen == ["lifespan"]
