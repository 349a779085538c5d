"""First come, first served admission to a connection pool."""

from __future__ import annotations

import asyncio

import httpx

__all__ = ["FairSlots"]


class FairSlots:
    """At most ``limit`` requests hold a connection at once; the others wait in arrival order.

    A pool that hands a freed connection to the newest waiter (aiohttp's connector does) lets
    some requests starve until they time out under more concurrent callers than connections
    (docs/performance.md); a FIFO semaphore in front admits them in turn. Waiting is bounded by
    the pool timeout: past it, :class:`httpx.PoolTimeout`.
    """

    __slots__ = ("_semaphore", "held")

    def __init__(self, limit: int) -> None:
        self._semaphore = asyncio.Semaphore(limit)
        #: Slots taken now.
        self.held = 0

    async def acquire(self, timeout: float | None) -> None:
        """Take a slot, waiting at most ``timeout`` seconds for one."""
        semaphore = self._semaphore
        if not semaphore.locked():
            await semaphore.acquire()
        else:
            try:
                async with asyncio.timeout(timeout):
                    await semaphore.acquire()
            except TimeoutError:
                raise httpx.PoolTimeout("no free connection in the pool") from None
        self.held += 1

    def release(self) -> None:
        """Give a slot back."""
        self.held -= 1
        self._semaphore.release()
