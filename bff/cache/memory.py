"""The in-process store: an LRU bounded in bytes, entries expiring after their TTL.

Correct for one process (``state.backend: memory``). Memory stays within ``max_bytes`` (keys and
values, plus a fixed allowance per entry): when a new entry does not fit, the least recently used
ones go first. An entry larger than an eighth of the bound is not kept at all, so one huge
response cannot flush everything else.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence

from bff.cache.keys import check_key
from bff.cache.store import CacheStore

__all__ = ["MemoryCacheStore"]

ENTRY_OVERHEAD = 96
"""Bytes counted per entry on top of its key and value (the dict slot, the tuple, the ints)."""


class MemoryCacheStore(CacheStore):
    """Key -> bytes in this process (see the module docstring). ``clock``: monotonic seconds."""

    def __init__(
        self, *, max_bytes: int = 64 * 1024 * 1024, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if max_bytes < 1:
            raise ValueError("max_bytes must be positive")
        self.max_bytes = max_bytes
        self.max_entry_bytes = max(1, max_bytes // 8)
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        #: Bytes currently counted against ``max_bytes``.
        self.size = 0
        #: Entries evicted to stay within the bound (not counting expiries).
        self.evictions = 0

    def __len__(self) -> int:
        return len(self._entries)

    async def get(self, key: str) -> bytes | None:
        return self._get(key, self._clock())

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        now = self._clock()
        return [self._get(k, now) for k in keys]

    def _get(self, key: str, now: float) -> bytes | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[0] <= now:
            self._remove(key)
            return None
        self._entries.move_to_end(key)
        return entry[1]

    async def set(self, key: str, value: bytes, ttl: float) -> None:
        self._set(key, value, ttl, self._clock())

    async def set_many(self, items: Mapping[str, bytes], ttl: float) -> None:
        now = self._clock()
        for key, value in items.items():
            self._set(key, value, ttl, now)

    def _set(self, key: str, value: bytes, ttl: float, now: float) -> None:
        check_key(key)
        self._remove(key)
        cost = len(key) + len(value) + ENTRY_OVERHEAD
        if ttl <= 0 or cost > self.max_entry_bytes:
            return
        self._entries[key] = (now + ttl, bytes(value))
        self.size += cost
        while self.size > self.max_bytes:
            self._evict_one(now)

    def _evict_one(self, now: float) -> None:
        oldest = next(iter(self._entries))
        if self._entries[oldest][0] > now:
            self.evictions += 1
        self._remove(oldest)

    async def delete(self, key: str) -> None:
        self._remove(key)

    def _remove(self, key: str) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self.size -= len(key) + len(entry[1]) + ENTRY_OVERHEAD

    def clear(self) -> None:
        """Forget every entry (tests and the admin use it)."""
        self._entries.clear()
        self.size = 0
