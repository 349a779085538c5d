"""Compiled plans give exactly what graphql-core gives: same data, same errors.

Every query runs through both executors of the same app (``GraphQLAppSettings.compiled``) and
the responses are compared, including failures deep in the tree and null propagation.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from graphql import get_introspection_query

from bff.auth import Principal
from bff.gateway import Gateway, build_gateway
from bff.graphql import GraphQLApp, GraphQLRequest
from services import SERVICE_NAMES, ServiceServer
from tests.support.gateway import demo_config

QUERIES: list[tuple[str, str, dict[str, Any] | None]] = [
    (
        "web",
        "{ users(limit: 20) { total items { id name email tier createdAt orders { id status "
        "createdAt total { amountCents currency formatted } user { id } lines { quantity "
        "unitPrice { formatted } product { id name description imageUrl stock averageRating "
        "price { amountCents } reviews { id rating body author { name } } } } } } } }",
        None,
    ),
    (
        "web",
        "query Q($id: ID!, $l: Int = 3) { user(id: $id) { ...U orders { ... on Order { id } } } "
        "users(limit: $l, offset: 7) { items { __typename ...U } } __typename } "
        "fragment U on User { id name tier __typename }",
        {"id": "42"},
    ),
    (
        "web",
        "{ a: user(id: 1) { name } a: user(id: 1) { id } b: product(id: 2) { n: name } "
        "c: product(id: 99999) { name } d: order(id: 131) { lines { product { name } } } }",
        None,
    ),
    ("web", "{ me { id } user(id: 5) { name } }", None),
    ("web", '{ user(id: "x") { name } users(limit: 500) { total } product(id: 3) { id } }', None),
    ("web", "query P($n: Int!) { products(limit: $n) { total items { id } } }", {"n": 5}),
    (
        "mobile",
        "{ products(limit: 4) { items { id imageUrl(size: MEDIUM) small: imageUrl averageRating "
        "price { formatted } } } me { name } }",
        None,
    ),
    ("iot", '{ products(ids: [1, "2", 600, 3]) { id stock } order(id: 20) { id status } }', None),
    ("iot", '{ products(ids: ["zz"]) { id } }', None),
]


@pytest.fixture(scope="module")
def own_services() -> Iterator[dict[str, ServiceServer]]:
    started = {n: ServiceServer(n).start() for n in SERVICE_NAMES}
    yield started
    for s in started.values():
        s.stop()


@pytest.fixture(scope="module")
async def gw(own_services: dict[str, ServiceServer]) -> AsyncIterator[Gateway]:
    env = {f"{n.upper()}_URL": s.url for n, s in own_services.items()}
    env["USERS_NEXT_URL"] = own_services["users"].url
    overrides = {
        "upstreams": {
            n: {
                "targets": [own_services[n].url],
                "retries": {"attempts": 0},
                "timeout": {"read": 0.5},
            }
            for n in SERVICE_NAMES
        },
        # Any query on iot here, not only the registered ones (tests/bff/graphql/test_persisted.py);
        # failures stay failures (stale fallbacks: tests/bff/graphql/test_fallbacks.py).
        "graphql": {"apps": {"iot": {"persisted_queries": "off"}}, "loader_cache": False},
    }
    gateway = build_gateway(demo_config(env, overrides))
    await gateway.startup()
    yield gateway
    await gateway.shutdown()


def _pair(gateway: Gateway, app: str) -> tuple[GraphQLApp, GraphQLApp]:
    compiled = gateway.graphql_apps[app]
    plain = GraphQLApp(
        dataclasses.replace(compiled.settings, compiled=False),
        compiled.schema,
        loaders=compiled.loaders,
        clients=compiled.clients,
    )
    return compiled, plain


def _normalized(body: dict[str, Any]) -> dict[str, Any]:
    out = dict(body)
    if "errors" in out:
        out["errors"] = sorted(out["errors"], key=lambda e: (str(e.get("path")), e["message"]))
    return out


async def _both(
    gateway: Gateway, app: str, query: str, variables: dict[str, Any] | None, scope: dict[str, Any]
) -> tuple[Any, Any]:
    compiled, plain = _pair(gateway, app)
    request = GraphQLRequest(query, variables, None, None)
    a = await compiled.run(request, scope)
    b = await plain.run(request, scope)
    return a, b


@pytest.mark.parametrize(("app", "query", "variables"), QUERIES)
async def test_same_result_as_graphql_core(
    gw: Gateway, app: str, query: str, variables: dict[str, Any] | None
) -> None:
    scope: dict[str, Any] = {}
    if app == "iot":
        scope["bff.principal"] = Principal(kind="api_key", subject="k1", tier="free")
    (status_a, body_a), (status_b, body_b) = await _both(gw, app, query, variables, scope)
    assert status_a == status_b
    assert _normalized(body_a) == _normalized(body_b)
    compiled, _ = _pair(gw, app)
    prepared = compiled.documents.get(query)
    assert prepared.analysis[("plan", None)] is not None, "expected a compiled plan"


async def test_signed_in_user_and_guards(gw: Gateway) -> None:
    user = Principal(kind="user", subject="7", scopes=frozenset({"orders:read"}), tier="pro")
    a, b = await _both(gw, "web", "{ me { id name } }", None, {"bff.principal": user})
    assert a == b == (200, {"data": {"me": {"id": "7", "name": "User 7"}}})


@pytest.mark.parametrize(
    ("query", "down"),
    [
        # users: UserPage! at the root: a failure under non-null fields nulls the whole data.
        ("{ users(limit: 3) { items { name orders { id } } } }", "orders"),
        # a nullable root field absorbs the failure
        (
            "{ user(id: 3) { name orders { id lines { product { name } } } } "
            "x: user(id: 4) { id } }",
            "orders",
        ),
        ("{ order(id: 131) { id lines { quantity product { name } } } }", "products"),
        ("{ product(id: 3) { name averageRating reviews { id } } }", "reviews"),
    ],
)
async def test_failures_propagate_the_same_way(
    gw: Gateway, own_services: dict[str, ServiceServer], query: str, down: str
) -> None:
    own_services[down].stop()
    try:
        a, b = await _both(gw, "web", query, None, {})
    finally:
        own_services[down].restart()
    assert a[0] == b[0]
    assert _normalized(a[1]) == _normalized(b[1])
    assert a[1]["errors"]


async def test_what_is_not_compiled_still_runs(gw: Gateway) -> None:
    compiled, _ = _pair(gw, "web")
    for query in (
        get_introspection_query(),
        "{ __schema { queryType { name } } }",
        "{ user(id: 1) @include(if: true) { name } }",
        'mutation { placeOrder(lines: [{productId: "1", quantity: 1}]) { id } }',
    ):
        status, body = await compiled.run(GraphQLRequest(query, None, None, None), {})
        assert status == 200, body
        assert compiled.documents.get(query).analysis[("plan", None)] is None
