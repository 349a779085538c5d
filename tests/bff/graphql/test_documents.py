"""The document cache: parse-and-validate once, within a memory budget."""

from __future__ import annotations

import gc
import tracemalloc

import pytest
from graphql import GraphQLSchema

from bff.graphql import Registry, build_schema
from bff.graphql.documents import DocumentCache

MODULES = ["schema.users", "schema.orders", "schema.products", "schema.reviews"]


@pytest.fixture(scope="module")
def web_schema() -> GraphQLSchema:
    return build_schema("web", Registry.from_module_names(MODULES))._schema


def test_a_document_is_prepared_once(web_schema: GraphQLSchema) -> None:
    cache = DocumentCache(web_schema)
    query = "{ users(limit: 1) { items { id name } } }"
    assert cache.get(query) is cache.get(query)


@pytest.mark.parametrize(
    "make",
    [
        lambda i: f"{{ nope{i} }}",  # invalid: unknown field
        lambda i: f"{{ users( {i}",  # syntax error
        lambda i: f"{{ users(limit: {i + 1}) {{ items {{ id name }} }} }}",  # valid
    ],
    ids=["invalid", "syntax-error", "valid"],
)
def test_a_flood_of_distinct_documents_stays_within_the_budget(
    web_schema: GraphQLSchema, make: object
) -> None:
    budget = 160 * 1024
    cache = DocumentCache(web_schema, max_bytes=budget)
    gc.collect()
    tracemalloc.start()
    try:
        for i in range(800):
            cache.get(make(i))  # type: ignore[operator]
        assert 0 < len(cache) < 800  # it evicted
        gc.collect()
        full = tracemalloc.get_traced_memory()[0]
        cache.clear()
        gc.collect()
        held = full - tracemalloc.get_traced_memory()[0]  # what the cached documents hold
    finally:
        tracemalloc.stop()
    assert held < budget * 1.5, f"{held / 1024:.0f} KiB held for a {budget // 1024} KiB budget"
