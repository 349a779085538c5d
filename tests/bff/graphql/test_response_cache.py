"""Whole answers to anonymous, publicly cacheable queries, cached (and not poisoned)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import httpx
import pytest

from bff.cli import demo_token
from bff.gateway import Gateway
from tests.bff.graphql.delivery_support import client_for, own_gateway
from tests.conftest import SampleServices
from tests.support.gateway import demo_config, gql

PRODUCT = "query P($id: ID!) { product(id: $id) { id name price { formatted } } }"


@pytest.fixture(scope="module")
async def gw(services: SampleServices) -> AsyncIterator[Gateway]:
    async with own_gateway(services.env) as gateway:
        yield gateway


@pytest.fixture
async def client(gw: Gateway) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(gw) as c:
        yield c


async def test_a_repeated_query_is_answered_from_the_cache(
    client: httpx.AsyncClient, services: SampleServices
) -> None:
    services.reset()
    first = await gql(client, "web", PRODUCT, {"id": "11"})
    assert first.status_code == 200 and first.headers["x-cache"] == "MISS"
    assert first.headers["cache-control"] == "max-age=60, public"
    assert first.headers["age"] == "0"
    etag = first.headers["etag"]
    assert etag.startswith('W/"')
    second = await gql(client, "web", PRODUCT, {"id": "11"})
    assert second.headers["x-cache"] == "HIT"
    assert second.content == first.content and second.headers["etag"] == etag
    assert int(second.headers["age"]) <= 1
    assert services.requests()["products"] == 1
    # Other variables, another entry; the same variables in another order, the same entry.
    assert (await gql(client, "web", PRODUCT, {"id": "12"})).headers["x-cache"] == "MISS"
    q = "query Q($a: ID!, $b: ID!) { a: product(id: $a) { id } b: product(id: $b) { id } }"
    await gql(client, "web", q, {"a": "1", "b": "2"})
    body = '{"query": ' + json.dumps(q) + ', "variables": {"b": "2", "a": "1"}}'
    r = await client.post(
        "/graphql/web", content=body, headers={"content-type": "application/json"}
    )
    assert r.headers["x-cache"] == "HIT"


async def test_if_none_match_answers_304(client: httpx.AsyncClient) -> None:
    params = {"query": "{ product(id: 21) { id name } }"}
    r = await client.get("/graphql/web", params=params)
    etag = r.headers["etag"]
    r = await client.get("/graphql/web", params=params, headers={"if-none-match": etag})
    assert r.status_code == 304 and r.content == b""
    assert r.headers["etag"] == etag and r.headers["cache-control"] == "max-age=60, public"
    for other in ('"nope"', 'W/"nope", "other"'):
        r = await client.get("/graphql/web", params=params, headers={"if-none-match": other})
        assert r.status_code == 200
    r = await client.get("/graphql/web", params=params, headers={"if-none-match": "*"})
    assert r.status_code == 304


@pytest.mark.parametrize("junk", ["abc", '"unterminated', "W/abc", '"a" "b"', ","])
async def test_if_none_match_junk_is_a_clean_400(client: httpx.AsyncClient, junk: str) -> None:
    r = await client.get(
        "/graphql/web",
        params={"query": "{ product(id: 21) { id } }"},
        headers={"if-none-match": junk},
    )
    assert r.status_code == 400
    assert r.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
    assert "If-None-Match" in r.json()["errors"][0]["message"]


async def test_answers_with_errors_are_not_stored(
    client: httpx.AsyncClient, services: SampleServices
) -> None:
    services.reset()
    query = "{ product(id: 31) { id } bad: product(id: 0) { id } }"  # a BAD_USER_INPUT error
    for _ in range(2):
        r = await gql(client, "web", query)
        assert r.json()["errors"] and r.headers["cache-control"] == "no-store"
        assert "x-cache" not in r.headers and "etag" not in r.headers
    assert services.requests()["products"] == 2


async def test_signed_in_callers_neither_read_nor_fill_the_cache(
    client: httpx.AsyncClient, services: SampleServices
) -> None:
    secret = demo_config({}).auth.jwt.secret or ""
    user = {"authorization": f"Bearer {demo_token(secret)}"}
    services.reset()
    query = "{ product(id: 41) { id name } }"
    for _ in range(2):
        r = await gql(client, "web", query, headers=user)
        assert "x-cache" not in r.headers
    assert services.requests()["products"] == 2
    r = await gql(client, "web", query)
    assert r.headers["x-cache"] == "MISS"  # the signed-in answers stored nothing


async def test_concurrent_misses_make_one_execution(
    client: httpx.AsyncClient, services: SampleServices
) -> None:
    services.reset()
    services["products"].latency_ms = 100
    try:
        query = "{ product(id: 51) { id name } }"
        answers = await asyncio.gather(*(gql(client, "web", query) for _ in range(50)))
    finally:
        services["products"].latency_ms = 0
    assert {a.status_code for a in answers} == {200}
    assert len({a.content for a in answers}) == 1
    # Counted by the service itself: 50 callers, one upstream request.
    assert services.stats()["products"]["requests"] == 1


async def test_the_cache_cannot_be_poisoned_through_unkeyed_headers(
    client: httpx.AsyncClient,
) -> None:
    query = "{ product(id: 61) { id name } }"
    # The first caller sends everything an attacker might hope is reflected or trusted.
    sneaky = {
        "x-forwarded-host": "evil.example",
        "x-forwarded-proto": "http",
        "x-original-url": "/graphql/mobile",
        "x-http-method-override": "DELETE",
        "accept-encoding": "gzip",
        "accept": "application/graphql-response+json",
        "x-api-key": "bff_notarealkey",
        "cookie": "session=attacker",
        "origin": "http://evil.example",
    }
    r = await gql(client, "web", query, headers=sneaky)
    assert r.status_code in (200, 401)
    # A plain caller gets the plain, correct answer: JSON (not the other media type), not
    # gzip-encoded for a client that never asked, and the same data.
    r = await gql(client, "web", query, headers={"accept-encoding": "identity"})
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    assert "content-encoding" not in r.headers
    assert r.json() == {"data": {"product": {"id": "61", "name": "Product 61"}}}
    assert "evil" not in r.text
    # The gzip-accepting caller gets the same entry, compressed on the way out only if asked.
    r = await client.post(
        "/graphql/web", json={"query": query}, headers={"accept-encoding": "gzip"}
    )
    assert r.json()["data"]["product"]["id"] == "61"


async def test_each_media_type_has_its_own_entry(gw: Gateway, client: httpx.AsyncClient) -> None:
    query = "{ product(id: 71) { id } }"
    json_answer = await gql(client, "web", query)
    typed = await gql(client, "web", query, headers={"accept": "application/graphql-response+json"})
    assert typed.headers["content-type"] == "application/graphql-response+json"
    assert typed.headers["x-cache"] == "MISS"
    assert json_answer.headers["content-type"] == "application/json"
    # CBOR (iot's encoding) has no place on web: 406, and the JSON entry is untouched.
    r = await gql(client, "web", query, headers={"accept": "application/cbor"})
    assert r.status_code == 406
    r = await gql(client, "web", query)
    assert r.headers["x-cache"] == "HIT" and r.headers["content-type"] == "application/json"


async def test_big_answers_are_compressed_on_the_way_out(client: httpx.AsyncClient) -> None:
    query = "{ products(limit: 60) { items { id name description } } }"
    plain = await client.post("/graphql/web", json={"query": query})
    assert len(plain.content) > 1024
    r = await client.post(
        "/graphql/web", json={"query": query}, headers={"accept-encoding": "gzip"}
    )
    assert r.headers["content-encoding"] == "gzip" and r.headers["x-cache"] == "HIT"
    assert "accept-encoding" in r.headers["vary"].lower()
    assert int(r.headers["content-length"]) < len(plain.content) / 3
    assert r.content == plain.content  # httpx decoded it: the stored identity body


async def test_hits_are_charged_like_any_request(services: SampleServices) -> None:
    overrides = {
        "rate_limits": {"plans": {"anonymous": {"per_minute": 10}}},
        "graphql": {"cost_per_request": 10},
    }
    async with own_gateway(services.env, overrides) as gateway, client_for(gateway) as c:
        query = "{ products(limit: 15) { items { id } } }"  # cost 16: two requests
        remaining = []
        for _ in range(3):
            r = await gql(c, "web", query)
            assert r.status_code == 200
            remaining.append(r.json()["extensions"]["cost"]["remaining"])
        assert remaining == [8, 6, 4]
        assert r.headers["x-cache"] == "HIT"
        assert r.json()["data"]["products"]["items"][0] == {"id": "1"}


async def test_the_response_cache_can_be_turned_off(services: SampleServices) -> None:
    overrides = {"graphql": {"response_cache": False}}
    async with own_gateway(services.env, overrides) as gateway, client_for(gateway) as c:
        for _ in range(2):
            r = await gql(c, "web", "{ product(id: 81) { id } }")
            assert "x-cache" not in r.headers and "etag" not in r.headers
            assert r.headers["cache-control"] == "max-age=60, public"  # hints still apply


async def test_control_characters_never_reach_a_key(
    client: httpx.AsyncClient, services: SampleServices
) -> None:
    query = "query P($id: ID!) { product(id: $id) { id } }"
    r = await client.post(
        "/graphql/web", json={"query": query, "variables": {"id": "5"}, "operationName": "P\r\nX"}
    )
    assert r.status_code == 400 and "Traceback" not in r.text
    # Control characters inside a variable are data: escaped in the canonical JSON of the key,
    # they make an entry of their own and cannot collide with or split another key.
    weird = {"id": "5\r\nx-cache: HIT\u0000"}
    r = await gql(client, "web", query, weird)
    assert r.status_code == 200 and r.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    services.reset()
    r = await gql(client, "web", query, {"id": "5"})
    assert r.json() == {"data": {"product": {"id": "5"}}}
