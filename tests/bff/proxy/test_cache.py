"""The response cache of passthrough routes (``cache:``), end to end.

Against the real sample services (the demo's ``products`` and ``users`` routes have ``cache:``)
and against :class:`Origin`, a small upstream whose ``Cache-Control``, ``Set-Cookie``, ``ETag``,
``Vary``, status and body size each request chooses in its query string. Both stores: memory and
Redis (the ``redis_url`` fixture).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import httpx
import jwt
import orjson
import pytest

from bff.cache import MemoryCacheStore
from bff.config import parse_config
from bff.gateway import Gateway, build_gateway
from bff.proxy import Proxy
from services import ServiceServer
from tests.conftest import SampleServices
from tests.support.gateway import demo_config
from tests.support.passthrough import asgi_request, gateway_config, running_gateway
from tests.support.servers import ThreadedServer

MiB = 1024 * 1024
SECRET = "a-test-secret-for-the-response-cache-tests-0123456789abcdef"


def bearer(subject: str) -> dict[str, str]:
    now = int(time.time())
    token = jwt.encode({"sub": subject, "iat": now, "exp": now + 300}, SECRET, algorithm="HS256")
    return {"authorization": f"Bearer {token}"}


class Origin:
    """An upstream whose answer each request shapes through its query string.

    ``cc``: Cache-Control; ``cookie=1``: a Set-Cookie; ``etag``: an ETag; ``vary``: a Vary;
    ``status``: the status; ``size``: a body of that many bytes (streamed, no Content-Length).
    Otherwise the body is JSON: the request's number for its path and query (``n``), and what it
    got in ``Accept-Language``, ``X-Tenant`` and ``X-Forwarded-Host`` (an app building links from
    it). ``failing``: every answer is that status.
    """

    def __init__(self) -> None:
        self.hits: Counter[str] = Counter()
        self.failing: int | None = None
        self.latency_ms = 0.0

    def count(self, target: str) -> int:
        return self.hits[target]

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        query = scope["query_string"].decode("latin-1")
        target = scope["path"] + ("?" + query if query else "")
        self.hits[target] += 1
        if self.latency_ms:
            await asyncio.sleep(self.latency_ms / 1000)
        if self.failing is not None:
            await _send(send, self.failing, [], b'{"error": "down"}')
            return
        params = dict(parse_qsl(query))
        headers: list[tuple[bytes, bytes]] = []
        for param, name in (("cc", b"cache-control"), ("etag", b"etag"), ("vary", b"vary")):
            if param in params:
                headers.append((name, params[param].encode()))
        if params.get("cookie") == "1":
            headers.append((b"set-cookie", b"session=abc; HttpOnly"))
        status = int(params.get("status", "200"))
        if "size" in params:
            await send({"type": "http.response.start", "status": status, "headers": headers})
            left = int(params["size"])
            while left > 0:
                chunk = min(left, 64 * 1024)
                left -= chunk
                await send({"type": "http.response.body", "body": b"x" * chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
            return
        got = {k.decode(): v.decode("latin-1") for k, v in scope["headers"]}
        body = {
            "n": self.hits[target],
            "lang": got.get("accept-language"),
            "tenant": got.get("x-tenant"),
            "forwarded_host": got.get("x-forwarded-host"),
            "conditional": got.get("if-none-match"),
        }
        await _send(send, status, headers, orjson.dumps(body))


async def _send(send: Any, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    headers = [
        *headers,
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@pytest.fixture(scope="module")
def origin_server() -> Iterator[ThreadedServer]:
    server = ThreadedServer(Origin(), lifespan="off").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def origin(origin_server: ThreadedServer) -> Origin:
    app: Origin = origin_server.app
    app.hits.clear()
    app.failing = None
    app.latency_ms = 0.0
    return app


@pytest.fixture(params=["memory", "redis"])
def state(request: pytest.FixtureRequest) -> dict[str, Any]:
    """``state:`` of the gateway under test: each store in turn."""
    if request.param == "memory":
        return {"backend": "memory"}
    url = request.getfixturevalue("redis_url")
    return {"backend": "redis", "redis_url": url, "key_prefix": f"bff-rest-{uuid.uuid4().hex}:"}


def origin_routes(url: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    ups = {"origin": {"targets": [url], "retries": {"attempts": 0}}}
    rts: list[dict[str, Any]] = [
        {
            "id": "cached",
            "path": "/c",
            "upstream": "origin",
            "methods": ["GET", "POST"],
            "cache": {"ttl": 60, "stale_if_error": 300, "vary": ["x-tenant"]},
        },
        {
            "id": "authorized",
            "path": "/a",
            "upstream": "origin",
            "cache": {"ttl": 60, "authorized": True},
        },
        {"id": "plain", "path": "/p", "upstream": "origin"},
    ]
    return ups, rts


@asynccontextmanager
async def origin_gateway(
    origin_server: ThreadedServer, state: dict[str, Any] | None = None
) -> AsyncIterator[tuple[Gateway, httpx.AsyncClient]]:
    ups, rts = origin_routes(origin_server.url)
    extra: dict[str, Any] = {"state": state} if state else {}
    async with running_gateway(gateway_config(ups, rts, **extra)) as pair:
        yield pair


def later(gateway: Gateway, seconds: float) -> None:
    """Move the response cache's clock ``seconds`` ahead."""
    proxy = gateway.proxy
    assert isinstance(proxy, Proxy) and proxy.response_cache is not None
    proxy.response_cache.clock = lambda: time.time() + seconds


