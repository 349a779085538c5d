"""API-key records in the store: what is kept about a key (never the key itself)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from bff.store.errors import StoreConflict
from bff.store.schema import api_keys

if TYPE_CHECKING:
    from bff.store.store import Store

__all__ = ["ApiKeyRecord", "ApiKeyRepository", "DuplicatePrefix"]

_UPDATABLE = frozenset(
    {"name", "owner", "scopes", "tier", "expires_at", "active", "allowed_ips", "updated_at"}
)


class DuplicatePrefix(Exception):
    """Another key already has this prefix (the caller generates a new key)."""


@dataclass(frozen=True, slots=True)
class ApiKeyRecord:
    """One API key as stored: its hash and public prefix, never the plaintext."""

    id: str
    prefix: str
    key_hash: str
    name: str
    owner: str | None
    scopes: tuple[str, ...]
    tier: str
    allowed_ips: tuple[str, ...]
    active: bool
    created_at: float
    updated_at: float
    expires_at: float | None = None
    last_used: float | None = None

    def is_expired(self, now: float) -> bool:
        return self.expires_at is not None and now >= self.expires_at

    def public(self) -> dict[str, Any]:
        """The record without its hash (what the admin API and the CLI show)."""
        return {
            "id": self.id,
            "prefix": self.prefix,
            "name": self.name,
            "owner": self.owner,
            "scopes": list(self.scopes),
            "tier": self.tier,
            "allowed_ips": list(self.allowed_ips),
            "active": self.active,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "expires_at": self.expires_at,
            "last_used": self.last_used,
        }


def _record(row: sa.Row[Any]) -> ApiKeyRecord:
    m = row._mapping
    return ApiKeyRecord(
        id=m["id"],
        prefix=m["prefix"],
        key_hash=m["key_hash"],
        name=m["name"],
        owner=m["owner"],
        scopes=tuple(m["scopes"] or ()),
        tier=m["tier"],
        allowed_ips=tuple(m["allowed_ips"] or ()),
        active=bool(m["active"]),
        created_at=float(m["created_at"]),
        updated_at=float(m["updated_at"]),
        expires_at=None if m["expires_at"] is None else float(m["expires_at"]),
        last_used=None if m["last_used"] is None else float(m["last_used"]),
    )


def _values(record: ApiKeyRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "prefix": record.prefix,
        "key_hash": record.key_hash,
        "name": record.name,
        "owner": record.owner,
        "scopes": list(record.scopes),
        "tier": record.tier,
        "allowed_ips": list(record.allowed_ips),
        "active": record.active,
        "created_at": record.created_at,
        "updated_at": record.updated_at,
        "expires_at": record.expires_at,
        "last_used": record.last_used,
    }


class ApiKeyRepository:
    """Reads and writes ``bff_api_keys``. Every method raises :class:`StoreError` on failure."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def insert(self, record: ApiKeyRecord) -> ApiKeyRecord:
        """Add ``record``; :class:`DuplicatePrefix` when its prefix or id is taken."""
        try:
            async with self._store.transaction() as conn:
                await conn.execute(sa.insert(api_keys).values(**_values(record)))
        except StoreConflict:
            raise DuplicatePrefix(record.prefix) from None
        return record

    async def get(self, key_id: str) -> ApiKeyRecord | None:
        async with self._store.connect() as conn:
            row = (await conn.execute(sa.select(api_keys).where(api_keys.c.id == key_id))).first()
        return None if row is None else _record(row)

    async def find_by_prefix(self, prefix: str) -> ApiKeyRecord | None:
        """The key whose public prefix is ``prefix`` (the lookup of every presented key)."""
        async with self._store.connect() as conn:
            result = await conn.execute(sa.select(api_keys).where(api_keys.c.prefix == prefix))
            row = result.first()
        return None if row is None else _record(row)

    async def list(
        self,
        *,
        limit: int = 100,
        offset: int = 0,
        owner: str | None = None,
        active: bool | None = None,
    ) -> list[ApiKeyRecord]:
        """Keys, oldest first."""
        query = sa.select(api_keys)
        if owner is not None:
            query = query.where(api_keys.c.owner == owner)
        if active is not None:
            query = query.where(api_keys.c.active == active)
        query = query.order_by(api_keys.c.created_at, api_keys.c.id).limit(limit).offset(offset)
        async with self._store.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [_record(r) for r in rows]

    async def update(self, key_id: str, changes: Mapping[str, Any]) -> ApiKeyRecord | None:
        """Apply ``changes`` (column -> value); the updated record, or None if unknown."""
        unknown = set(changes) - _UPDATABLE
        if unknown:
            raise ValueError(f"not updatable: {', '.join(sorted(unknown))}")
        values = dict(changes)
        for column in ("scopes", "allowed_ips"):
            if column in values:
                values[column] = list(values[column])
        async with self._store.transaction() as conn:
            if values:
                await conn.execute(
                    sa.update(api_keys).where(api_keys.c.id == key_id).values(**values)
                )
            row = (await conn.execute(sa.select(api_keys).where(api_keys.c.id == key_id))).first()
        return None if row is None else _record(row)

    async def touch_last_used(
        self, used: Mapping[str, float] | Sequence[tuple[str, float]]
    ) -> None:
        """Record when keys were last used (one batched statement; never moves back in time)."""
        items = list(used.items()) if isinstance(used, Mapping) else list(used)
        if not items:
            return
        statement = (
            sa.update(api_keys)
            .where(api_keys.c.id == sa.bindparam("key_id"))
            .where(
                sa.or_(
                    api_keys.c.last_used.is_(None),
                    api_keys.c.last_used < sa.bindparam("used_at"),
                )
            )
            .values(last_used=sa.bindparam("used_at"))
        )
        async with self._store.transaction() as conn:
            await conn.execute(statement, [{"key_id": k, "used_at": t} for k, t in items])
