"""Persisted queries: a document sent as its SHA-256 instead of its text.

The protocol is the one Apollo clients speak: ``extensions.persistedQuery`` is
``{"version": 1, "sha256Hash": "<64 hex digits>"}``, the hash of the document's UTF-8 text. What
an app does with it depends on its ``persisted_queries`` setting:

- ``apq`` (automatic persisted queries): a hash alone runs the document registered under it, or
  answers ``PERSISTED_QUERY_NOT_FOUND`` (200, as Apollo Server does), upon which the client sends
  hash and text together; that request registers the text (once it has validated) in the cache
  store for ``graphql.apq_ttl`` seconds. A hash that is not the text's is refused (400).
- ``only`` (allow-listed operations): only operations registered with ``bff persisted add``
  run, sent by hash or in full; anything else is refused with ``PERSISTED_QUERY_NOT_ALLOWED``
  before it is even parsed. Registered operations were vetted by whoever registered them, so
  they skip the per-request depth and cost checks.
- ``off``: a hash alone is answered ``PERSISTED_QUERY_NOT_SUPPORTED`` (the client then sends the
  text); a text is run as if no hash came with it.

On ``apq`` apps, operations registered for the app are honoured (and vetted) as on ``only`` ones.
A hash that is not 64 hexadecimal digits, or a version other than 1, is a 400 everywhere.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from bff.errors import (
    BadRequest,
    PersistedQueryNotAllowed,
    PersistedQueryNotFound,
    PersistedQueryNotSupported,
)

if TYPE_CHECKING:
    from bff.cache import CacheStore
    from bff.graphql.operations import OperationCatalogue

__all__ = ["Mode", "PersistedQueries", "Resolved", "requested_hash", "sha256_hex"]

Mode = Literal["off", "apq", "only"]

_HASH = re.compile(r"[0-9a-fA-F]{64}")


def sha256_hex(text: str) -> str:
    """The hash clients send for a document: hex SHA-256 of its UTF-8 text."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def requested_hash(extensions: Mapping[str, Any] | None) -> str | None:
    """The (lower-case) ``sha256Hash`` of ``extensions.persistedQuery``; ``None`` without one.

    Raises :class:`BadRequest` for a malformed one.
    """
    if not extensions:
        return None
    persisted = extensions.get("persistedQuery")
    if persisted is None:
        return None
    if not isinstance(persisted, dict):
        raise BadRequest("'extensions.persistedQuery' must be an object")
    version = persisted.get("version")
    if version != 1 or isinstance(version, bool):
        raise BadRequest("Unsupported persisted query version")
    value = persisted.get("sha256Hash")
    if not isinstance(value, str) or not _HASH.fullmatch(value):
        raise BadRequest("'extensions.persistedQuery.sha256Hash' must be 64 hexadecimal characters")
    return value.lower()


@dataclass(frozen=True, slots=True)
class Resolved:
    """What to run: ``query``; ``vetted`` for a registered operation (no depth/cost checks);
    ``register``: the hash to store the text under once it validated (APQ)."""

    query: str
    hash: str | None = None
    vetted: bool = False
    register: str | None = None


class PersistedQueries:
    """One app's persisted-query handling (see the module docstring)."""

    def __init__(
        self,
        mode: Mode,
        *,
        app: str,
        store: CacheStore | None = None,
        catalogue: OperationCatalogue | None = None,
        ttl: float = 86_400.0,
    ) -> None:
        if mode == "apq" and store is None:
            raise ValueError("automatic persisted queries need a cache store")
        self.mode = mode
        self.app = app
        self.store = store
        self.catalogue = catalogue
        self.ttl = ttl

    def _apq_key(self, hash_: str) -> str:
        return f"apq:{self.app}:{hash_}"

    async def resolve(self, query: str, extensions: Mapping[str, Any] | None) -> Resolved:
        """The document a request stands for; raises ``PersistedQuery*`` or
        :class:`BadRequest` (no parsing happens here)."""
        if self.mode == "off":
            if query:
                return Resolved(query)
            if extensions and extensions.get("persistedQuery") is not None:
                raise PersistedQueryNotSupported()
            raise BadRequest("the request has no 'query'")
        wanted = requested_hash(extensions)
        catalogue = self.catalogue
        if not query:
            if wanted is None:
                raise BadRequest("the request has no 'query'")
            registered = catalogue.get(self.app, wanted) if catalogue is not None else None
            if registered is not None:
                return Resolved(registered.document, wanted, vetted=True)
            if self.mode == "only":
                raise PersistedQueryNotAllowed()
            assert self.store is not None
            stored = await self.store.get(self._apq_key(wanted))
            if stored is None:
                raise PersistedQueryNotFound()
            return Resolved(stored.decode("utf-8", "surrogatepass"), wanted)
        if self.mode == "apq" and wanted is None and not (catalogue and catalogue.has(self.app)):
            return Resolved(query)  # the common case: nothing to hash
        actual = sha256_hex(query)
        if wanted is not None and wanted != actual:
            raise BadRequest("provided sha does not match query")
        if catalogue is not None and catalogue.get(self.app, actual) is not None:
            return Resolved(query, actual, vetted=True)
        if self.mode == "only":
            raise PersistedQueryNotAllowed()
        return Resolved(query, actual, register=wanted)

    async def register(self, resolved: Resolved) -> None:
        """Store an APQ document that validated (``resolved.register`` is its hash)."""
        if resolved.register is not None and self.store is not None:
            await self.store.set(
                self._apq_key(resolved.register),
                resolved.query.encode("utf-8", "surrogatepass"),
                self.ttl,
            )