# -- the sample services, both stores ---------------------------------------------------------


@asynccontextmanager
async def demo_gateway(
    env: dict[str, str], state: dict[str, Any] | None = None, **overrides: Any
) -> AsyncIterator[tuple[Gateway, httpx.AsyncClient]]:
    merged: dict[str, Any] = dict(overrides)
    if state:
        merged["state"] = state
    gateway = build_gateway(demo_config(env, merged))
    await gateway.startup()
    try:
        transport = httpx.ASGITransport(app=gateway)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            yield gateway, client
    finally:
        await gateway.shutdown()


async def test_a_miss_then_hits_with_one_upstream_request(
    services: SampleServices, state: dict[str, Any]
) -> None:
    services.reset()
    async with demo_gateway(services.env, state) as (_, client):
        first = await client.get("/api/products/3")
        assert first.status_code == 200 and first.json()["name"] == "Product 3"
        assert first.headers["x-cache"] == "MISS" and first.headers["age"] == "0"
        etag = first.headers["etag"]
        second = await client.get("/api/products/3")
        assert second.headers["x-cache"] == "HIT" and second.content == first.content
        assert second.headers["etag"] == etag and int(second.headers["age"]) >= 0
        head = await client.head("/api/products/3")
        assert head.status_code == 200 and head.content == b""
        assert head.headers["x-cache"] == "HIT"
        assert head.headers["content-length"] == str(len(first.content))
        same = await client.get("/api/products/3", headers={"if-none-match": etag})
        assert same.status_code == 304 and same.content == b"" and same.headers["etag"] == etag
        other = await client.get("/api/products/3", headers={"if-none-match": 'W/"other"'})
        assert other.status_code == 200 and other.headers["x-cache"] == "HIT"
    assert services.requests()["products"] == 1


async def test_a_hundred_concurrent_misses_make_one_upstream_request(
    services: SampleServices, state: dict[str, Any]
) -> None:
    services.reset()
    services["users"].latency_ms = 100  # every miss arrives while the first is in flight
    try:
        async with demo_gateway(services.env, state) as (_, client):
            answers = await asyncio.gather(*(client.get("/api/users/5") for _ in range(100)))
    finally:
        services["users"].latency_ms = 0
    assert {r.status_code for r in answers} == {200}
    assert len({r.content for r in answers}) == 1
    stats = services.stats()["users"]
    assert stats["requests"] == 1, stats


