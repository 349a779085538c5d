"""Persistent storage (SQLite or PostgreSQL): API keys, admin-managed routes, registered
GraphQL operations."""

from bff.store.api_keys import ApiKeyRecord, ApiKeyRepository, DuplicatePrefix
from bff.store.errors import StoreConflict, StoreError
from bff.store.persisted_operations import PersistedOperationRecord, PersistedOperationRepository
from bff.store.routes import RouteRecord, RouteRepository
from bff.store.store import Store, engine_url

__all__ = [
    "ApiKeyRecord",
    "ApiKeyRepository",
    "DuplicatePrefix",
    "PersistedOperationRecord",
    "PersistedOperationRepository",
    "RouteRecord",
    "RouteRepository",
    "Store",
    "StoreConflict",
    "StoreError",
    "engine_url",
]
