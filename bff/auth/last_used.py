"""``last_used`` of API keys, written in batches in the background, never on a request's path.

A request only sets ``pending[key_id] = now`` (a dictionary store); a background task writes
everything pending in one statement every ``interval`` seconds, and once more at shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping

from bff.store import StoreError

__all__ = ["LastUsedRecorder"]

log = logging.getLogger("bff.auth.keys")

_MAX_PENDING = 100_000


class LastUsedRecorder:
    """Collects key uses and flushes them with ``write(batch)``."""

    def __init__(
        self,
        write: Callable[[Mapping[str, float]], Awaitable[None]],
        *,
        interval: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._write = write
        self.interval = interval
        self._clock = clock
        self._pending: dict[str, float] = {}
        self._task: asyncio.Task[None] | None = None

    def touch(self, key_id: str) -> None:
        """Note that ``key_id`` was used now."""
        if len(self._pending) < _MAX_PENDING or key_id in self._pending:
            self._pending[key_id] = self._clock()

    @property
    def pending(self) -> dict[str, float]:
        return dict(self._pending)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="bff-api-key-last-used")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self.flush()

    async def flush(self) -> None:
        """Write what is pending now; on failure keep it for the next try."""
        if not self._pending:
            return
        batch, self._pending = self._pending, {}
        try:
            await self._write(batch)
        except StoreError as exc:
            log.warning("could not record API key use (%d keys): %s", len(batch), exc)
            for key_id, used in batch.items():
                if used > self._pending.get(key_id, 0.0):
                    self._pending[key_id] = used

    async def aclose(self) -> None:
        """Stop the background task and write what is left."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.flush()