async def test_stale_if_error_serves_the_entry_while_the_service_is_down() -> None:
    own = ServiceServer("products").start()  # stopped below: not the shared one
    try:
        env = {"PRODUCTS_URL": own.url, "USERS_URL": own.url, "ORDERS_URL": own.url}
        env |= {"REVIEWS_URL": own.url, "USERS_NEXT_URL": own.url}
        breaker = {"failure_threshold": 1, "recovery_timeout": 30}
        ups = {"products": {"retries": {"attempts": 0}, "breaker": breaker}}
        async with demo_gateway(env, upstreams=ups) as (gateway, client):
            fresh = await client.get("/api/products/8")
            assert fresh.headers["x-cache"] == "MISS"
            own.stop()
            # Still fresh: a hit, the service is not asked.
            assert (await client.get("/api/products/8")).headers["x-cache"] == "HIT"
            later(gateway, 61)  # past the route's ttl (60), within stale_if_error (300)
            for _ in range(3):  # the first failure opens the breaker; STALE either way
                stale = await client.get("/api/products/8")
                assert stale.status_code == 200 and stale.headers["x-cache"] == "STALE"
                assert stale.content == fresh.content and int(stale.headers["age"]) >= 61
            never_cached = await client.get("/api/products/9")
            assert never_cached.status_code in (502, 503)
            assert never_cached.json()["error"]["code"].startswith("UPSTREAM_")
            assert own.url not in never_cached.text
            later(gateway, 60 + 300 + 1)  # past the window: the error, cleanly
            gone = await client.get("/api/products/8")
            assert gone.status_code in (502, 503) and "x-cache" not in gone.headers
    finally:
        own.stop()


# -- Cache-Control, Set-Cookie, ETag, status ----------------------------------------------------


async def hits(client: httpx.AsyncClient, path: str, n: int = 2, **kw: Any) -> list[str]:
    return [(await client.get(path, **kw)).headers.get("x-cache", "-") for _ in range(n)]


async def test_the_upstreams_cache_control_wins_over_the_ttl(
    origin_server: ThreadedServer, origin: Origin
) -> None:
    async with origin_gateway(origin_server) as (gateway, client):
        assert await hits(client, "/c/r?cc=no-store") == ["MISS", "MISS"]
        assert await hits(client, "/c/r?cc=no-cache") == ["MISS", "MISS"]
        assert await hits(client, "/c/r?cc=private,max-age=60") == ["MISS", "MISS"]
        assert await hits(client, "/c/r?cc=max-age=0") == ["MISS", "MISS"]
        assert await hits(client, "/c/r?cc=max-age=junk") == ["MISS", "MISS"]
        assert await hits(client, "/c/r?cc=max-age=5") == ["MISS", "HIT"]
        assert await hits(client, "/c/r?cc=max-age=5,s-maxage=100") == ["MISS", "HIT"]
        assert await hits(client, "/c/r?cc=public,max-age=100") == ["MISS", "HIT"]
        later(gateway, 6)  # max-age=5 is over; s-maxage=100 and max-age=100 are not
        assert await hits(client, "/c/r?cc=max-age=5", 1) == ["MISS"]
        assert await hits(client, "/c/r?cc=max-age=5,s-maxage=100", 1) == ["HIT"]
        later(gateway, 61)  # the route's ttl is 60, the upstream said 100
        assert await hits(client, "/c/r?cc=public,max-age=100", 1) == ["HIT"]
    assert origin.count("/c/r?cc=no-store") == 2


async def test_set_cookie_and_other_statuses_are_never_stored(
    origin_server: ThreadedServer, origin: Origin
) -> None:
    async with origin_gateway(origin_server) as (_, client):
        assert await hits(client, "/c/r?cookie=1") == ["MISS", "MISS"]
        assert (await client.get("/c/r?cookie=1")).headers["set-cookie"].startswith("session=")
        assert await hits(client, "/c/r?status=404") == ["MISS", "MISS"]
        assert await hits(client, "/c/r?status=201") == ["MISS", "MISS"]
        assert await hits(client, "/c/r?vary=*") == ["MISS", "MISS"]
    assert origin.count("/c/r?cookie=1") == 3


