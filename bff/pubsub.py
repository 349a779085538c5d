"""One Redis pub/sub channel shared by the gateway's processes, kept subscribed through outages.

Used to announce changes (API keys, admin-managed routes) so that every process drops or
re-reads what it holds at once. Pub/sub delivers at most once, so whoever listens is told each
time the subscription is (re)made: anything published meanwhile is unknown and must be assumed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

__all__ = ["RedisChannel"]

log = logging.getLogger("bff.pubsub")

_FIRST_BACKOFF = 0.1
_MAX_BACKOFF = 5.0


class RedisChannel:
    """Publish on ``channel``, and once :meth:`start`-ed, listen to it in a background task.

    ``on_subscribed()`` runs each time the subscription is made (first time and after every
    outage), ``on_message(data)`` for each message, ``on_lost(error)`` when the subscription
    drops (it is retried with exponential backoff, 0.1 s up to 5 s). A callback that raises is
    logged and does not end the subscription.
    """

    def __init__(
        self,
        redis_url: str,
        channel: str,
        *,
        on_message: Callable[[bytes], None],
        on_subscribed: Callable[[], None] = lambda: None,
        on_lost: Callable[[BaseException], None] = lambda error: None,
        connect_timeout: float = 0.5,
        socket_timeout: float = 0.5,
    ) -> None:
        import redis.asyncio as aioredis

        self.channel = channel
        self._on_message = on_message
        self._on_subscribed = on_subscribed
        self._on_lost = on_lost
        # Two clients: a publish must not wait behind a blocking subscription read, and the
        # subscriber has no read timeout (it waits for messages indefinitely).
        self.publisher: Any = aioredis.Redis.from_url(
            redis_url, socket_connect_timeout=connect_timeout, socket_timeout=socket_timeout
        )
        self._subscriber: Any = aioredis.Redis.from_url(
            redis_url, socket_connect_timeout=connect_timeout, socket_keepalive=True
        )
        self._task: asyncio.Task[None] | None = None
        #: Set while subscribed (tests wait on it).
        self.subscribed = asyncio.Event()

    async def publish(self, data: bytes | str) -> None:
        """Publish ``data``; raises what the Redis client raises when Redis is unreachable."""
        await self.publisher.publish(self.channel, data)

    def start(self) -> None:
        """Start the background subscription (in the running event loop)."""
        if self._task is None:
            self._task = asyncio.create_task(self._listen(), name=f"bff-pubsub-{self.channel}")

    def _call(self, callback: Callable[..., None], *args: Any) -> None:
        try:
            callback(*args)
        except Exception:
            log.exception("listener of channel %s failed", self.channel)

    async def _listen(self) -> None:
        backoff = _FIRST_BACKOFF
        while True:
            pubsub = self._subscriber.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                self.subscribed.set()
                self._call(self._on_subscribed)
                backoff = _FIRST_BACKOFF
                async for message in pubsub.listen():
                    if message.get("type") == "message":
                        data = message.get("data")
                        self._call(self._on_message, data if isinstance(data, bytes) else b"")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.subscribed.clear()
                self._call(self._on_lost, exc)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, _MAX_BACKOFF)

    async def aclose(self) -> None:
        """Stop listening and close both connections."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.subscribed.clear()
        for client in (self.publisher, self._subscriber):
            with contextlib.suppress(Exception):
                async with asyncio.timeout(1.0):
                    await client.aclose()
