"""Telling every gateway process that an API key changed, so caches drop it at once.

With ``state.backend: memory`` only this process hears of a change (:class:`LocalKeyEvents`);
other processes see it when their cache entry expires (``auth.api_keys.cache_ttl``). With
``state.backend: redis``, :class:`RedisKeyEvents` also publishes the key's prefix on a Redis
channel that every process subscribes to. If the subscription drops, the whole cache is cleared
on reconnection (a message may have been missed), and the TTL still bounds staleness meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Callable
from typing import Any, Protocol

__all__ = ["KeyEvents", "LocalKeyEvents", "RedisKeyEvents"]

log = logging.getLogger("bff.auth.keys")

OnChange = Callable[[str | None], None]
_PREFIX = re.compile(r"bff_[A-Za-z0-9_-]{8}")


class KeyEvents(Protocol):
    """Where key changes are announced."""

    def subscribe(self, on_change: OnChange) -> None:
        """Call ``on_change(prefix)`` (None: everything) for changes made anywhere."""

    async def publish(self, prefix: str) -> None:
        """Announce that the key with ``prefix`` changed."""

    def start(self) -> None:
        """Begin listening (for changes from other processes)."""

    async def aclose(self) -> None:
        """Stop listening and close connections."""


class LocalKeyEvents:
    """Changes reach the subscribers of this process only."""

    def __init__(self) -> None:
        self._listeners: list[OnChange] = []

    def subscribe(self, on_change: OnChange) -> None:
        self._listeners.append(on_change)

    async def publish(self, prefix: str) -> None:
        for listener in self._listeners:
            listener(prefix)

    def start(self) -> None:
        pass

    async def aclose(self) -> None:
        pass


class RedisKeyEvents(LocalKeyEvents):
    """Changes go to this process's subscribers at once and to others through Redis pub/sub."""

    def __init__(
        self,
        redis_url: str,
        *,
        channel: str = "bff:auth:api-keys",
        connect_timeout: float = 0.5,
        socket_timeout: float = 0.5,
    ) -> None:
        super().__init__()
        import redis.asyncio as aioredis

        self.channel = channel
        self._publisher: Any = aioredis.Redis.from_url(
            redis_url, socket_connect_timeout=connect_timeout, socket_timeout=socket_timeout
        )
        self._subscriber: Any = aioredis.Redis.from_url(
            redis_url, socket_connect_timeout=connect_timeout, socket_keepalive=True
        )
        self._task: asyncio.Task[None] | None = None
        self.subscribed = asyncio.Event()

    async def publish(self, prefix: str) -> None:
        await super().publish(prefix)
        try:
            await self._publisher.publish(self.channel, prefix)
        except Exception as exc:  # Redis down: other processes fall back on the TTL
            log.warning("could not publish an API key change to Redis: %s", type(exc).__name__)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._listen(), name="bff-api-key-events")

    def _notify(self, prefix: str | None) -> None:
        for listener in self._listeners:
            listener(prefix)

    async def _listen(self) -> None:
        backoff = 0.1
        while True:
            pubsub = self._subscriber.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                self._notify(None)  # changes made while we were not listening are unknown
                self.subscribed.set()
                backoff = 0.1
                async for message in pubsub.listen():
                    if message.get("type") != "message":
                        continue
                    data = message.get("data")
                    text = data.decode("ascii", "replace") if isinstance(data, bytes) else ""
                    self._notify(text if _PREFIX.fullmatch(text) else None)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.subscribed.clear()
                log.warning(
                    "API key change subscription lost (%s); retrying in %.1f s",
                    type(exc).__name__,
                    backoff,
                )
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for client in (self._publisher, self._subscriber):
            with contextlib.suppress(Exception):
                await client.aclose()
