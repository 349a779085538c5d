"""The shared store: entries in Redis with ``PX`` expiry, under the gateway's key prefix.

Every gateway process sees the same entries (``state.backend: redis``). Redis is an
optimization here, never a dependency of a request: a refused, reset or slow Redis (past
``state.redis_socket_timeout``) reads as a miss and drops the write, the outage is logged once,
and for ``retry_interval`` seconds the store does not even try, so requests never queue behind a
Redis known to be down.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from bff.cache.keys import check_key
from bff.cache.store import CacheStore

__all__ = ["RedisCacheStore"]

log = logging.getLogger("bff.cache")

_UNREACHABLE = (RedisError, OSError, TimeoutError)


class RedisCacheStore(CacheStore):
    """Key -> bytes in Redis (see the module docstring); keys get ``key_prefix`` in front."""

    def __init__(
        self,
        client: Redis,
        *,
        key_prefix: str = "bff:cache:",
        timeout: float = 0.5,
        retry_interval: float = 1.0,
    ) -> None:
        self.client = client
        self.key_prefix = key_prefix
        self.timeout = timeout
        self.retry_interval = retry_interval
        #: Operations answered without Redis because it was unreachable (a metric).
        self.failures = 0
        self._down_until = 0.0

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        key_prefix: str = "bff:cache:",
        connect_timeout: float = 0.5,
        socket_timeout: float = 0.5,
        **kwargs: Any,
    ) -> RedisCacheStore:
        """A store on a new client for ``url``, with short timeouts and no retries."""
        client = Redis.from_url(
            url,
            socket_connect_timeout=connect_timeout,
            socket_timeout=socket_timeout,
            retry=Retry(NoBackoff(), 0),
            health_check_interval=0,
        )
        return cls(client, key_prefix=key_prefix, timeout=socket_timeout, **kwargs)

    def _key(self, key: str) -> str:
        return self.key_prefix + check_key(key)

    @property
    def available(self) -> bool:
        """False while the store skips Redis after a failure."""
        return time.monotonic() >= self._down_until

    def _failed(self, error: BaseException) -> None:
        self.failures += 1
        if self.available:
            log.warning(
                "cache: Redis unreachable (%s); serving without the shared cache for %.0f s",
                type(error).__name__,
                self.retry_interval,
            )
        self._down_until = time.monotonic() + self.retry_interval

    async def get(self, key: str) -> bytes | None:
        (value,) = await self.get_many([key])
        return value

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        names = [self._key(k) for k in keys]
        if not names:
            return []
        if not self.available:
            self.failures += 1
            return [None] * len(names)
        try:
            async with asyncio.timeout(self.timeout):
                if len(names) == 1:
                    values = [await self.client.get(names[0])]
                else:
                    async with self.client.pipeline(transaction=False) as pipe:
                        for name in names:
                            pipe.get(name)
                        values = await pipe.execute()
        except _UNREACHABLE as error:
            self._failed(error)
            return [None] * len(names)
        return [v if isinstance(v, bytes) else None for v in values]

    async def set(self, key: str, value: bytes, ttl: float) -> None:
        await self.set_many({key: value}, ttl)

    async def set_many(self, items: Mapping[str, bytes], ttl: float) -> None:
        millis = int(ttl * 1000)
        if millis <= 0 or not items:
            return
        pairs = [(self._key(k), v) for k, v in items.items()]
        if not self.available:
            self.failures += 1
            return
        try:
            async with asyncio.timeout(self.timeout):
                if len(pairs) == 1:
                    await self.client.set(pairs[0][0], pairs[0][1], px=millis)
                else:
                    async with self.client.pipeline(transaction=False) as pipe:
                        for name, value in pairs:
                            pipe.set(name, value, px=millis)
                        await pipe.execute()
        except _UNREACHABLE as error:
            self._failed(error)

    async def delete(self, key: str) -> None:
        name = self._key(key)
        if not self.available:
            self.failures += 1
            return
        try:
            async with asyncio.timeout(self.timeout):
                await self.client.delete(name)
        except _UNREACHABLE as error:
            self._failed(error)

    async def aclose(self) -> None:
        await self.client.aclose()
