"""Registered GraphQL operations in the store (SQLite, and PostgreSQL when configured)."""

from __future__ import annotations

import asyncio

from bff.graphql.operations import OperationCatalogue
from bff.store import Store


async def test_put_list_get_delete(store: Store) -> None:
    repo = store.persisted_operations
    assert await repo.list() == []
    assert await repo.fingerprint() == (0, 0.0)
    a = await repo.put("iot", "a" * 64, "query A { x }", "A")
    await repo.put("iot", "b" * 64, "query B { x }", None)
    await repo.put("mobile", "a" * 64, "query A { x }", "A")  # same hash, another app
    assert a.created_at == a.updated_at
    assert [(r.app, r.name, r.hash[0]) for r in await repo.list()] == [
        ("iot", None, "b"),  # by app, then name (unnamed first), then hash
        ("iot", "A", "a"),
        ("mobile", "A", "a"),
    ]
    assert [r.hash for r in await repo.list(app="mobile")] == ["a" * 64]
    found = await repo.get("iot", "a" * 64)
    assert found is not None and found.document == "query A { x }" and found.name == "A"
    count, first = await repo.fingerprint()
    assert count == 3
    await asyncio.sleep(0.01)
    again = await repo.put("iot", "a" * 64, "query A { x }", "Renamed")  # idempotent upsert
    assert again.created_at == a.created_at and again.updated_at > a.updated_at
    assert (await repo.fingerprint())[1] > first  # a change the pollers notice
    assert await repo.delete("iot", "a" * 64)
    assert not await repo.delete("iot", "a" * 64)
    assert await repo.get("iot", "a" * 64) is None
    assert (await repo.fingerprint())[0] == 2


async def test_the_catalogue_follows_the_store(store: Store) -> None:
    repo = store.persisted_operations
    await repo.put("iot", "c" * 64, "query C { x }", "C")
    catalogue = OperationCatalogue(repo, interval=0.05)
    await catalogue.start()
    try:
        assert catalogue.get("iot", "c" * 64) is not None
        assert catalogue.has("iot") and not catalogue.has("web")
        assert catalogue.count() == 1
        await repo.put("iot", "d" * 64, "query D { x }", "D")
        await repo.delete("iot", "c" * 64)
        for _ in range(100):
            if catalogue.get("iot", "d" * 64) is not None:
                break
            await asyncio.sleep(0.02)
        assert catalogue.get("iot", "d" * 64) is not None
        assert catalogue.get("iot", "c" * 64) is None
        assert not await catalogue.refresh()  # nothing changed since
    finally:
        await catalogue.aclose()
