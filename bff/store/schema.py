"""The store's tables and the migrations that create them.

Times are seconds since the epoch (``DOUBLE PRECISION``): one representation that SQLite and
PostgreSQL store and compare alike, with no time-zone conversion in either driver. Lists
(scopes, CIDRs) and route definitions are ``JSON``.

Migrations run at start-up, in one transaction; on PostgreSQL an advisory lock serializes the
workers and nodes that start together. Each migration is a function appended to
:data:`MIGRATIONS`; the version reached is recorded in ``bff_schema_version``.
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from bff.store.errors import StoreError

__all__ = [
    "MIGRATIONS",
    "api_keys",
    "metadata",
    "migrate",
    "persisted_operations",
    "routes",
    "schema_version",
]

metadata = sa.MetaData()

schema_version = sa.Table(
    "bff_schema_version",
    metadata,
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("applied_at", sa.Double, nullable=False),
)

api_keys = sa.Table(
    "bff_api_keys",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    # The public start of the key ("bff_" + 8 characters): how a presented key is found.
    sa.Column("prefix", sa.String(32), nullable=False, unique=True),
    # Hex SHA-256 of the whole key; the key itself is never stored.
    sa.Column("key_hash", sa.String(64), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("owner", sa.String(200), nullable=True),
    sa.Column("scopes", sa.JSON, nullable=False),
    sa.Column("tier", sa.String(64), nullable=False),
    sa.Column("allowed_ips", sa.JSON, nullable=False),
    sa.Column("active", sa.Boolean, nullable=False),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("updated_at", sa.Double, nullable=False),
    sa.Column("expires_at", sa.Double, nullable=True),
    sa.Column("last_used", sa.Double, nullable=True),
    sa.Index("ix_bff_api_keys_owner", "owner"),
)

routes = sa.Table(
    "bff_routes",
    metadata,
    sa.Column("id", sa.String(128), primary_key=True),
    sa.Column("definition", sa.JSON, nullable=False),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("updated_at", sa.Double, nullable=False),
)


persisted_operations = sa.Table(
    "bff_persisted_operations",
    metadata,
    sa.Column("app", sa.String(64), primary_key=True),
    # Hex SHA-256 of the document text, as automatic persisted queries compute it.
    sa.Column("hash", sa.String(64), primary_key=True),
    sa.Column("document", sa.Text, nullable=False),
    sa.Column("name", sa.String(200), nullable=True),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("updated_at", sa.Double, nullable=False),
)


def _v1(conn: Connection) -> None:
    api_keys.create(conn, checkfirst=True)
    routes.create(conn, checkfirst=True)


def _v2(conn: Connection) -> None:
    persisted_operations.create(conn, checkfirst=True)


MIGRATIONS: list[Callable[[Connection], None]] = [_v1, _v2]
"""``MIGRATIONS[i]`` brings the schema from version ``i`` to ``i + 1``."""


def migrate(conn: Connection, now: float) -> int:
    """Apply the migrations not yet recorded; returns the schema version reached."""
    schema_version.create(conn, checkfirst=True)
    current = conn.execute(sa.select(sa.func.max(schema_version.c.version))).scalar() or 0
    if current > len(MIGRATIONS):
        raise StoreError(
            f"the store's schema is version {current}, newer than this bff "
            f"(knows {len(MIGRATIONS)}): upgrade bff"
        )
    for version in range(current + 1, len(MIGRATIONS) + 1):
        MIGRATIONS[version - 1](conn)
        conn.execute(sa.insert(schema_version).values(version=version, applied_at=now))
    return len(MIGRATIONS)
