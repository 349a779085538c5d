"""Single-flight: concurrent misses for one key share one computation.

When a hundred requests miss the same cache entry at once, one of them computes the value (an
upstream request, an execution) and the others wait for it. The computation runs as its own task:
a caller that goes away (client disconnect, timeout) does not cancel it for the others, and its
result still reaches the cache.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, TypeVar

__all__ = ["SingleFlight"]

T = TypeVar("T")


class SingleFlight:
    """``await flight.do(key, compute)``: at most one ``compute()`` per key at a time.

    Every caller gets the same result object (or the same exception): treat it as read-only.
    """

    def __init__(self) -> None:
        self._calls: dict[Hashable, asyncio.Task[Any]] = {}
        #: Computations started, and callers that joined one already running (metrics, tests).
        self.started = 0
        self.joined = 0

    def __len__(self) -> int:
        return len(self._calls)

    async def do(self, key: Hashable, compute: Callable[[], Awaitable[T]]) -> T:
        task = self._calls.get(key)
        if task is None:
            self.started += 1
            task = asyncio.ensure_future(compute())
            self._calls[key] = task
            task.add_done_callback(lambda t: self._done(key, t))
        else:
            self.joined += 1
        return await asyncio.shield(task)

    def _done(self, key: Hashable, task: asyncio.Task[Any]) -> None:
        if self._calls.get(key) is task:
            del self._calls[key]
        if not task.cancelled():
            task.exception()  # retrieved: no "never retrieved" warning when every caller left
