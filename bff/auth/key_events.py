"""Telling every gateway process that an API key changed, so caches drop it at once.

With ``state.backend: memory`` only this process hears of a change (:class:`LocalKeyEvents`);
other processes see it when their cache entry expires (``auth.api_keys.cache_ttl``). With
``state.backend: redis``, :class:`RedisKeyEvents` also publishes the key's prefix on a Redis
channel that every process subscribes to. If the subscription drops, the whole cache is cleared
on reconnection (a message may have been missed), and the TTL still bounds staleness meanwhile.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Protocol

from bff.pubsub import RedisChannel

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
        self.channel = channel
        self._channel = RedisChannel(
            redis_url,
            channel,
            on_message=self._on_message,
            # Changes made while we were not listening are unknown: drop everything.
            on_subscribed=lambda: self._notify(None),
            on_lost=self._on_lost,
            connect_timeout=connect_timeout,
            socket_timeout=socket_timeout,
        )
        self._publisher = self._channel.publisher
        self.subscribed = self._channel.subscribed

    async def publish(self, prefix: str) -> None:
        await super().publish(prefix)
        try:
            await self._channel.publish(prefix)
        except Exception as exc:  # Redis down: other processes fall back on the TTL
            log.warning("could not publish an API key change to Redis: %s", type(exc).__name__)

    def start(self) -> None:
        self._channel.start()

    def _notify(self, prefix: str | None) -> None:
        for listener in self._listeners:
            listener(prefix)

    def _on_message(self, data: bytes) -> None:
        text = data.decode("ascii", "replace")
        self._notify(text if _PREFIX.fullmatch(text) else None)

    @staticmethod
    def _on_lost(error: BaseException) -> None:
        log.warning("API key change subscription lost (%s); retrying", type(error).__name__)

    async def aclose(self) -> None:
        await self._channel.aclose()