async def test_etags_are_kept_from_the_upstream_and_answer_304(
    origin_server: ThreadedServer, origin: Origin
) -> None:
    async with origin_gateway(origin_server) as (_, client):
        first = await client.get("/c/r?etag=%22v1%22", headers={"if-none-match": '"v1"'})
        # The upstream was asked for the whole answer (to store it), the client gets its 304.
        assert first.status_code == 304 and first.headers["etag"] == '"v1"'
        assert first.headers["x-cache"] == "MISS"
        full = await client.get("/c/r?etag=%22v1%22")
        assert full.status_code == 200 and full.json()["conditional"] is None
        for condition in ('W/"v1"', '"x", "v1"', "*"):
            r = await client.get("/c/r?etag=%22v1%22", headers={"if-none-match": condition})
            assert r.status_code == 304 and r.headers["x-cache"] == "HIT", condition
        computed = await client.get("/c/r")
        assert computed.headers["etag"].startswith('W/"')
    assert origin.count("/c/r?etag=%22v1%22") == 1


@pytest.mark.parametrize("junk", ["v1", '"unterminated', 'W/"a", junk', ",", '"a"' + ", " * 5000])
async def test_junk_if_none_match_is_a_clean_400(
    origin_server: ThreadedServer, origin: Origin, junk: str
) -> None:
    async with origin_gateway(origin_server) as (_, client):
        await client.get("/c/r")
        r = await client.get("/c/r", headers={"if-none-match": junk})
        assert r.status_code == 400 and r.json()["error"]["code"] == "BAD_USER_INPUT"
        assert "Traceback" not in r.text
        assert (await client.get("/c/r")).headers["x-cache"] == "HIT"  # the entry is intact


# -- what is keyed, and who may read and fill the cache -----------------------------------------


async def test_the_key_is_host_normalized_path_and_sorted_query(
    origin_server: ThreadedServer, origin: Origin
) -> None:
    async with origin_gateway(origin_server) as (_, client):
        assert (await client.get("/c/k?a=1&b=2")).headers["x-cache"] == "MISS"
        assert (await client.get("/c/k?b=2&a=1")).headers["x-cache"] == "HIT"
        assert (await client.get("/c/x/../k?a=1&b=2")).headers["x-cache"] == "HIT"
        assert (await client.get("/c//k?a=1&b=2")).headers["x-cache"] == "HIT"
        # Repeated parameters keep their order: a different request.
        assert (await client.get("/c/k?a=1&a=2")).headers["x-cache"] == "MISS"
        assert (await client.get("/c/k?a=2&a=1")).headers["x-cache"] == "MISS"
        other_host = await client.get("/c/k?a=1&b=2", headers={"host": "other.example"})
        assert other_host.headers["x-cache"] == "MISS"
        post = await client.post("/c/k?a=1&b=2")
        assert post.status_code == 200 and "x-cache" not in post.headers
    assert origin.count("/c/k?a=1&b=2") == 3  # the plain one, the other host's, the POST
    assert origin.count("/c/k?b=2&a=1") == 0


async def test_configured_and_upstream_vary_headers_split_entries(
    origin_server: ThreadedServer, origin: Origin, state: dict[str, Any]
) -> None:
    async with origin_gateway(origin_server, state) as (_, client):
        for tenant in ("a", "b", "a", "b"):
            r = await client.get("/c/t", headers={"x-tenant": tenant})
            assert r.json()["tenant"] == tenant
        assert origin.count("/c/t") == 2
        path = "/c/l?vary=Accept-Language"
        for lang in ("en", "fr", "en", "fr", "en"):
            r = await client.get(path, headers={"accept-language": lang})
            assert r.json()["lang"] == lang
        assert origin.count(path) == 2
        r = await client.get(path, headers={"accept-language": "fr"})
        assert r.headers["x-cache"] == "HIT" and r.json()["lang"] == "fr"


