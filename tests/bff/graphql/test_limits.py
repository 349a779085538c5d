"""Cost control: depth, aliases, root fields, tokens and static cost, on the reference schemas.

Expected costs are computed by hand with the rules of docs/rate-limiting.md: an object field
costs 1, a scalar or enum 0, a list multiplies its subtree (its own weight included) by its size
(``limit``/``first``/``ids``, else the registered ``list_size``: orders 5, lines 3, reviews 3), and
a page's ``limit`` sizes its ``items``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from graphql import GraphQLSchema

from bff.gateway import Gateway, build_gateway
from bff.graphql import Registry, SchemaModule, build_schema, field
from bff.graphql.documents import DocumentCache
from bff.graphql.limits import CostControl, OperationAnalysis, analyze, evaluate
from tests.conftest import SampleServices
from tests.support.gateway import demo_config, gql

MODULES = ["schema.users", "schema.orders", "schema.products", "schema.reviews"]


@pytest.fixture(scope="module")
def schemas() -> dict[str, GraphQLSchema]:
    registry = Registry.from_module_names(MODULES)
    return {app: build_schema(app, registry)._schema for app in ("web", "mobile", "iot")}


def analysis(schema: GraphQLSchema, query: str, operation: str | None = None) -> OperationAnalysis:
    prepared = DocumentCache(schema).get(query)
    assert not prepared.errors, prepared.errors
    op = prepared.operation(operation)
    assert op is not None and prepared.document is not None
    return CostControl(schema).verdict(prepared, op).analysis


def cost(schema: GraphQLSchema, query: str, variables: dict[str, Any] | None = None) -> int:
    return evaluate(analysis(schema, query).cost, variables)


PLACE_ORDER = (
    'mutation { placeOrder(lines: [{productId: "1", quantity: 1}]) { id lines { quantity } } }'
)
Q1 = (
    "{ users(limit: 20) { items { id name orders { id status total { formatted } "
    "lines { quantity product { id name price { amountCents } } } } } } }"
)


@pytest.mark.parametrize(
    ("app", "query", "expected", "depth"),
    [
        # A page's default limit sizes its items: web 20, mobile 10.
        ("web", "{ users { items { id } } }", 1 + 20 * 1, 3),
        ("mobile", "{ users { items { id } } }", 1 + 10 * 1, 3),
        ("web", "{ users(limit: 5) { total items { name orders { id } } } }", 1 + 5 * (1 + 5), 4),
        # orders 5 x (order 1 + total 1 + lines 3 x (line 1 + product 1 + price 1)).
        ("web", Q1, 1 + 20 * (1 + 5 * (1 + 1 + 3 * (1 + 1 + 1))), 7),
        ("web", "{ user(id: 1) { name tier createdAt } }", 1, 2),
        # reviews (web only) 3 x (review 1 + author 1).
        ("web", "{ product(id: 1) { reviews { author { name } } } }", 1 + 3 * (1 + 1), 4),
        ("web", "{ order(id: 1) { user { orders { id } } } }", 1 + 1 + 5, 4),
        (
            "mobile",
            "{ products(limit: 5) { items { imageUrl(size: MEDIUM) averageRating } } }",
            6,
            3,
        ),
        ("iot", "{ products(ids: [1, 2, 3, 4]) { id stock } }", 4 * 1, 2),
        ("iot", "{ order(id: 1) { status } }", 1, 2),
        ("web", PLACE_ORDER, 1 + 3, 3),
    ],
)
def test_costs_on_the_reference_schemas(
    schemas: dict[str, GraphQLSchema], app: str, query: str, expected: int, depth: int
) -> None:
    result = analysis(schemas[app], query)
    assert (result.cost, result.depth) == (expected, depth)


def test_named_fragments_count_where_they_are_spread(schemas: dict[str, GraphQLSchema]) -> None:
    query = """
        query { users(limit: 2) { items { ...U } } }
        fragment U on User { name orders { ...O } }
        fragment O on Order { id lines { product { ...P } } }
        fragment P on Product { name price { formatted } }
    """
    # P: price 1; product 1 + 1; lines 3 x 3; orders 5 x (1 + 9); items 2 x (1 + 50); + users.
    result = analysis(schemas["web"], query)
    assert (result.cost, result.depth, result.root_fields) == (103, 7, 1)


def test_a_fragment_spread_twice_counts_twice(schemas: dict[str, GraphQLSchema]) -> None:
    query = """
        { a: product(id: 1) { ...R } b: product(id: 2) { ...R } }
        fragment R on Product { reviews { id } }
    """
    result = analysis(schemas["web"], query)
    assert (result.cost, result.aliases, result.root_fields, result.depth) == (8, 2, 2, 3)


def test_inline_fragments_count(schemas: dict[str, GraphQLSchema]) -> None:
    query = "{ product(id: 1) { ... on Product { reviews { author { name } } } ... { id } } }"
    assert analysis(schemas["web"], query).cost == 1 + 3 * 2


def test_a_page_fragment_is_sized_by_the_page(schemas: dict[str, GraphQLSchema]) -> None:
    query = "{ users(limit: 7) { ...Page } } fragment Page on UserPage { items { orders { id } } }"
    assert analysis(schemas["web"], query).cost == 1 + 7 * (1 + 5)


def test_a_fragment_bomb_is_analysed_in_linear_time(schemas: dict[str, GraphQLSchema]) -> None:
    levels = 40  # 2**40 expansions if fragments were expanded naively
    fragments = ["fragment F0 on User { id }"]
    fragments += [f"fragment F{i} on User {{ ...F{i - 1} ...F{i - 1} }}" for i in range(1, levels)]
    query = f"{{ user(id: 1) {{ ...F{levels - 1} }} }} " + " ".join(fragments)
    result = analysis(schemas["web"], query)
    assert result.cost == 1 and result.depth == 2


def test_costs_from_variables_are_computed_per_request(schemas: dict[str, GraphQLSchema]) -> None:
    web = schemas["web"]
    query = "query ($n: Int!) { users(limit: $n) { items { orders { id } } } }"
    shape = analysis(web, query)
    assert not isinstance(shape.cost, int)  # kept as an expression of $n
    assert [evaluate(shape.cost, {"n": n}) for n in (1, 10, 100)] == [7, 61, 601]
    # Without the variable: the variable's default, else the argument's (20 on web).
    assert cost(web, "query ($n: Int = 3) { users(limit: $n) { items { id } } }") == 4
    assert cost(web, "query ($n: Int) { users(limit: $n) { items { id } } }", {}) == 21
    iot = "query ($ids: [ID!]!) { products(ids: $ids) { id } }"
    assert cost(schemas["iot"], iot, {"ids": ["1", "2", "3"]}) == 3
    # The variable-free part is a constant, added once.
    mixed = "query ($n: Int!) { a: users(limit: 2) { items { id } } b: users(limit: $n) { total } }"
    assert cost(web, mixed, {"n": 50}) == 3 + 1


costly = SchemaModule("test_costly")


@costly.type
class Report:
    title: str

    @field(cost=25)
    def body(self) -> str:
        return ""


@costly.query(cost=10, list_size=4)
def reports() -> list[Report]:
    return []


def test_a_declared_field_cost_is_the_fields_weight() -> None:
    schema = build_schema("web", Registry.from_modules([costly]))._schema
    # 4 x (10 for the list field itself + 25 for body); title is a free scalar.
    assert cost(schema, "{ reports { title body } }") == 4 * (10 + 25)


def test_pure_introspection_is_exempt(schemas: dict[str, GraphQLSchema]) -> None:
    query = "{ __schema { types { fields { type { ofType { ofType { ofType { name } } } } } } } }"
    result = analysis(schemas["web"], query)
    assert result.introspection and result.cost == 0
    mixed = analysis(schemas["web"], "{ __typename user(id: 1) { name } }")
    assert not mixed.introspection and mixed.cost == 1


def test_the_analysis_is_computed_once_per_document(schemas: dict[str, GraphQLSchema]) -> None:
    documents = DocumentCache(schemas["web"])
    control = CostControl(schemas["web"])
    prepared = documents.get(Q1)
    op = prepared.operation(None)
    assert op is not None
    first = control.verdict(prepared, op)
    assert control.verdict(documents.get(Q1), op) is first


def test_analyze_takes_the_fragments_it_is_given(schemas: dict[str, GraphQLSchema]) -> None:
    prepared = DocumentCache(schemas["web"]).get("{ users(limit: 3) { items { id } } }")
    assert prepared.document is not None
    op = prepared.operation(None)
    assert op is not None
    assert analyze(schemas["web"], op, {}).cost == 4


# -- over HTTP: refused before execution ----------------------------------------------------------

DEEP = (
    "{ order(id: 1) { user { orders { user { orders { user { orders { user { orders "
    "{ user { name } } } } } } } } } } }"
)
COSTLY = (
    "{ users(limit: 100) { items { orders { lines { product { reviews { author { name } } } } } "
    "} } }"
)


@pytest.mark.parametrize(
    ("query", "code", "extensions"),
    [
        (DEEP, "DEPTH_LIMIT_EXCEEDED", {"depth": 11, "maxDepth": 10}),
        (
            "{ user(id: 1) { " + " ".join(f"a{i}: id" for i in range(31)) + " } }",
            "ALIAS_LIMIT_EXCEEDED",
            {"aliases": 31, "maxAliases": 30},
        ),
        (
            "{ " + " ".join(f"u{i}: user(id: {i + 1}) {{ id }}" for i in range(21)) + " }",
            "ROOT_FIELD_LIMIT_EXCEEDED",
            {"rootFields": 21, "maxRootFields": 20},
        ),
        (COSTLY, "COST_LIMIT_EXCEEDED", {"cost": 12_601, "maxCost": 10_000}),
    ],
)
async def test_limits_refuse_before_any_upstream_call(
    client: httpx.AsyncClient,
    services: SampleServices,
    query: str,
    code: str,
    extensions: dict[str, int],
) -> None:
    services.reset()
    r = await gql(client, "web", query)
    assert r.status_code == 400
    (error,) = r.json()["errors"]
    assert error["extensions"] == {"code": code, **extensions}
    assert "data" not in r.json()
    assert sum(services.requests().values()) == 0


async def test_a_document_over_max_tokens(client: httpx.AsyncClient) -> None:
    query = "{ user(id: 1) { " + "id " * 5000 + "} }"
    r = await gql(client, "web", query)
    assert r.status_code == 400
    (error,) = r.json()["errors"]
    assert error["extensions"]["code"] == "TOKEN_LIMIT_EXCEEDED"


async def test_a_cost_set_by_variables_is_checked_per_request(
    client: httpx.AsyncClient, services: SampleServices
) -> None:
    query = (
        "query ($n: Int!) { users(limit: $n) { items { orders { lines { product { id } } } } } }"
    )
    # 1 + n x (1 + 5 x (1 + 3 x 2)) = 1 + 36n: 10 fits, 300 does not.
    r = await gql(client, "web", query, {"n": 10})
    assert r.status_code == 200 and "errors" not in r.json()
    services.reset()
    r = await gql(client, "web", query, {"n": 300})
    assert r.status_code == 400
    assert r.json()["errors"][0]["extensions"] == {
        "code": "COST_LIMIT_EXCEEDED",
        "cost": 10_801,
        "maxCost": 10_000,
    }
    assert sum(services.requests().values()) == 0


async def test_the_iot_apps_tighter_limits(client: httpx.AsyncClient) -> None:
    # iot: max_depth 4 (and it needs an API key, checked first).
    r = await gql(client, "iot", "{ __schema { types { fields { type { name } } } } }")
    assert r.status_code == 401


async def test_introspection_is_not_limited(client: httpx.AsyncClient) -> None:
    query = (
        "{ __schema { types { fields { type { ofType { ofType { ofType { ofType { ofType "
        "{ ofType { name } } } } } } } } } } }"
    )  # depth 12
    r = await gql(client, "web", query)
    assert r.status_code == 200 and "errors" not in r.json()


async def test_introspection_alias_bombs_are_refused(client: httpx.AsyncClient) -> None:
    bomb = "{ " + " ".join(f"a{i}: __schema {{ types {{ name }} }}" for i in range(31)) + " }"
    r = await gql(client, "web", bomb)
    assert r.status_code == 400
    assert r.json()["errors"][0]["extensions"]["code"] == "ALIAS_LIMIT_EXCEEDED"
    many = "{ " + " ".join(f"a{i}: __typename" for i in range(40)) + " }"
    r = await gql(client, "web", many)
    assert r.json()["errors"][0]["extensions"]["code"] == "ALIAS_LIMIT_EXCEEDED"


# -- batching -------------------------------------------------------------------------------------


async def test_batches_are_refused_unless_enabled(client: httpx.AsyncClient) -> None:
    r = await client.post("/graphql/web", json=[{"query": "{ __typename }"}])
    assert r.status_code == 400
    assert "not enabled" in r.json()["errors"][0]["message"]


@pytest.fixture(scope="module")
async def batching_gateway(services: SampleServices) -> AsyncIterator[Gateway]:
    overrides = {
        "graphql": {"apps": {"web": {"batching": {"enabled": True, "max_operations": 3}}}},
        "rate_limits": {"plans": {"anonymous": {"per_minute": 100}}},
    }
    gw = build_gateway(demo_config(services.env, overrides))
    await gw.startup()
    yield gw
    await gw.shutdown()


async def test_enabled_batches_run_each_operation(batching_gateway: Gateway) -> None:
    transport = httpx.ASGITransport(app=batching_gateway, client=("192.0.2.50", 1))
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
        batch = [
            {"query": "{ user(id: 1) { name } }"},
            {"query": "query ($id: ID!) { product(id: $id) { name } }", "variables": {"id": "2"}},
            {"query": "{ nope }"},
        ]
        r = await client.post("/graphql/web", json=batch)
        assert r.status_code == 200
        first, second, third = r.json()
        assert first["data"] == {"user": {"name": "User 1"}}
        assert second["data"] == {"product": {"name": "Product 2"}}
        assert third["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
        # Each executed operation was charged: two of them.
        assert r.headers["ratelimit-remaining"] == "98"
        r = await client.post("/graphql/web", json=[{"query": "{ __typename }"}] * 4)
        assert r.status_code == 400
        assert r.json()["errors"][0]["message"] == "a batch holds at most 3 operations (got 4)"
        for bad in ([], [1, 2]):
            r = await client.post("/graphql/web", json=bad)
            assert r.status_code == 400
