"""Caching shared by the whole gateway: one key -> bytes store per process, and its helpers.

- :class:`CacheStore`: the interface (``get``/``get_many``/``set``/``set_many``/``delete``,
  entries with a TTL), built once from ``state:`` by :func:`build_cache_store`:
  :class:`MemoryCacheStore` (LRU bounded in bytes) or :class:`RedisCacheStore`;
- :func:`cache_key`: keys from untrusted parts (hashed; control characters refused);
- :class:`SingleFlight`: concurrent misses for one key make one computation;
- :class:`CachedResponse`: a whole HTTP response as stored bytes, with its age;
- :func:`make_etag`, :func:`parse_if_none_match`, :func:`none_match`: validators.

Users: the GraphQL apps (whole responses, persisted queries, loader values) and the REST
response cache. See docs/caching.md.
"""

from bff.cache.entry import CachedResponse
from bff.cache.etag import ANY, make_etag, none_match, parse_if_none_match
from bff.cache.keys import InvalidCacheKey, cache_key, check_key
from bff.cache.memory import MemoryCacheStore
from bff.cache.redis_store import RedisCacheStore
from bff.cache.single_flight import SingleFlight
from bff.cache.store import CacheStore, build_cache_store

__all__ = [
    "ANY",
    "CacheStore",
    "CachedResponse",
    "InvalidCacheKey",
    "MemoryCacheStore",
    "RedisCacheStore",
    "SingleFlight",
    "build_cache_store",
    "cache_key",
    "check_key",
    "make_etag",
    "none_match",
    "parse_if_none_match",
]
