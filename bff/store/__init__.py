"""Persistent storage (SQLite or PostgreSQL): API keys and admin-managed routes."""

from bff.store.api_keys import ApiKeyRecord, ApiKeyRepository, DuplicatePrefix
from bff.store.errors import StoreConflict, StoreError
from bff.store.routes import RouteRecord, RouteRepository
from bff.store.store import Store, engine_url

__all__ = [
    "ApiKeyRecord",
    "ApiKeyRepository",
    "DuplicatePrefix",
    "RouteRecord",
    "RouteRepository",
    "Store",
    "StoreConflict",
    "StoreError",
    "engine_url",
]
