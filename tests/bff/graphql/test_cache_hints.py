"""Cache hints: the policy of an operation (Apollo's cacheControl rules) and its header."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from graphql import FragmentDefinitionNode, GraphQLSchema, OperationDefinitionNode, parse

from bff.cli import demo_token
from bff.gateway import Gateway
from bff.graphql import Registry, build_schema
from bff.graphql.cache_policy import NOT_CACHEABLE, CachePolicy, operation_policy
from tests.bff.graphql.delivery_support import client_for, own_gateway
from tests.conftest import SampleServices
from tests.support.gateway import demo_config, gql

MODULES = ["schema.users", "schema.orders", "schema.products", "schema.reviews"]


@pytest.fixture(scope="module")
def registry() -> Registry:
    return Registry.from_module_names(MODULES)


@pytest.fixture(scope="module")
def web(registry: Registry) -> GraphQLSchema:
    return build_schema("web", registry)._schema


def policy(schema: GraphQLSchema, registry: Registry, text: str) -> CachePolicy:
    document = parse(text)
    (operation,) = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    return operation_policy(schema, operation, fragments, registry.type_options)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        # the type's hint, on a root field and below
        ("{ product(id: 1) { id name } }", CachePolicy(60)),
        ("{ products(limit: 2) { items { id } total } }", CachePolicy(60)),
        # the smallest over the fields: users are 30 s
        ("{ product(id: 1) { id } user(id: 1) { name } }", CachePolicy(30)),
        ("{ product(id: 1) { reviews { rating author { name } } } }", CachePolicy(30)),
        # Money inherits (a value type): the product's 60 s stands
        ("{ product(id: 1) { price { amountCents formatted } } }", CachePolicy(60)),
        # orders have no hint: not cacheable, wherever they appear
        ("{ order(id: 1) { id } }", NOT_CACHEABLE),
        ("{ user(id: 1) { name orders { id } } }", NOT_CACHEABLE),
        ("{ product(id: 1) { id } order(id: 2) { total { formatted } } }", NOT_CACHEABLE),
        # me: private (and needs authentication)
        ("{ me { id name } }", CachePolicy(30, private=True)),
        ("{ me { id } products { items { id } } }", CachePolicy(30, private=True)),
        # scalars inherit; __typename restricts nothing, introspection is never cached
        ("{ product(id: 1) { __typename } }", CachePolicy(60)),
        ("{ __typename }", NOT_CACHEABLE),
        ("{ __schema { queryType { name } } product(id: 1) { id } }", NOT_CACHEABLE),
        # fragments count where they are spread, named or inline
        (
            "{ product(id: 1) { ...F } } fragment F on Product { id reviews { id } }",
            CachePolicy(60),
        ),
        ("{ product(id: 1) { ... on Product { user: id } } user(id: 2) { id } }", CachePolicy(30)),
        ("query { ...R } fragment R on Query { order(id: 1) { id } }", NOT_CACHEABLE),
        # mutations: never
        ('mutation { placeOrder(lines: [{productId: "1", quantity: 1}]) { id } }', NOT_CACHEABLE),
    ],
)
def test_operation_policies(
    web: GraphQLSchema, registry: Registry, query: str, expected: CachePolicy
) -> None:
    assert policy(web, registry, query) == expected


def test_a_field_hint_wins_over_its_type() -> None:
    from tests.bff.graphql.hints_module import module

    registry = Registry.from_modules([module])
    schema = build_schema("any", registry)._schema
    assert policy(schema, registry, "{ thing { id } }") == CachePolicy(1000)
    assert policy(schema, registry, "{ plain { id } }") == CachePolicy(100)
    assert policy(schema, registry, "{ plain { id slow } }") == CachePolicy(5)
    assert policy(schema, registry, "{ plain { secret } }") == CachePolicy(100, private=True)
    assert policy(schema, registry, "{ count }") == NOT_CACHEABLE  # a root scalar with no hint


def test_headers_and_per_response_lowering() -> None:
    assert CachePolicy(60).header() == "max-age=60, public"
    assert CachePolicy(30, private=True).header() == "max-age=30, private"
    assert NOT_CACHEABLE.header() == "no-store"
    assert CachePolicy(60).for_response(failed=True, personal=False) == NOT_CACHEABLE
    assert CachePolicy(60).for_response(failed=False, personal=True) == CachePolicy(60, True)
    assert CachePolicy(60).for_response(failed=False, personal=False) == CachePolicy(60)


def test_hints_leave_the_sdl_unchanged(registry: Registry) -> None:
    from pathlib import Path

    from bff.graphql.sdl import diff_sdl, export_sdl

    root = Path(__file__).resolve().parents[3] / "schema"
    for app in ("web", "mobile", "iot"):
        committed = (root / f"{app}.graphql").read_text()
        assert not diff_sdl(committed, export_sdl(build_schema(app, registry)._schema)).changed


# -- over HTTP -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
async def gw(services: SampleServices) -> AsyncIterator[Gateway]:
    async with own_gateway(services.env) as gateway:
        yield gateway


@pytest.fixture
async def client(gw: Gateway) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(gw) as c:
        yield c


def bearer() -> dict[str, str]:
    secret = demo_config({}).auth.jwt.secret or ""
    return {"authorization": f"Bearer {demo_token(secret)}"}


@pytest.mark.parametrize(
    ("query", "header"),
    [
        ("{ product(id: 3) { name } }", "max-age=60, public"),
        ("{ product(id: 3) { name } user(id: 3) { name } }", "max-age=30, public"),
        ("{ order(id: 30) { status } }", "no-store"),
        ("{ me { name } }", "no-store"),  # anonymous: an UNAUTHENTICATED error
        ("{ product(id: 0) { name } }", "no-store"),  # a BAD_USER_INPUT error
        ("{ product(id: 3) { nope } }", "no-store"),  # invalid
    ],
)
async def test_cache_control_of_anonymous_answers(
    client: httpx.AsyncClient, query: str, header: str
) -> None:
    r = await gql(client, "web", query)
    assert r.headers["cache-control"] == header
    if header != "no-store":
        assert r.headers["vary"] == "Accept"


async def test_a_signed_in_callers_answers_are_private(client: httpx.AsyncClient) -> None:
    r = await gql(client, "web", "{ me { name } }", headers=bearer())
    assert r.status_code == 200 and r.json()["data"]["me"]["name"] == "User 1"
    assert r.headers["cache-control"] == "max-age=30, private"
    # a public query asked by a signed-in caller: private too (it may carry their view)
    r = await gql(client, "web", "{ product(id: 4) { name } }", headers=bearer())
    assert r.headers["cache-control"] == "max-age=60, private"
    assert "x-cache" not in r.headers  # and never through the shared response cache


async def test_mutations_are_never_cacheable(client: httpx.AsyncClient) -> None:
    r = await gql(
        client,
        "web",
        'mutation { placeOrder(lines: [{productId: "1", quantity: 1}]) { id } }',
    )
    assert r.headers["cache-control"] == "no-store"
