"""Telling every gateway process that something in the store changed (admin-managed routes).

Without Redis a process learns of another's change by polling the store; with
``state.backend: redis`` the writer also publishes on a channel every process subscribes to, so
the others re-read at once. Pub/sub delivers at most once: a process that was not subscribed when
a message went out re-reads everything when it (re)subscribes, and a slow poll remains as a net.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from bff.pubsub import RedisChannel

if TYPE_CHECKING:
    from bff.config import GatewayConfig

__all__ = ["ChangeEvents", "LocalChangeEvents", "RedisChangeEvents", "change_events_for"]

log = logging.getLogger("bff.runtime")

OnChange = Callable[[], None]


class ChangeEvents(Protocol):
    """Where changes are announced to the other processes."""

    #: True while changes made elsewhere arrive as they happen (no need to poll often).
    live: bool

    def subscribe(self, on_change: OnChange) -> None:
        """Call ``on_change()`` when another process announces a change."""

    async def publish(self) -> None:
        """Announce a change (never raises: the others still poll)."""

    def start(self) -> None:
        """Begin listening."""

    async def aclose(self) -> None:
        """Stop listening and close connections."""


class LocalChangeEvents:
    """No channel: other processes find changes by polling the store."""

    live = False

    def subscribe(self, on_change: OnChange) -> None:
        pass

    async def publish(self) -> None:
        pass

    def start(self) -> None:
        pass

    async def aclose(self) -> None:
        pass


class RedisChangeEvents:
    """Changes announced on a Redis pub/sub channel."""

    def __init__(
        self,
        redis_url: str,
        channel: str,
        *,
        connect_timeout: float = 0.5,
        socket_timeout: float = 0.5,
    ) -> None:
        self.channel = channel
        self.live = False
        self._listeners: list[OnChange] = []
        self._channel = RedisChannel(
            redis_url,
            channel,
            on_message=lambda data: self._notify(),
            on_subscribed=self._on_subscribed,
            on_lost=self._on_lost,
            connect_timeout=connect_timeout,
            socket_timeout=socket_timeout,
        )
        #: Set while subscribed (tests wait on it).
        self.subscribed = self._channel.subscribed

    def subscribe(self, on_change: OnChange) -> None:
        self._listeners.append(on_change)

    async def publish(self) -> None:
        try:
            await self._channel.publish(b"changed")
        except Exception as exc:
            log.warning(
                "could not announce a change on Redis (%s): other processes see it when they "
                "next poll the store",
                type(exc).__name__,
            )

    def start(self) -> None:
        self._channel.start()

    def _notify(self) -> None:
        for listener in self._listeners:
            try:
                listener()
            except Exception:
                log.exception("change listener failed")

    def _on_subscribed(self) -> None:
        self.live = True
        self._notify()  # whatever was announced while we were not listening

    def _on_lost(self, error: BaseException) -> None:
        if self.live:
            log.warning(
                "change subscription on Redis lost (%s); polling the store until it is back",
                type(error).__name__,
            )
        self.live = False

    async def aclose(self) -> None:
        await self._channel.aclose()
        self.live = False


def change_events_for(config: GatewayConfig, topic: str) -> ChangeEvents:
    """Redis pub/sub on ``<state.key_prefix><topic>`` with ``state.backend: redis``; else none."""
    state = config.state
    if state.backend == "redis" and state.redis_url:
        return RedisChangeEvents(
            state.redis_url,
            state.key_prefix + topic,
            connect_timeout=state.redis_connect_timeout,
            socket_timeout=state.redis_socket_timeout,
        )
    return LocalChangeEvents()
