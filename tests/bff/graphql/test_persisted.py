"""Persisted queries: APQ on mobile (Apollo's protocol), allow-listed operations on iot."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bff.cli import main
from bff.gateway import Gateway
from bff.graphql.operations import vet
from tests.bff.graphql.delivery_support import (
    api_key,
    client_for,
    own_gateway,
    persisted,
    register,
    sha256,
)
from tests.conftest import SampleServices

Q = "query Names { users(limit: 2) { items { id name } } }"
STOCK = "query Stock($id: ID!) { product(id: $id) { id stock } }"


@pytest.fixture(scope="module")
async def gw(services: SampleServices) -> AsyncIterator[Gateway]:
    async with own_gateway(services.env, {"store": {"poll_interval": 0.1}}) as gateway:
        yield gateway


@pytest.fixture
async def client(gw: Gateway) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(gw) as c:
        yield c


# -- APQ (mobile) ---------------------------------------------------------------------------


async def test_apq_round_trip_as_apollo_clients_do_it(
    client: httpx.AsyncClient, services: SampleServices
) -> None:
    query = Q.replace("limit: 2", "limit: 3")
    digest = sha256(query)
    # 1. The hash alone: unknown yet. A 200 with the error, never cached (Apollo Server's).
    r = await client.post("/graphql/mobile", json={"extensions": persisted(digest)})
    assert r.status_code == 200
    assert r.json() == {
        "errors": [
            {
                "message": "PersistedQueryNotFound",
                "extensions": {"code": "PERSISTED_QUERY_NOT_FOUND"},
            }
        ]
    }
    assert r.headers["cache-control"] == "private, no-cache, must-revalidate"
    # 2. Hash and query: registers it and answers.
    body = {"query": query, "extensions": persisted(digest)}
    r = await client.post("/graphql/mobile", json=body)
    assert r.status_code == 200, r.text
    assert [u["id"] for u in r.json()["data"]["users"]["items"]] == ["1", "2", "3"]
    # 3. From now on the hash alone is enough, over POST and over GET.
    r = await client.post("/graphql/mobile", json={"extensions": persisted(digest)})
    assert r.status_code == 200 and r.json()["data"]["users"]["items"][0]["name"] == "User 1"
    params = {"extensions": json.dumps(persisted(digest))}
    r = await client.get("/graphql/mobile", params=params)
    assert r.status_code == 200 and "errors" not in r.json()
    # Upper-case hex is the same hash.
    r = await client.post("/graphql/mobile", json={"extensions": persisted(digest.upper())})
    assert r.status_code == 200 and "data" in r.json()


async def test_apq_get_carries_the_cache_hints_for_a_cdn(client: httpx.AsyncClient) -> None:
    query = "query P($id: ID!) { product(id: $id) { id name price { formatted } } }"
    digest = sha256(query)
    await client.post("/graphql/mobile", json={"query": query, "extensions": persisted(digest)})
    params = {"extensions": json.dumps(persisted(digest)), "variables": '{"id": "7"}'}
    r = await client.get("/graphql/mobile", params=params)
    assert r.status_code == 200 and r.json()["data"]["product"]["id"] == "7"
    assert r.headers["cache-control"] == "max-age=60, public"
    assert "accept" in r.headers["vary"].lower()
    # A mutation over GET is still refused, persisted or not.
    mutation = 'mutation { placeOrder(lines: [{productId: "1", quantity: 1}]) { id } }'
    mdigest = sha256(mutation)
    r = await client.get(
        "/graphql/mobile", params={"query": mutation, "extensions": json.dumps(persisted(mdigest))}
    )
    assert r.status_code == 405


async def test_a_hash_that_is_not_the_querys_is_refused(client: httpx.AsyncClient) -> None:
    body = {"query": Q, "extensions": persisted(sha256("{ something else }"))}
    r = await client.post("/graphql/mobile", json=body)
    assert r.status_code == 400
    assert r.json()["errors"][0]["message"] == "provided sha does not match query"
    # and nothing was registered under that hash
    r = await client.post("/graphql/mobile", json={"extensions": persisted(sha256("{ x }"))})
    assert r.json()["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"


@pytest.mark.parametrize(
    "extensions",
    [
        persisted("abc"),
        persisted("g" * 64),
        persisted("a" * 65),
        persisted(" " + "a" * 63),
        persisted("a" * 63 + "\n"),
        persisted(64),  # type: ignore[arg-type]
        {"persistedQuery": {"version": 1}},
        {"persistedQuery": "a" * 64},
        persisted("a" * 64, version=2),
        persisted("a" * 64, version=True),
    ],
)
async def test_malformed_persisted_queries_are_400(
    client: httpx.AsyncClient, extensions: dict[str, Any]
) -> None:
    for app in ("mobile", "iot"):
        r = await client.post(f"/graphql/{app}", json={"extensions": extensions})
        if app == "iot":
            assert r.status_code == 401  # the API key is checked first
            continue
        assert r.status_code == 400, r.text
        (error,) = r.json()["errors"]
        assert error["extensions"]["code"] == "BAD_REQUEST"
        assert "Traceback" not in r.text


async def test_malformed_hash_over_get_is_400(client: httpx.AsyncClient) -> None:
    r = await client.get("/graphql/mobile", params={"extensions": json.dumps(persisted("zz"))})
    assert r.status_code == 400
    assert "64 hexadecimal" in r.json()["errors"][0]["message"]
    r = await client.get("/graphql/mobile", params={"extensions": "{not json"})
    assert r.status_code == 400


async def test_only_documents_that_validate_are_registered(client: httpx.AsyncClient) -> None:
    bad = "{ users(limit: 1) { items { nope } } }"
    digest = sha256(bad)
    r = await client.post("/graphql/mobile", json={"query": bad, "extensions": persisted(digest)})
    assert r.status_code == 400
    assert r.json()["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    r = await client.post("/graphql/mobile", json={"extensions": persisted(digest)})
    assert r.json()["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"


async def test_an_app_without_persisted_queries_says_so(client: httpx.AsyncClient) -> None:
    # web has persisted_queries: off. A hash alone: NOT_SUPPORTED (200, as Apollo Server), so the
    # client falls back to sending the text; a text with a hash runs like any query.
    r = await client.post("/graphql/web", json={"extensions": persisted(sha256(Q))})
    assert r.status_code == 200
    assert r.json()["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_SUPPORTED"
    r = await client.post("/graphql/web", json={"query": Q, "extensions": persisted("0" * 64)})
    assert r.status_code == 200 and "data" in r.json()
    r = await client.post("/graphql/web", json={"extensions": {}})
    assert r.status_code == 400 and "no 'query'" in r.json()["errors"][0]["message"]


# -- allow-listed operations (iot) -------------------------------------------------------------


async def test_only_registered_operations_run_on_iot(
    gw: Gateway, client: httpx.AsyncClient
) -> None:
    key = await api_key(client)
    digest = await register(gw, "iot", STOCK, "Stock")
    variables = {"id": "5"}
    # by hash
    body = {"extensions": persisted(digest), "variables": variables}
    r = await client.post("/graphql/iot", json=body, headers=key)
    assert r.status_code == 200, r.text
    assert r.json()["data"] == {
        "product": {"id": "5", "stock": r.json()["data"]["product"]["stock"]}
    }
    # in full, with or without its hash
    r = await client.post(
        "/graphql/iot", json={"query": STOCK, "variables": variables}, headers=key
    )
    assert r.status_code == 200 and "errors" not in r.json()
    body = {"query": STOCK, "variables": variables, "extensions": persisted(digest)}
    assert (await client.post("/graphql/iot", json=body, headers=key)).status_code == 200
    # by GET
    params = {"extensions": json.dumps(persisted(digest)), "variables": json.dumps(variables)}
    r = await client.get("/graphql/iot", params=params, headers=key)
    assert r.status_code == 200 and "errors" not in r.json()


@pytest.mark.parametrize(
    "body",
    [
        {"query": "{ product(id: 1) { id stock } }"},  # valid, not registered
        {"query": STOCK + " "},  # one byte away from a registered text
        {"query": "{ this is not graphql"},  # refused before parsing: no syntax error shown
        {"extensions": persisted("1" * 64)},  # an unknown hash
    ],
)
async def test_anything_else_is_refused_before_parsing(
    gw: Gateway, client: httpx.AsyncClient, services: SampleServices, body: dict[str, Any]
) -> None:
    key = await api_key(client)
    await register(gw, "iot", STOCK, "Stock")
    parsed_before = len(gw.graphql_apps["iot"].documents)
    services.reset()
    r = await client.post("/graphql/iot", json=body, headers=key)
    assert r.status_code == 400
    assert r.json() == {
        "errors": [
            {
                "message": "only registered operations run on this endpoint",
                "extensions": {"code": "PERSISTED_QUERY_NOT_ALLOWED"},
            }
        ]
    }
    assert len(gw.graphql_apps["iot"].documents) == parsed_before  # nothing was parsed
    assert sum(services.requests().values()) == 0


async def test_a_hash_and_a_different_text_on_iot_is_a_mismatch(
    gw: Gateway, client: httpx.AsyncClient
) -> None:
    key = await api_key(client)
    digest = await register(gw, "iot", STOCK, "Stock")
    body = {"query": "{ product(id: 1) { id } }", "extensions": persisted(digest)}
    r = await client.post("/graphql/iot", json=body, headers=key)
    assert r.status_code == 400
    assert r.json()["errors"][0]["message"] == "provided sha does not match query"


async def test_registered_operations_skip_the_depth_and_cost_checks(
    gw: Gateway, client: httpx.AsyncClient
) -> None:
    key = await api_key(client)
    # iot allows cost 200: 300 products cost 300. Registered (vetted), it runs.
    ids = [str(i) for i in range(1, 301)]
    costly = "query Many($ids: [ID!]!) { products(ids: $ids) { id } }"
    body = {"query": costly, "variables": {"ids": ids}}
    await register(gw, "mobile", "query Other { __typename }")  # another app's: not iot's
    r = await client.post("/graphql/iot", json=body, headers=key)
    assert r.status_code == 400
    assert r.json()["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_ALLOWED"
    await register(gw, "iot", costly, "Many")
    r = await client.post("/graphql/iot", json=body, headers=key)
    # the resolver's own bound (at most 100 ids) still applies: the limits were skipped
    assert r.status_code == 200
    assert r.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    # The introspection query, registered for tooling, runs though iot's depth limit is 4.
    intro = "{ __schema { queryType { fields { name type { ofType { ofType { name } } } } } } }"
    await register(gw, "iot", intro)
    r = await client.post("/graphql/iot", json={"query": intro}, headers=key)
    assert r.status_code == 200 and r.json()["data"]["__schema"]["queryType"]["fields"]


async def test_registered_operations_on_an_apq_app_are_vetted_too(
    gw: Gateway, client: httpx.AsyncClient
) -> None:
    page = "users(limit: 50) { items { orders { lines { product { price { formatted } } } } } }"
    many = f"{{ a: {page} b: {page} }}"  # 2 x 2,551: over mobile's 5,000
    r = await client.post("/graphql/mobile", json={"query": many})
    assert r.json()["errors"][0]["extensions"]["code"] == "COST_LIMIT_EXCEEDED"
    digest = await register(gw, "mobile", many)
    r = await client.post("/graphql/mobile", json={"extensions": persisted(digest)})
    assert r.status_code == 200 and "errors" not in r.json(), r.text[:300]
    r = await client.post("/graphql/mobile", json={"query": many})  # in full: vetted as well
    assert r.status_code == 200 and "errors" not in r.json()


async def test_changes_in_the_store_reach_the_gateway(
    gw: Gateway, client: httpx.AsyncClient
) -> None:
    key = await api_key(client)
    text = "query Status($id: ID!) { order(id: $id) { status } }"
    digest = sha256(text)
    assert gw.store is not None
    # Written by another process (bff persisted add): the poller picks it up.
    await gw.store.persisted_operations.put("iot", digest, text, "Status")
    body = {"extensions": persisted(digest), "variables": {"id": "20"}}
    for _ in range(100):
        r = await client.post("/graphql/iot", json=body, headers=key)
        if r.status_code == 200:
            break
        await asyncio.sleep(0.05)
    assert r.status_code == 200 and r.json()["data"]["order"]["status"]
    await gw.store.persisted_operations.delete("iot", digest)
    for _ in range(100):
        r = await client.post("/graphql/iot", json=body, headers=key)
        if r.status_code == 400:
            break
        await asyncio.sleep(0.05)
    assert r.json()["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_ALLOWED"


# -- APQ in Redis ---------------------------------------------------------------------------


async def test_apq_documents_are_shared_through_redis(
    services: SampleServices, redis_url: str
) -> None:
    prefix = f"bff-apq-test:{uuid.uuid4().hex}:"  # Redis is shared by every test run
    state = {"state": {"backend": "redis", "redis_url": redis_url, "key_prefix": prefix}}
    query = "query Shared { user(id: 4) { name } }"
    digest = sha256(query)
    async with (
        own_gateway(services.env, state) as one,
        own_gateway(services.env, state) as two,
        client_for(one) as a,
        client_for(two) as b,
    ):
        r = await b.post("/graphql/mobile", json={"extensions": persisted(digest)})
        assert r.json()["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"
        body = {"query": query, "extensions": persisted(digest)}
        assert (await a.post("/graphql/mobile", json=body)).status_code == 200
        r = await b.post("/graphql/mobile", json={"extensions": persisted(digest)})
        assert r.json() == {"data": {"user": {"name": "User 4"}}}


# -- registration (bff persisted) ---------------------------------------------------------------


def test_vetting_warns_over_the_apps_limits() -> None:
    from bff.graphql import Registry, build_schema

    registry = Registry.from_module_names(
        ["schema.users", "schema.orders", "schema.products", "schema.reviews"]
    )
    schema = build_schema("iot", registry)._schema

    class Limits:
        max_depth, max_aliases, max_root_fields, max_cost = 1, 0, 1, 5

    found = vet(schema, "query Two { a: product(id: 1) { id } b: order(id: 1) { id } }", Limits)
    assert not found.errors and found.name == "Two"
    assert found.hash == sha256("query Two { a: product(id: 1) { id } b: order(id: 1) { id } }")
    text = " ".join(found.warnings)
    assert "depth 2" in text and "aliases 2" in text and "root fields 2" in text
    assert "skip this check" in text
    found = vet(schema, "{ products(ids: [1,2,3,4,5,6]) { id } }", Limits)
    assert any("cost 6" in w for w in found.warnings)
    assert vet(schema, "{ nope }", Limits).errors
    assert vet(schema, "{ product(", Limits).errors[0].startswith("syntax error")


def test_the_docs_cite_the_demo_operations_hashes() -> None:
    import re

    root = Path(__file__).resolve().parents[3]
    demo = {sha256(p.read_text()) for p in (root / "bff" / "demo_operations").glob("*/*.graphql")}
    for doc in ("persisted-queries.md", "caching.md"):
        cited = set(re.findall(r"\b[0-9a-f]{64}\b", (root / "docs" / doc).read_text()))
        assert cited and cited <= demo, doc


def test_the_cli_adds_lists_and_removes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "bff.yaml"
    config.write_text(
        f"store: {{url: 'sqlite:///{tmp_path}/ops.db'}}\n"
        "upstreams:\n"
        + "".join(f"  {n}: {{targets: ['http://127.0.0.1:9']}}\n" for n in ("users", "orders"))
        + "  products: {targets: ['http://127.0.0.1:9']}\n"
        "  reviews: {targets: ['http://127.0.0.1:9']}\n"
        "graphql:\n"
        "  schema_modules: [schema.users, schema.orders, schema.products, schema.reviews]\n"
        "  apps:\n"
        "    iot: {path: /graphql/iot, auth: api_key, max_depth: 2, max_cost: 200,"
        " persisted_queries: only}\n"
    )
    ops = Path(__file__).resolve().parents[3] / "bff" / "demo_operations" / "iot"
    files = sorted(str(p) for p in ops.glob("*.graphql"))
    assert len(files) == 3
    assert main(["persisted", "add", *files, "--app", "iot", "--config", str(config)]) == 0
    out = capsys.readouterr()
    hashes = out.out.split()
    assert hashes == [sha256(Path(f).read_text()) for f in files]
    assert main(["persisted", "list", "--config", str(config), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert sorted(r["name"] for r in listed) == ["OrderStatus", "ProductStock", "StockLevels"]
    deep = tmp_path / "deep.graphql"
    deep.write_text("query Deep { order(id: 1) { id } product(id: 1) { id } }")
    assert main(["persisted", "add", str(deep), "--app", "iot", "-c", str(config)]) == 0
    assert "warning" not in capsys.readouterr().err
    deeper = tmp_path / "deeper.graphql"
    deeper.write_text("{ products(ids: [1]) { id } x: products(ids: [2]) { id } }")
    main(["persisted", "add", str(deeper), "--app", "iot", "-c", str(config)])
    # two root fields of depth 2 fit; no warning either
    capsys.readouterr()
    bad = tmp_path / "bad.graphql"
    bad.write_text("{ users { id } }")
    assert main(["persisted", "add", str(bad), "--app", "iot", "-c", str(config)]) == 2
    assert "not a valid operation" in capsys.readouterr().err
    assert main(["persisted", "add", str(bad), "--app", "nope", "-c", str(config)]) == 2
    assert main(["persisted", "remove", hashes[0], "--app", "iot", "-c", str(config)]) == 0
    assert main(["persisted", "remove", hashes[0], "--app", "iot", "-c", str(config)]) == 1
    capsys.readouterr()
    assert main(["persisted", "list", "--app", "iot", "-c", str(config)]) == 0
    assert hashes[0] not in capsys.readouterr().out
