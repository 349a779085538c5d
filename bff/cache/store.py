"""The cache store interface: an async key -> bytes map whose entries expire.

Every cache of the gateway (whole GraphQL responses, persisted queries, loader values, REST
responses) keeps its entries in one :class:`CacheStore`, built once per process from ``state:``
(:func:`build_cache_store`): in memory (:class:`~bff.cache.memory.MemoryCacheStore`, bounded in
bytes) or in Redis (:class:`~bff.cache.redis_store.RedisCacheStore`, shared by every process).

A cache is an optimization, so a store never fails a request: an unreachable Redis reads as a
miss and drops writes (and says so in the log). Keys are printable ASCII without spaces (see
:func:`~bff.cache.keys.cache_key`, which builds them from untrusted parts); values are bytes, so
what a caller stores must be serializable (JSON, CBOR, :class:`~bff.cache.entry.CachedResponse`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bff.config import StateConfig

__all__ = ["CacheStore", "build_cache_store"]


class CacheStore(ABC):
    """An async key -> bytes store with a time to live per entry.

    ``ttl`` is in seconds; an entry is gone (``get`` returns ``None``) once it has lived that
    long, and may be gone sooner (evicted to stay within the memory bound, or lost with Redis).
    A ``ttl`` of zero or less stores nothing.
    """

    @abstractmethod
    async def get(self, key: str) -> bytes | None:
        """The value under ``key``, or ``None`` (absent, expired or unreachable)."""

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        """The values under ``keys``, in order (one round trip on Redis)."""
        return [await self.get(k) for k in keys]

    @abstractmethod
    async def set(self, key: str, value: bytes, ttl: float) -> None:
        """Store ``value`` under ``key`` for ``ttl`` seconds (replacing any previous value)."""

    async def set_many(self, items: Mapping[str, bytes], ttl: float) -> None:
        """Store every pair of ``items`` for ``ttl`` seconds (one round trip on Redis)."""
        for key, value in items.items():
            await self.set(key, value, ttl)

    @abstractmethod
    async def delete(self, key: str) -> None:
        """Remove ``key`` (nothing happens when it is absent)."""

    async def aclose(self) -> None:  # noqa: B027 - a default: most stores hold nothing open
        """Release connections (called once, at shutdown)."""


def build_cache_store(state: StateConfig) -> CacheStore:
    """The store ``state:`` describes: memory (bounded by ``cache_max_bytes``) or Redis."""
    if state.backend == "redis":
        from bff.cache.redis_store import RedisCacheStore

        assert state.redis_url is not None  # the config validates it
        return RedisCacheStore.from_url(
            state.redis_url,
            key_prefix=state.key_prefix + "cache:",
            connect_timeout=state.redis_connect_timeout,
            socket_timeout=state.redis_socket_timeout,
        )
    from bff.cache.memory import MemoryCacheStore

    return MemoryCacheStore(max_bytes=state.cache_max_bytes)