async def test_concurrent_misses_that_vary_get_their_own_variant(
    origin_server: ThreadedServer, origin: Origin
) -> None:
    origin.latency_ms = 100
    async with origin_gateway(origin_server) as (_, client):
        path = "/c/v?vary=Accept-Language"
        langs = ["en", "fr", "de"] * 10
        answers = await asyncio.gather(
            *(client.get(path, headers={"accept-language": lang}) for lang in langs)
        )
    assert [r.json()["lang"] for r in answers] == langs


async def test_concurrent_misses_share_a_failure_and_not_a_private_answer(
    origin_server: ThreadedServer, origin: Origin
) -> None:
    origin.latency_ms = 100
    async with origin_gateway(origin_server) as (_, client):
        origin.failing = 503
        failed = await asyncio.gather(*(client.get("/c/down") for _ in range(20)))
        assert {r.status_code for r in failed} == {503}
        assert origin.count("/c/down") == 1
        origin.failing = None
        private = await asyncio.gather(*(client.get("/c/r?cc=no-store") for _ in range(5)))
        assert {r.status_code for r in private} == {200}
    assert origin.count("/c/r?cc=no-store") == 5  # not storable: each asked for its own


async def test_huge_vary_sets_are_not_stored(origin_server: ThreadedServer, origin: Origin) -> None:
    names = ",".join(f"x-h{i}" for i in range(200))
    async with origin_gateway(origin_server) as (_, client):
        assert await hits(client, f"/c/r?vary={names}") == ["MISS", "MISS"]
        few = ",".join(f"x-h{i}" for i in range(5))
        assert await hits(client, f"/c/r?vary={few}") == ["MISS", "HIT"]


async def test_requests_with_credentials_bypass_the_cache_unless_authorized(
    origin_server: ThreadedServer, origin: Origin
) -> None:
    ups, rts = origin_routes(origin_server.url)
    rts.append(
        {
            "id": "per-user",
            "path": "/u",
            "upstream": "origin",
            "cache": {"ttl": 60, "authorized": True, "private": True},
        }
    )
    jwt_config = {"jwt": {"secret": SECRET, "algorithms": ["HS256"]}}
    config = gateway_config(ups, rts, auth=jwt_config)
    alice, bob = bearer("alice"), bearer("bob")
    async with running_gateway(config) as (gateway, client):
        r = await client.get("/c/s", headers=alice)
        assert r.status_code == 200 and "x-cache" not in r.headers
        assert (await client.get("/c/s")).headers["x-cache"] == "MISS"  # nothing was stored
        assert (await client.get("/c/s", headers=alice)).json()["n"] == 3  # nor read
        assert gateway.proxy is not None
        with_key = await asgi_request(gateway.proxy, "GET", b"/c/s", headers=[(b"x-api-key", b"k")])
        assert with_key.status == 200 and with_key.header("x-cache") is None
        # authorized: shared by every caller; private too: one entry per caller.
        assert await hits(client, "/a/s", headers=alice) == ["MISS", "HIT"]
        assert await hits(client, "/a/s", headers=bob) == ["HIT", "HIT"]
        assert await hits(client, "/u/s", headers=alice) == ["MISS", "HIT"]
        assert await hits(client, "/u/s", headers=bob) == ["MISS", "HIT"]
        assert await hits(client, "/u/s?cc=private", headers=bob) == ["MISS", "HIT"]
    assert origin.count("/u/s") == 2


