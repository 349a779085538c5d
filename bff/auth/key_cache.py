"""The in-process cache of API-key lookups, so requests do not wait on the store.

A lookup (by the key's public prefix) is kept for ``ttl`` seconds, unknown prefixes included.
A key in use is re-read in the background once half its ``ttl`` has passed, so a busy key never
waits on the store; only the first request of a key (or one idle for ``ttl``) does, and
concurrent requests for the same prefix share one query. A revocation reaches this cache through
:meth:`ApiKeyCache.invalidate` (same process, or Redis pub/sub from others); otherwise it takes
effect within ``ttl``: entries are never served past it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from cachetools import LRUCache

from bff.auth.claims import check_scopes, check_subject, check_tier
from bff.auth.principal import Principal
from bff.store import ApiKeyRecord, StoreError

__all__ = ["ApiKeyCache", "CachedKey"]

log = logging.getLogger("bff.auth.keys")

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class CachedKey:
    """A key record prepared for the hot path: parsed networks, a ready principal.

    ``problem`` is set when the stored record cannot make a safe principal (edited by hand in
    the database, say): such a key is refused.
    """

    record: ApiKeyRecord
    networks: tuple[IPNetwork, ...]
    principal: Principal
    problem: str | None = None

    @classmethod
    def of(cls, record: ApiKeyRecord) -> CachedKey:
        problem: str | None = None
        networks: tuple[IPNetwork, ...] = ()
        scopes: tuple[str, ...] = ()
        try:
            check_subject(record.id, "key id")
            scopes = check_scopes(record.scopes)
            check_tier(record.tier)
            networks = tuple(ipaddress.ip_network(c, strict=False) for c in record.allowed_ips)
        except ValueError as exc:
            problem = f"stored record is unusable: {exc}"
        principal = Principal(
            kind="api_key",
            subject=record.id,
            scopes=frozenset(scopes),
            tier=record.tier,
            claims={"key_id": record.id, "key_name": record.name, "owner": record.owner},
        )
        return cls(record, networks, principal, problem)

    def allows_ip(self, client_ip: str | None) -> bool:
        """True when the key has no allowlist or ``client_ip`` is inside it."""
        if not self.networks:
            return True
        if client_ip is None:
            return False
        try:
            address = ipaddress.ip_address(client_ip)
        except ValueError:
            return False
        return any(address in net for net in self.networks)


@dataclass(slots=True)
class _Entry:
    key: CachedKey | None
    loaded_at: float


class ApiKeyCache:
    """Prefix -> :class:`CachedKey` (or None for an unknown prefix), for ``ttl`` seconds."""

    def __init__(
        self,
        lookup: Callable[[str], Awaitable[ApiKeyRecord | None]],
        *,
        ttl: float = 2.0,
        maxsize: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._lookup = lookup
        self.ttl = ttl
        self._clock = clock
        self._entries: LRUCache[str, _Entry] = LRUCache(maxsize=maxsize)
        self._inflight: dict[str, asyncio.Future[CachedKey | None]] = {}
        self._background: set[asyncio.Future[CachedKey | None]] = set()
        self._generation = 0
        self.loads = 0

    async def get(self, prefix: str) -> CachedKey | None:
        """The key with this prefix; :class:`StoreError` if it must be read and cannot be."""
        entry = self._entries.get(prefix)
        if entry is not None:
            age = self._clock() - entry.loaded_at
            if age < self.ttl:
                if age >= self.ttl / 2 and prefix not in self._inflight:
                    self._refresh_in_background(prefix)
                return entry.key
        return await self._load(prefix)

    def invalidate(self, prefix: str | None = None) -> None:
        """Forget ``prefix`` (or everything); loads already running will not be cached."""
        self._generation += 1
        if prefix is None:
            self._entries.clear()
        else:
            self._entries.pop(prefix, None)

    def _load(self, prefix: str) -> asyncio.Future[CachedKey | None]:
        future = self._inflight.get(prefix)
        if future is None:
            future = asyncio.ensure_future(self._read(prefix))
            self._inflight[prefix] = future
            future.add_done_callback(lambda _f: self._inflight.pop(prefix, None))
        return asyncio.shield(future)

    async def _read(self, prefix: str) -> CachedKey | None:
        generation = self._generation
        started = self._clock()
        self.loads += 1
        record = await self._lookup(prefix)
        key = None if record is None else CachedKey.of(record)
        if self.ttl > 0 and generation == self._generation:
            self._entries[prefix] = _Entry(key, started)
        return key

    def _refresh_in_background(self, prefix: str) -> None:
        future = self._load(prefix)
        self._background.add(future)

        def done(f: asyncio.Future[CachedKey | None]) -> None:
            self._background.discard(f)
            if not f.cancelled() and isinstance(f.exception(), StoreError):
                log.warning("background refresh of API key %s failed: %s", prefix, f.exception())

        future.add_done_callback(done)

    async def aclose(self) -> None:
        """Cancel background refreshes."""
        for future in [*self._inflight.values(), *self._background]:
            future.cancel()
        self._inflight.clear()
        self._background.clear()
