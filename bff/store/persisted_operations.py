"""Registered GraphQL operations (the allow-list of ``persisted_queries: only`` apps).

One row per app and document hash: the document's text, exactly as it was registered (its
SHA-256 is the hash clients send), and its operation name. Gateways read the whole list at
start-up and poll :meth:`PersistedOperationRepository.fingerprint` to notice changes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from bff.store.schema import persisted_operations

if TYPE_CHECKING:
    from bff.store.store import Store

__all__ = ["PersistedOperationRecord", "PersistedOperationRepository"]


@dataclass(frozen=True, slots=True)
class PersistedOperationRecord:
    """A registered operation: ``hash`` is the hex SHA-256 of ``document``."""

    app: str
    hash: str
    document: str
    name: str | None
    created_at: float
    updated_at: float


def _record(row: sa.Row[Any]) -> PersistedOperationRecord:
    m = row._mapping
    return PersistedOperationRecord(
        app=m["app"],
        hash=m["hash"],
        document=m["document"],
        name=m["name"],
        created_at=float(m["created_at"]),
        updated_at=float(m["updated_at"]),
    )


class PersistedOperationRepository:
    """Reads and writes ``bff_persisted_operations``; raises :class:`StoreError` on failure."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def list(self, *, app: str | None = None) -> list[PersistedOperationRecord]:
        """Every registered operation (of one app), by app, name and hash."""
        t = persisted_operations
        # coalesce: unnamed first on SQLite and PostgreSQL alike (they sort NULLs differently)
        query = sa.select(t).order_by(t.c.app, sa.func.coalesce(t.c.name, ""), t.c.hash)
        if app is not None:
            query = query.where(t.c.app == app)
        async with self._store.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [_record(r) for r in rows]

    async def get(self, app: str, hash_: str) -> PersistedOperationRecord | None:
        t = persisted_operations
        async with self._store.connect() as conn:
            row = (
                await conn.execute(sa.select(t).where(t.c.app == app, t.c.hash == hash_))
            ).first()
        return None if row is None else _record(row)

    async def put(
        self, app: str, hash_: str, document: str, name: str | None
    ) -> PersistedOperationRecord:
        """Register (or re-register) an operation; idempotent for the same document."""
        t = persisted_operations
        now = time.time()
        async with self._store.transaction() as conn:
            updated = await conn.execute(
                sa.update(t)
                .where(t.c.app == app, t.c.hash == hash_)
                .values(document=document, name=name, updated_at=now)
            )
            if updated.rowcount == 0:
                await conn.execute(
                    sa.insert(t).values(
                        app=app,
                        hash=hash_,
                        document=document,
                        name=name,
                        created_at=now,
                        updated_at=now,
                    )
                )
            row = (await conn.execute(sa.select(t).where(t.c.app == app, t.c.hash == hash_))).one()
        return _record(row)

    async def delete(self, app: str, hash_: str) -> bool:
        """Remove the operation; False when there was none."""
        t = persisted_operations
        async with self._store.transaction() as conn:
            result = await conn.execute(sa.delete(t).where(t.c.app == app, t.c.hash == hash_))
        return bool(result.rowcount)

    async def fingerprint(self) -> tuple[int, float]:
        """``(rows, latest update)``: changes whenever an operation is added, replaced or
        removed, so pollers reload only then."""
        t = persisted_operations
        query = sa.select(sa.func.count(), sa.func.max(t.c.updated_at))
        async with self._store.connect() as conn:
            count, latest = (await conn.execute(query)).one()
        return int(count or 0), float(latest or 0.0)
