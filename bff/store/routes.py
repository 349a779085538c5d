"""Admin-managed passthrough routes in the store: an id and its definition (JSON)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from bff.store.errors import StoreConflict
from bff.store.schema import routes

if TYPE_CHECKING:
    from bff.store.store import Store

__all__ = ["RouteRecord", "RouteRepository"]


@dataclass(frozen=True, slots=True)
class RouteRecord:
    """A stored route: ``definition`` is a route object as written under ``routes:``."""

    id: str
    definition: dict[str, Any]
    created_at: float
    updated_at: float


def _record(row: sa.Row[Any]) -> RouteRecord:
    m = row._mapping
    return RouteRecord(
        id=m["id"],
        definition=dict(m["definition"]),
        created_at=float(m["created_at"]),
        updated_at=float(m["updated_at"]),
    )


class RouteRepository:
    """Reads and writes ``bff_routes``. Every method raises :class:`StoreError` on failure."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def list(self, *, updated_since: float | None = None) -> list[RouteRecord]:
        """All routes (or those changed since a time), by id."""
        query = sa.select(routes).order_by(routes.c.id)
        if updated_since is not None:
            query = query.where(routes.c.updated_at >= updated_since)
        async with self._store.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [_record(r) for r in rows]

    async def get(self, route_id: str) -> RouteRecord | None:
        async with self._store.connect() as conn:
            row = (await conn.execute(sa.select(routes).where(routes.c.id == route_id))).first()
        return None if row is None else _record(row)

    async def insert(self, route_id: str, definition: dict[str, Any]) -> RouteRecord:
        """Create the route ``route_id``; :class:`StoreConflict` when the id is taken."""
        now = time.time()
        async with self._store.transaction() as conn:
            await conn.execute(
                sa.insert(routes).values(
                    id=route_id, definition=definition, created_at=now, updated_at=now
                )
            )
        return RouteRecord(route_id, dict(definition), now, now)

    async def put(self, route_id: str, definition: dict[str, Any]) -> RouteRecord:
        """Create or replace the route ``route_id``."""
        now = time.time()
        for _ in range(3):
            try:
                async with self._store.transaction() as conn:
                    updated = await conn.execute(
                        sa.update(routes)
                        .where(routes.c.id == route_id)
                        .values(definition=definition, updated_at=now)
                    )
                    if updated.rowcount == 0:
                        await conn.execute(
                            sa.insert(routes).values(
                                id=route_id, definition=definition, created_at=now, updated_at=now
                            )
                        )
                    row = (
                        await conn.execute(sa.select(routes).where(routes.c.id == route_id))
                    ).one()
                return _record(row)
            except StoreConflict:
                continue  # created concurrently: update it on the next pass
        raise StoreConflict(f"route {route_id!r} is being written concurrently")

    async def delete(self, route_id: str) -> bool:
        """Remove the route; False when there was none."""
        async with self._store.transaction() as conn:
            result = await conn.execute(sa.delete(routes).where(routes.c.id == route_id))
        return bool(result.rowcount)
