"""Whole GraphQL responses, cached for anonymous callers when the cache hints allow it.

A query whose hints make it cacheable by shared caches (``max-age > 0``, public), asked by an
anonymous caller, is answered once and the serialized answer kept in the cache store for its
``max-age``. The key is everything the answer depends on: the app, the SHA-256 of the
document, the operation name, the variables (canonical JSON) and the response's media type
(JSON, GraphQL-response JSON or CBOR). Nothing else in the request is keyed, and nothing else
can change the answer: the response is computed for the anonymous principal, from those parts
only, and responses with errors or stale values are never stored.

Compression happens afterwards, at the edge, so one entry serves every ``Accept-Encoding``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import orjson

from bff.cache import CachedResponse, CacheStore, cache_key, make_etag
from bff.graphql.cache_policy import CachePolicy

__all__ = ["ResponseCache"]


class ResponseCache:
    """One app's whole-response cache in the gateway's :class:`~bff.cache.CacheStore`."""

    def __init__(self, store: CacheStore, app: str) -> None:
        self.store = store
        self.namespace = f"gql:{app}"

    def key(
        self,
        document_hash: str,
        operation_name: str | None,
        variables: Mapping[str, Any] | None,
        media: str,
    ) -> str:
        """The entry's key (raises :class:`~bff.cache.InvalidCacheKey` for control
        characters in the operation name)."""
        canonical = orjson.dumps(variables or {}, option=orjson.OPT_SORT_KEYS)
        return cache_key(self.namespace, document_hash, operation_name or "", canonical, media)

    async def get(self, key: str) -> CachedResponse | None:
        entry = CachedResponse.from_bytes(await self.store.get(key))
        if entry is None or not entry.fresh():
            return None
        return entry

    async def put(
        self, key: str, status: int, body: bytes, media: str, policy: CachePolicy
    ) -> CachedResponse:
        """Store a serialized answer for ``policy.max_age`` seconds; returns the entry."""
        entry = CachedResponse(
            status,
            (("content-type", media), ("etag", make_etag(body))),
            body,
            time.time(),
            policy.max_age,
        )
        await self.store.set(key, entry.to_bytes(), policy.max_age)
        return entry
