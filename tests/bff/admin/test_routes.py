"""Passthrough routes through the admin API: validation, persistence, application everywhere.

In-process gateways for the API itself; a real second gateway process (``bff serve``) sharing
the store for the propagation, by polling (SQLite) and by Redis pub/sub.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bff.config import parse_config
from bff.gateway import Gateway, build_gateway
from tests.conftest import SampleServices
from tests.support.fault_server import FaultApp
from tests.support.gateway import demo_config
from tests.support.processes import GatewayProcess, write_config
from tests.support.servers import ThreadedServer

TOKEN = "demo-admin-token"
ADMIN = {"authorization": f"Bearer {TOKEN}"}
REVIEWS = {
    "id": "reviews",
    "path": "/api/reviews",
    "methods": ["GET"],
    "upstream": "reviews",
    "strip_prefix": "/api",
}


def error_of(r: httpx.Response) -> dict[str, Any]:
    assert r.headers["content-type"].startswith("application/json")
    assert "Traceback" not in r.text
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "request_id"}
    return body["error"]  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def slow() -> Iterator[ThreadedServer]:
    server = ThreadedServer(FaultApp("slow")).start()
    yield server
    server.stop()


@pytest.fixture
async def gateway(services: SampleServices, slow: ThreadedServer) -> AsyncIterator[Gateway]:
    """A fresh gateway (and store) per test, with a ``slow`` upstream."""
    gw = build_gateway(
        demo_config(
            services.env,
            {"rate_limits": {"plans": None}, "upstreams": {"slow": {"targets": [slow.url]}}},
        )
    )
    await gw.startup()
    yield gw
    await gw.shutdown()


@pytest.fixture
async def client(gateway: Gateway) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=gateway)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as c:
        yield c


async def create(client: httpx.AsyncClient, body: dict[str, Any]) -> dict[str, Any]:
    r = await client.post("/admin/routes", json=body, headers=ADMIN)
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


# -- the API -----------------------------------------------------------------------------------


async def test_file_routes_are_listed_read_only(client: httpx.AsyncClient) -> None:
    r = await client.get("/admin/routes", headers=ADMIN)
    assert r.status_code == 200
    routes = r.json()["routes"]
    assert [(x["id"], x["source"], x["active"]) for x in routes] == [
        ("users", "file", True),
        ("products", "file", True),
        ("orders", "file", True),
        ("users-canary", "file", True),
    ]
    users = routes[0]
    assert users["path"] == "/api/users" and users["upstreams"] == ["users"]
    assert users["methods"] == ["GET", "HEAD"]
    assert users["definition"]["cache"] == {"ttl": 30.0}
    one = await client.get("/admin/routes/orders", headers=ADMIN)
    assert one.json()["definition"]["auth"]["scopes"] == ["orders:read"]

    patch = await client.patch("/admin/routes/users", json={"methods": ["GET"]}, headers=ADMIN)
    assert patch.status_code == 403
    assert "configuration file" in error_of(patch)["message"]
    delete = await client.delete("/admin/routes/users", headers=ADMIN)
    assert delete.status_code == 403
    again = await client.post("/admin/routes", json={**REVIEWS, "id": "users"}, headers=ADMIN)
    assert again.status_code == 409
    assert error_of(again)["code"] == "CONFLICT"


async def test_create_serves_at_once_and_persists(
    client: httpx.AsyncClient, gateway: Gateway
) -> None:
    before = await client.get("/api/reviews", params={"product_ids": "1"})
    assert before.status_code == 404
    created = await create(client, REVIEWS)
    assert created["source"] == "admin" and created["active"] is True
    assert created["methods"] == ["GET", "HEAD"] and created["problems"] == []
    assert created["definition"] == REVIEWS
    r = await client.get("/api/reviews", params={"product_ids": "1"})
    assert r.status_code == 200 and "items" in r.json()
    listed = (await client.get("/admin/routes", headers=ADMIN)).json()["routes"]
    assert listed[-1]["id"] == "reviews" and listed[-1]["source"] == "admin"

    assert gateway.store is not None
    stored = await gateway.store.routes.get("reviews")
    assert stored is not None and stored.definition == REVIEWS

    dup = await client.post("/admin/routes", json=REVIEWS, headers=ADMIN)
    assert dup.status_code == 409
    assert "already exists" in error_of(dup)["message"]


async def test_patch_and_delete(client: httpx.AsyncClient) -> None:
    echo = {"id": "echo", "path": "/echoapi", "methods": ["GET"], "upstream": "slow"}
    await create(client, echo)
    refused = await client.post("/echoapi/echo", json={})
    assert refused.status_code == 405 and error_of(refused)["code"] == "METHOD_NOT_ALLOWED"
    r = await client.patch(
        "/admin/routes/echo", json={"methods": ["GET", "POST"], "timeout": 5}, headers=ADMIN
    )
    assert r.status_code == 200, r.text
    assert r.json()["methods"] == ["GET", "HEAD", "POST"]
    assert r.json()["definition"] == {**echo, "methods": ["GET", "POST"], "timeout": 5}
    posted = await client.post("/echoapi/echo", json={})  # served at once
    assert posted.status_code == 200 and posted.json()["method"] == "POST"

    # A merge patch: null removes a key (its default applies).
    r = await client.patch("/admin/routes/echo", json={"timeout": None}, headers=ADMIN)
    assert "timeout" not in r.json()["definition"]

    renamed = await client.patch("/admin/routes/echo", json={"id": "other"}, headers=ADMIN)
    assert renamed.status_code == 422
    assert error_of(renamed)["message"].startswith("id: cannot be changed")
    bad = await client.patch("/admin/routes/echo", json={"upstream": "nope"}, headers=ADMIN)
    assert bad.status_code == 422
    assert error_of(bad)["message"].startswith("upstream: unknown upstream 'nope'")
    # Refused changes change nothing.
    assert (await client.post("/echoapi/echo", json={})).status_code == 200

    missing = await client.patch("/admin/routes/nope", json={}, headers=ADMIN)
    assert missing.status_code == 404 and error_of(missing)["code"] == "NOT_FOUND"

    deleted = await client.delete("/admin/routes/echo", headers=ADMIN)
    assert deleted.status_code == 200 and deleted.json()["id"] == "echo"
    assert (await client.get("/echoapi/echo")).status_code == 404
    assert (await client.get("/admin/routes/echo", headers=ADMIN)).status_code == 404
    assert (await client.delete("/admin/routes/echo", headers=ADMIN)).status_code == 404


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({**REVIEWS, "upstream": "nope"}, 422, "upstream: unknown upstream 'nope' (known: "),
        ({"id": "x", "upstream": "users", "path": "api/reviews"}, 422, "path: must start with '/'"),
        (
            {"id": "x", "upstream": "users", "path": "/api/../admin"},
            422,
            "path: must not contain '.' or '..'",
        ),
        ({**REVIEWS, "bogus": 1}, 422, "bogus: unknown key 'bogus'"),
        ({**REVIEWS, "methods": ["FETCH"]}, 422, "methods[0]: must be one of"),
        ({**REVIEWS, "timeout": -1}, 422, "timeout: must be greater than 0"),
        ({**REVIEWS, "cache": {"ttl": 0}}, 422, "cache.ttl: must be greater than 0"),
        ({**REVIEWS, "id": "has space"}, 422, "id: invalid route id"),
        ({"id": "x", "path": "/x"}, 422, "upstream: is required"),
        (
            {"id": "x", "upstream": "users", "path": "/admin/x"},
            422,
            "path: '/admin/x' is inside the admin path",
        ),
        ({"id": "x", "upstream": "users", "path": "/healthz"}, 422, "path: '/healthz' is already"),
        (
            {"id": "x", "upstream": "users", "path": "/graphql/web/x"},
            422,
            "path: '/graphql/web/x' is inside graphql",
        ),
        (
            {**REVIEWS, "upstream": None, "split": [{"upstream": "users"}, {"upstream": "x"}]},
            422,
            "split[1].upstream: unknown upstream 'x'",
        ),
        (
            {"id": "users-2", "path": "/api/users", "methods": ["GET"], "upstream": "users"},
            422,
            "path: same path and matchers as route 'users' for GET, HEAD: this route would "
            "never match",
        ),
        ([REVIEWS], 422, ""),
        ("reviews", 422, ""),
    ],
)
async def test_invalid_routes_are_refused_with_the_key(
    client: httpx.AsyncClient, body: Any, status: int, message: str
) -> None:
    r = await client.post("/admin/routes", json=body, headers=ADMIN)
    assert r.status_code == status, r.text
    error = error_of(r)
    assert error["code"] == "BAD_USER_INPUT"
    assert error["message"].startswith(message), error["message"]
    assert "Traceback" not in r.text and "127.0.0.1" not in r.text
    listed = (await client.get("/admin/routes", headers=ADMIN)).json()["routes"]
    assert all(x["source"] == "file" for x in listed)


async def test_malformed_json_is_400(client: httpx.AsyncClient) -> None:
    headers = {**ADMIN, "content-type": "application/json"}
    r = await client.post("/admin/routes", content=b"{nope", headers=headers)
    assert r.status_code == 400
    assert error_of(r)["message"] == "the request body is not valid JSON"


async def test_the_admin_token_guards_routes(client: httpx.AsyncClient) -> None:
    for method in ("GET", "POST"):
        r = await client.request(method, "/admin/routes", json=REVIEWS)
        assert r.status_code == 401
    r = await client.get("/admin/openapi.json", headers=ADMIN)
    paths = r.json()["paths"]
    assert set(paths["/admin/routes"]) == {"get", "post"}
    assert set(paths["/admin/routes/{route_id}"]) == {"get", "patch", "delete"}


async def test_in_flight_requests_keep_their_route(client: httpx.AsyncClient) -> None:
    await create(client, {"id": "slow", "path": "/slow", "upstream": "slow"})
    started = asyncio.create_task(client.get("/slow", params={"ms": "400"}))
    await asyncio.sleep(0.15)  # the request is at the upstream now
    r = await client.delete("/admin/routes/slow", headers=ADMIN)
    assert r.status_code == 200
    assert (await client.get("/slow", params={"ms": "0"})).status_code == 404  # new ones: gone
    answer = await started
    assert answer.status_code == 200
    assert answer.json()["path"] == "/slow"


async def test_route_limits_apply_without_configured_limits(client: httpx.AsyncClient) -> None:
    # The gateway started with nothing to limit; a route with a limit gets one all the same.
    await create(client, {**REVIEWS, "rate_limit": {"per_minute": 2}})
    codes = [
        (await client.get("/api/reviews", params={"product_ids": "1"})).status_code
        for _ in range(3)
    ]
    assert codes == [200, 200, 429]


async def test_stored_routes_the_configuration_rejects_are_listed_not_served(
    services: SampleServices, gateway: Gateway, client: httpx.AsyncClient
) -> None:
    await create(client, REVIEWS)
    assert gateway.store is not None
    store_url = gateway.config.store.url
    # Another gateway on the same store, whose configuration has no "reviews" upstream.
    config = demo_config(services.env, {"store": {"url": store_url}})
    upstreams = {k: v for k, v in config.upstreams.items() if k != "reviews"}
    other = build_gateway(config.model_copy(update={"upstreams": upstreams}))
    await other.startup()
    try:
        transport = httpx.ASGITransport(app=other)
        async with httpx.AsyncClient(transport=transport, base_url="http://other") as c:
            route = (await c.get("/admin/routes/reviews", headers=ADMIN)).json()
            assert route["active"] is False
            assert route["problems"][0]["key"] == "upstream"
            assert "unknown upstream 'reviews'" in route["problems"][0]["message"]
            r = await c.get("/api/reviews", params={"product_ids": "1"})
            assert r.status_code == 404
            # Fixing it through that gateway's API makes it served there.
            fixed = await c.patch(
                "/admin/routes/reviews", json={"upstream": "users"}, headers=ADMIN
            )
            assert fixed.status_code == 200 and fixed.json()["active"] is True
    finally:
        await other.shutdown()


# -- a second gateway process --------------------------------------------------------------


def _process_config(
    services: SampleServices, store: Path, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    data: dict[str, Any] = {
        "listen": {"host": "127.0.0.1", "port": 8080, "drain_timeout": 2},
        "store": {"url": f"sqlite:///{store}"},
        "admin": {"token": TOKEN},
        "upstreams": {
            name: {"targets": [services[name].url]}
            for name in ("users", "orders", "products", "reviews")
        },
        "routes": [
            {"id": "users", "path": "/api/users", "upstream": "users", "strip_prefix": "/api"}
        ],
        "observability": {"access_log": "off", "log_level": "info"},
    }
    for key, value in (extra or {}).items():
        data[key] = {**data.get(key, {}), **value} if isinstance(value, dict) else value
    return data


async def _wait_status(url: str, want: int, timeout: float) -> float:
    """Seconds until GET ``url`` answers ``want`` (fails after ``timeout``)."""
    started = time.monotonic()
    async with httpx.AsyncClient() as c:
        while True:
            r = await c.get(url)
            if r.status_code == want:
                return time.monotonic() - started
            if time.monotonic() - started > timeout:
                raise AssertionError(f"{url} still {r.status_code} after {timeout} s: {r.text}")
            await asyncio.sleep(0.02)


async def _propagates(local: Gateway, remote: GatewayProcess, *, within: float) -> list[float]:
    """Create, change and delete a route through ``local``'s admin API; each change reaches
    ``remote``. Returns how long each took."""
    took = []
    transport = httpx.ASGITransport(app=local)
    reviews = remote.url + "/api/reviews?product_ids=1"
    async with httpx.AsyncClient(transport=transport, base_url="http://local") as c:
        await create(c, REVIEWS)
        took.append(await _wait_status(reviews, 200, within))
        r = await c.patch(
            "/admin/routes/reviews",
            json={"path": "/api/v2/reviews", "strip_prefix": "/api/v2"},
            headers=ADMIN,
        )
        assert r.status_code == 200, r.text
        took.append(await _wait_status(remote.url + "/api/v2/reviews?product_ids=1", 200, within))
        assert (await c.delete("/admin/routes/reviews", headers=ADMIN)).status_code == 200
        took.append(await _wait_status(remote.url + "/api/v2/reviews?product_ids=1", 404, within))
    # And the other way: a change made through the process reaches the local gateway.
    async with httpx.AsyncClient(base_url=remote.url) as c:
        r = await c.post("/admin/routes", json={**REVIEWS, "id": "r2"}, headers=ADMIN)
        assert r.status_code == 201, r.text
    transport = httpx.ASGITransport(app=local)
    started = time.monotonic()
    async with httpx.AsyncClient(transport=transport, base_url="http://local") as c:
        while (await c.get("/api/reviews", params={"product_ids": "1"})).status_code != 200:
            assert time.monotonic() - started < within, "the local gateway never saw r2"
            await asyncio.sleep(0.02)
    took.append(time.monotonic() - started)
    return took


@pytest.mark.slow
async def test_changes_reach_a_second_process_by_polling_the_store(
    services: SampleServices, tmp_path: Path
) -> None:
    data = _process_config(services, tmp_path / "shared.db")  # poll_interval: 1 s (default)
    path = write_config(tmp_path / "bff.yaml", data)
    local = build_gateway(parse_config(path.read_text()))
    await local.startup()
    try:
        with GatewayProcess(path) as remote:
            # Applied within 2 s (1 s polling); the margin is for a busy machine.
            took = await _propagates(local, remote, within=2 + 8)
            print("propagation (s):", [round(t, 2) for t in took])
            assert max(took) < 10, took
    finally:
        await local.shutdown()


@pytest.mark.slow
async def test_changes_reach_a_second_process_through_redis(
    services: SampleServices, tmp_path: Path, redis_url: str
) -> None:
    state = {"backend": "redis", "redis_url": redis_url, "key_prefix": f"t-{uuid.uuid4().hex}:"}
    # Polling every minute: only Redis can bring a change within the test's time.
    data = _process_config(
        services, tmp_path / "shared.db", {"state": state, "store": {"poll_interval": 60}}
    )
    path = write_config(tmp_path / "bff.yaml", data)
    local = build_gateway(parse_config(path.read_text()))
    await local.startup()
    try:
        with GatewayProcess(path) as remote:
            took = await _propagates(local, remote, within=2 + 8)
            print("propagation (s):", [round(t, 2) for t in took])
            assert max(took) < 10, took
    finally:
        await local.shutdown()