async def test_an_unkeyed_header_cannot_poison_an_entry(
    origin_server: ThreadedServer, origin: Origin
) -> None:
    attack = {
        "x-forwarded-host": "evil.example",
        "x-forwarded-proto": "javascript",
        "x-original-url": "/admin",
        "x-rewrite-url": "/admin",
        "accept-encoding": "gzip",
        "cookie": "session=attacker",
    }
    async with origin_gateway(origin_server) as (_, client):
        poisoned = await client.get("/c/home", headers=attack)
        assert poisoned.headers["x-cache"] == "MISS"
        victim = await client.get("/c/home")
        assert victim.headers["x-cache"] == "HIT"
        assert b"evil" not in victim.content and victim.json()["forwarded_host"] == "gateway"
        assert victim.headers.get("content-encoding") is None
        # A Host of their own is keyed: it fills an entry of its own, never the victim's.
        other = await client.get("/c/home2", headers={"host": "evil.example"})
        assert other.json()["forwarded_host"] == "evil.example"
        victim2 = await client.get("/c/home2")
        assert victim2.headers["x-cache"] == "MISS" and b"evil" not in victim2.content


async def test_control_characters_in_keyed_parts_are_a_clean_400(
    origin_server: ThreadedServer, origin: Origin
) -> None:
    async with origin_gateway(origin_server) as (gateway, _):
        bad_query = await asgi_request(gateway, "GET", b"/c/r", query=b"a=\x01")
        assert bad_query.status == 400 and bad_query.json()["error"]["code"] == "BAD_USER_INPUT"
        bad_vary = await asgi_request(gateway, "GET", b"/c/r", headers=[(b"x-tenant", b"a\x1bb")])
        assert bad_vary.status == 400 and bad_vary.json()["error"]["code"] == "BAD_USER_INPUT"
    assert origin.count("/c/r") == 0


# -- sizes --------------------------------------------------------------------------------------


async def test_big_bodies_stream_through_uncached(
    origin_server: ThreadedServer, origin: Origin
) -> None:
    size = 2 * MiB
    async with origin_gateway(origin_server) as (gateway, client):
        for _ in range(3):
            r = await client.get(f"/c/big?size={size}")
            assert r.status_code == 200 and len(r.content) == size
            assert "x-cache" not in r.headers
        assert isinstance(gateway.cache, MemoryCacheStore) and gateway.cache.size < 1024
        small = await client.get(f"/c/small?size={64 * 1024}")
        assert small.headers["x-cache"] == "MISS" and len(small.content) == 64 * 1024
        assert (await client.get(f"/c/small?size={64 * 1024}")).headers["x-cache"] == "HIT"
    # The first big one was tried for the cache (abandoned past 1 MiB), then streamed; the key
    # then remembers to pass, so the next ones went straight through.
    assert origin.count(f"/c/big?size={size}") == 4


async def test_stale_if_error_on_5xx_answers(
    origin_server: ThreadedServer, origin: Origin, state: dict[str, Any]
) -> None:
    async with origin_gateway(origin_server, state) as (gateway, client):
        fresh = await client.get("/c/f")
        later(gateway, 61)
        origin.failing = 503
        stale = await client.get("/c/f")
        assert stale.headers["x-cache"] == "STALE" and stale.content == fresh.content
        origin.failing = None
        renewed = await client.get("/c/f")
        assert renewed.headers["x-cache"] == "MISS" and renewed.json()["n"] == 3
        assert (await client.get("/c/f")).headers["x-cache"] == "HIT"
        origin.failing = 404  # not a failure of the upstream: its answer, not the stale one
        later(gateway, 200)
        assert (await client.get("/c/f")).status_code == 404


def test_the_docs_route_example_is_a_valid_configuration() -> None:
    docs = Path(__file__).resolve().parents[3] / "docs" / "caching.md"
    section = docs.read_text().split("## REST response cache", 1)[1]
    block = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    context = 'upstreams:\n  products: {targets: ["http://127.0.0.1:9103"]}\n'
    config = parse_config(context + block, source="docs/caching.md", env={})
    cache = config.routes[0].cache
    assert cache is not None and cache.ttl == 60 and cache.vary == ["x-tenant"]
