"""The store: SQLite or PostgreSQL through one code path (SQLAlchemy Core, async).

``sqlite:///path.db`` runs on aiosqlite, ``postgresql://...`` on asyncpg; every query is written
once in SQLAlchemy Core and means the same on both. :meth:`Store.open` (called at start-up)
connects and migrates the schema; :meth:`Store.aclose` (at shutdown) closes the pool.

Nothing on a request's hot path awaits the store: callers cache what they read (see
:mod:`bff.auth.key_cache`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import sqlalchemy as sa
from sqlalchemy import event, exc
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool

from bff.store.api_keys import ApiKeyRepository
from bff.store.errors import StoreConflict, StoreError
from bff.store.persisted_operations import PersistedOperationRepository
from bff.store.routes import RouteRepository
from bff.store.schema import migrate

if TYPE_CHECKING:
    from bff.config import StoreConfig

__all__ = ["Store", "engine_url"]

log = logging.getLogger("bff.store")

_PG_MIGRATION_LOCK = 0x6266665F_73746F72  # "bff_stor": serializes concurrent start-ups


def _redacted(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<invalid store URL>"


def engine_url(url: str) -> sa.URL:
    """The SQLAlchemy URL (with the async driver) for a ``store.url``."""
    scheme, sep, rest = url.partition("://")
    base = scheme.lower().split("+", 1)[0]
    if not sep:
        raise StoreError("the store URL must be sqlite:///... or postgresql://...")
    if base == "sqlite":
        return sa.URL.create("sqlite+aiosqlite", database=rest[1:] or ":memory:")
    if base in ("postgresql", "postgres"):
        try:
            return make_url("postgresql://" + rest).set(drivername="postgresql+asyncpg")
        except exc.ArgumentError:
            raise StoreError(f"invalid store URL {_redacted(url)}") from None
    raise StoreError(f"unsupported store URL scheme {scheme!r}")


def _describe(error: BaseException) -> str:
    """A one-line, parameter-free description of a database failure (for logs and errors)."""
    if isinstance(error, exc.DBAPIError) and error.orig is not None:
        error = error.orig
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{type(error).__name__}: {text}"[:300] if text else type(error).__name__


class Store:
    """API keys and admin-managed routes, in SQLite or PostgreSQL.

    ``schema`` (PostgreSQL only) puts the tables in that schema, created if missing: tests use a
    fresh one per run. Repositories: :attr:`api_keys`, :attr:`routes`,
    :attr:`persisted_operations`.
    """

    def __init__(
        self,
        url: str,
        *,
        schema: str | None = None,
        connect_timeout: float = 5.0,
        command_timeout: float = 10.0,
    ) -> None:
        self.url = url
        self.sa_url = engine_url(url)
        self.kind: Literal["sqlite", "postgresql"] = (
            "sqlite" if self.sa_url.drivername.startswith("sqlite") else "postgresql"
        )
        if schema is not None and self.kind != "postgresql":
            raise StoreError("a schema can only be given for a PostgreSQL store")
        self.schema = schema
        self.connect_timeout = connect_timeout
        self.command_timeout = command_timeout
        self.version = 0
        self._engine: AsyncEngine | None = None
        self.api_keys = ApiKeyRepository(self)
        self.routes = RouteRepository(self)
        self.persisted_operations = PersistedOperationRepository(self)

    @classmethod
    def from_config(cls, config: StoreConfig) -> Store:
        """A store for the ``store:`` section of the configuration."""
        return cls(config.url)

    @property
    def description(self) -> str:
        """The URL without its password (for logs)."""
        return _redacted(self.url)

    @property
    def is_open(self) -> bool:
        return self._engine is not None

    def _make_engine(self) -> AsyncEngine:
        options: dict[str, Any] = {}
        if self.kind == "sqlite":
            database = self.sa_url.database or ":memory:"
            options["connect_args"] = {"timeout": self.connect_timeout}
            if database == ":memory:":
                options["poolclass"] = StaticPool  # one shared in-memory database
        else:
            options["connect_args"] = {
                "timeout": self.connect_timeout,
                "command_timeout": self.command_timeout,
            }
            options["pool_pre_ping"] = True
            options["pool_size"] = 5
            options["max_overflow"] = 5
        engine = create_async_engine(self.sa_url, **options)
        if self.schema is not None:
            engine = engine.execution_options(schema_translate_map={None: self.schema})
        if self.kind == "sqlite":
            event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine

    async def open(self) -> None:
        """Connect and bring the schema up to date (idempotent)."""
        if self._engine is not None:
            return
        if self.kind == "sqlite" and self.sa_url.database not in (None, "", ":memory:"):
            parent = Path(str(self.sa_url.database)).parent
            try:
                await asyncio.to_thread(parent.mkdir, parents=True, exist_ok=True)
            except OSError as error:
                raise StoreError(f"cannot create the store's directory {parent}: {error}") from None
        engine = self._make_engine()
        try:
            self.version = await self._migrate(engine)
        except BaseException:
            await engine.dispose()
            raise
        self._engine = engine
        log.debug("store %s ready (schema version %d)", self.description, self.version)

    async def _migrate(self, engine: AsyncEngine) -> int:
        attempts = 5
        for attempt in range(1, attempts + 1):
            try:
                async with engine.begin() as conn:
                    if self.kind == "postgresql":
                        if self.schema is not None:
                            await conn.execute(
                                sa.text(f'CREATE SCHEMA IF NOT EXISTS "{_ident(self.schema)}"')
                            )
                        await conn.execute(
                            sa.text("SELECT pg_advisory_xact_lock(:key)"),
                            {"key": _PG_MIGRATION_LOCK},
                        )
                    return await conn.run_sync(migrate, time.time())
            except (exc.IntegrityError, exc.OperationalError) as error:
                # Another process migrating the same SQLite file at the same moment.
                if attempt == attempts or self.kind != "sqlite":
                    raise StoreError(
                        f"cannot open the store {self.description}: {_describe(error)}"
                    ) from None
                await asyncio.sleep(0.05 * attempt)
            except (exc.SQLAlchemyError, OSError, TimeoutError) as error:
                raise StoreError(
                    f"cannot open the store {self.description}: {_describe(error)}"
                ) from None
        raise AssertionError("unreachable")

    async def aclose(self) -> None:
        """Close every connection (idempotent)."""
        engine, self._engine = self._engine, None
        if engine is not None:
            await engine.dispose()

    async def drop_schema(self) -> None:
        """Drop this store's PostgreSQL schema and everything in it (tests clean up with it)."""
        if self.schema is None:
            raise StoreError("drop_schema needs a store opened with a schema")
        async with self.transaction() as conn:
            await conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{_ident(self.schema)}" CASCADE'))

    def _require_engine(self) -> AsyncEngine:
        if self._engine is None:
            raise StoreError("the store is not open")
        return self._engine

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[AsyncConnection]:
        """A connection for reads; database failures become :class:`StoreError`."""
        engine = self._require_engine()
        try:
            async with engine.connect() as conn:
                yield conn
        except exc.IntegrityError as error:
            raise StoreConflict(_describe(error)) from None
        except (exc.SQLAlchemyError, OSError, TimeoutError) as error:
            raise StoreError(f"store unavailable: {_describe(error)}") from None

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """A connection in a transaction, committed on success, rolled back on error."""
        engine = self._require_engine()
        try:
            async with engine.begin() as conn:
                yield conn
        except exc.IntegrityError as error:
            raise StoreConflict(_describe(error)) from None
        except (exc.SQLAlchemyError, OSError, TimeoutError) as error:
            raise StoreError(f"store unavailable: {_describe(error)}") from None


def _ident(name: str) -> str:
    if not name.replace("_", "").isalnum():
        raise StoreError(f"invalid schema name {name!r}")
    return name


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers proceed while another worker writes; busy_timeout waits on a writer's
    # lock instead of failing at once.
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=5000")
        cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()
