"""The store on SQLite (and PostgreSQL when BFF_TEST_PG is set): schema, API keys, routes."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from bff.store import (
    ApiKeyRecord,
    DuplicatePrefix,
    Store,
    StoreError,
    engine_url,
)
from bff.store.schema import MIGRATIONS, schema_version
from tests.bff.store.conftest import PG_DSN
from tests.support.servers import free_port


def record(key_id: str = "key_1", prefix: str = "bff_AAAAAAAA", **kw: object) -> ApiKeyRecord:
    now = time.time()
    values: dict[str, object] = {
        "id": key_id,
        "prefix": prefix,
        "key_hash": "ab" * 32,
        "name": "test key",
        "owner": "team-a",
        "scopes": ("orders:read",),
        "tier": "free",
        "allowed_ips": (),
        "active": True,
        "created_at": now,
        "updated_at": now,
    }
    values.update(kw)
    return ApiKeyRecord(**values)  # type: ignore[arg-type]


# -- opening and migrating ---------------------------------------------------------------------


async def test_open_migrates_and_is_idempotent(store: Store) -> None:
    assert store.version == len(MIGRATIONS)
    await store.open()  # already open: nothing happens
    reopened = Store(store.url, schema=store.schema)
    await reopened.open()  # schema already there: recorded version is kept
    try:
        async with reopened.connect() as conn:
            versions = (await conn.execute(sa.select(schema_version.c.version))).scalars().all()
        assert versions == list(range(1, len(MIGRATIONS) + 1))
    finally:
        await reopened.aclose()


async def test_a_newer_schema_is_refused(store: Store) -> None:
    async with store.transaction() as conn:
        await conn.execute(sa.insert(schema_version).values(version=99, applied_at=time.time()))
    other = Store(store.url, schema=store.schema)
    with pytest.raises(StoreError, match="newer than this bff"):
        await other.open()
    assert not other.is_open


async def test_concurrent_start_ups_migrate_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/shared.db"
    stores = [Store(url) for _ in range(4)]
    try:
        await asyncio.gather(*(s.open() for s in stores))
        async with stores[0].connect() as conn:
            count = (
                await conn.execute(sa.select(sa.func.count()).select_from(schema_version))
            ).scalar()
        assert count == len(MIGRATIONS)
    finally:
        for s in stores:
            await s.aclose()


async def test_sqlite_creates_the_database_directory(tmp_path: Path) -> None:
    s = Store(f"sqlite:///{tmp_path}/a/b/bff.db")
    await s.open()
    await s.aclose()
    assert (tmp_path / "a" / "b" / "bff.db").exists()


async def test_in_memory_sqlite_works() -> None:
    s = Store("sqlite:///:memory:")
    await s.open()
    try:
        await s.api_keys.insert(record())
        assert (await s.api_keys.get("key_1")) is not None
    finally:
        await s.aclose()


def test_urls_map_to_async_drivers() -> None:
    assert engine_url("sqlite:///./bff.db").drivername == "sqlite+aiosqlite"
    assert engine_url("sqlite:///./bff.db").database == "./bff.db"
    assert engine_url("sqlite:////var/lib/bff.db").database == "/var/lib/bff.db"
    pg = engine_url("postgresql://u:secret@db:5432/bff")
    assert pg.drivername == "postgresql+asyncpg" and pg.host == "db" and pg.database == "bff"
    assert engine_url("postgres://db/bff").drivername == "postgresql+asyncpg"
    with pytest.raises(StoreError):
        engine_url("mysql://db/bff")


async def test_unreachable_postgres_is_a_clear_error_without_the_password() -> None:
    s = Store(f"postgresql://bff:hunter2@127.0.0.1:{free_port()}/bff", connect_timeout=2)
    with pytest.raises(StoreError) as info:
        await s.open()
    assert "cannot open the store" in str(info.value)
    assert "hunter2" not in str(info.value)


async def test_an_unopened_store_raises_store_error(tmp_path: Path) -> None:
    s = Store(f"sqlite:///{tmp_path}/x.db")
    with pytest.raises(StoreError, match="not open"):
        await s.api_keys.get("key_1")


async def test_schema_only_for_postgres(tmp_path: Path) -> None:
    with pytest.raises(StoreError):
        Store(f"sqlite:///{tmp_path}/x.db", schema="nope")


# -- API keys ----------------------------------------------------------------------------------


async def test_insert_get_and_find_by_prefix(store: Store) -> None:
    r = record(expires_at=time.time() + 60, allowed_ips=("10.0.0.0/8",))
    await store.api_keys.insert(r)
    assert await store.api_keys.get("key_1") == r
    assert await store.api_keys.find_by_prefix("bff_AAAAAAAA") == r
    assert await store.api_keys.find_by_prefix("bff_BBBBBBBB") is None
    assert await store.api_keys.get("nope") is None


async def test_duplicate_prefix_or_id_is_refused(store: Store) -> None:
    await store.api_keys.insert(record())
    with pytest.raises(DuplicatePrefix):
        await store.api_keys.insert(record(key_id="key_2"))
    with pytest.raises(DuplicatePrefix):
        await store.api_keys.insert(record(prefix="bff_CCCCCCCC"))


@pytest.mark.parametrize(
    "name",
    [
        "x'; DROP TABLE bff_api_keys; --",
        'a" OR "1"="1',
        "%_\\%",
        "name with ünïcödé and 'quotes'",
    ],
)
async def test_sql_metacharacters_are_just_text(store: Store, name: str) -> None:
    await store.api_keys.insert(record(name=name, owner=name))
    got = await store.api_keys.get("key_1")
    assert got is not None and got.name == name
    assert [r.id for r in await store.api_keys.list(owner=name)] == ["key_1"]
    assert await store.api_keys.list(owner="%") == []


async def test_list_filters_and_pages(store: Store) -> None:
    base = time.time()
    for i in range(5):
        await store.api_keys.insert(
            record(
                key_id=f"key_{i}",
                prefix=f"bff_{i:08d}",
                owner="a" if i % 2 else "b",
                active=i != 3,
                created_at=base + i,
            )
        )
    assert [r.id for r in await store.api_keys.list()] == [f"key_{i}" for i in range(5)]
    assert [r.id for r in await store.api_keys.list(limit=2, offset=1)] == ["key_1", "key_2"]
    assert [r.id for r in await store.api_keys.list(owner="a")] == ["key_1", "key_3"]
    assert [r.id for r in await store.api_keys.list(active=False)] == ["key_3"]


async def test_update(store: Store) -> None:
    await store.api_keys.insert(record())
    updated = await store.api_keys.update(
        "key_1", {"active": False, "scopes": ["a", "b"], "tier": "pro", "expires_at": None}
    )
    assert updated is not None
    assert (updated.active, updated.scopes, updated.tier) == (False, ("a", "b"), "pro")
    assert await store.api_keys.update("nope", {"active": False}) is None
    with pytest.raises(ValueError):
        await store.api_keys.update("key_1", {"key_hash": "00"})


async def test_last_used_is_batched_and_never_moves_back(store: Store) -> None:
    await store.api_keys.insert(record())
    await store.api_keys.insert(record(key_id="key_2", prefix="bff_BBBBBBBB"))
    await store.api_keys.touch_last_used({"key_1": 100.0, "key_2": 200.0, "gone": 1.0})
    await store.api_keys.touch_last_used({"key_1": 50.0})
    first, second = await store.api_keys.get("key_1"), await store.api_keys.get("key_2")
    assert first is not None and first.last_used == 100.0
    assert second is not None and second.last_used == 200.0
    await store.api_keys.touch_last_used({})


# -- routes ------------------------------------------------------------------------------------


async def test_routes_crud(store: Store) -> None:
    assert await store.routes.list() == []
    created = await store.routes.put("users", {"path": "/api/users", "upstream": "users"})
    assert created.definition == {"path": "/api/users", "upstream": "users"}
    replaced = await store.routes.put("users", {"path": "/api/people", "upstream": "users"})
    assert replaced.created_at == created.created_at
    assert replaced.updated_at >= created.updated_at
    assert (await store.routes.get("users")) == replaced
    await store.routes.put("orders", {"path": "/api/orders"})
    assert [r.id for r in await store.routes.list()] == ["orders", "users"]
    assert [r.id for r in await store.routes.list(updated_since=time.time() + 60)] == []
    assert await store.routes.delete("users") is True
    assert await store.routes.delete("users") is False
    assert await store.routes.get("users") is None


async def test_concurrent_puts_of_one_route(store: Store) -> None:
    await asyncio.gather(*(store.routes.put("r", {"n": i}) for i in range(5)))
    assert [r.id for r in await store.routes.list()] == ["r"]


@pytest.mark.skipif(not PG_DSN, reason="BFF_TEST_PG is not set")
async def test_postgres_schemas_isolate_stores(tmp_path: Path) -> None:
    from tests.bff.store.conftest import new_store

    a, b = new_store("postgresql", tmp_path), new_store("postgresql", tmp_path)
    await a.open()
    await b.open()
    try:
        await a.api_keys.insert(record())
        assert await b.api_keys.get("key_1") is None
    finally:
        for s in (a, b):
            await s.drop_schema()
            await s.aclose()
