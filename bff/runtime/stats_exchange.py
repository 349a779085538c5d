"""Per-route figures for the admin API, from this process or from all of them.

Each process keeps rolling windows of its own requests (:class:`bff.observability.RollingStats`).
:class:`LocalStats` answers from those. With ``state.backend: redis``, :class:`StatsExchange`
also publishes this process's summaries every few seconds (one key per process, expiring when the
process stops publishing) and answers with the sum over every live process: the admin API then
says the same whichever process a request lands on. Other processes' figures are at most
``interval`` seconds old; this process's own are current.

Keys share one Redis Cluster hash tag, so reading them all is one ``MGET``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from bff.observability import RollingStats, WindowSummary

if TYPE_CHECKING:
    from bff.config import GatewayConfig

__all__ = ["PERIODS", "LocalStats", "StatsExchange", "StatsSource", "stats_source_for"]

log = logging.getLogger("bff.runtime.stats")

PERIODS: dict[str, float] = {"1m": 60.0, "5m": 300.0, "15m": 900.0, "1h": 3600.0}
"""The periods the admin API answers for, by name."""


class StatsSource(Protocol):
    """Where the admin API's per-route figures come from."""

    async def summary(self, key: str, period: str) -> tuple[WindowSummary, int]:
        """The summary of ``key`` over ``period`` (a :data:`PERIODS` name) and how many
        processes it covers."""
        ...

    def start(self) -> None: ...

    async def aclose(self) -> None: ...


class LocalStats:
    """This process's figures only."""

    def __init__(self, rolling: RollingStats) -> None:
        self.rolling = rolling

    async def summary(self, key: str, period: str) -> tuple[WindowSummary, int]:
        return self.rolling.summary(key, PERIODS[period]), 1

    def start(self) -> None:
        pass

    async def aclose(self) -> None:
        pass


class StatsExchange(LocalStats):
    """This process's figures plus every other live process's, through Redis."""

    def __init__(
        self,
        rolling: RollingStats,
        redis_url: str,
        *,
        key_prefix: str = "bff:",
        interval: float = 5.0,
        connect_timeout: float = 0.5,
        socket_timeout: float = 0.5,
    ) -> None:
        super().__init__(rolling)
        import redis.asyncio as aioredis

        self.interval = interval
        self.instance = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        tag = "{" + key_prefix + "stats}"
        self._index = tag + ":instances"
        self._prefix = tag + ":"
        self._own = self._prefix + self.instance
        self._redis: Any = aioredis.Redis.from_url(
            redis_url, socket_connect_timeout=connect_timeout, socket_timeout=socket_timeout
        )
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._failing = False

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._publish_forever(), name="bff-stats-exchange"
            )

    def snapshot(self) -> bytes:
        """This process's summaries of every key and period, as published."""
        rolling = self.rolling
        keys = {
            key: {name: rolling.summary(key, span).to_dict() for name, span in PERIODS.items()}
            for key in rolling.tracked()
        }
        return orjson.dumps({"instance": self.instance, "keys": keys})

    async def publish(self) -> None:
        """Publish this process's summaries now."""
        ttl = max(1, round(self.interval * 3))
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.set(self._own, self.snapshot(), ex=ttl)
            pipe.sadd(self._index, self.instance)
            await pipe.execute()

    async def _publish_forever(self) -> None:
        while not self._stop.is_set():
            try:
                await self.publish()
                if self._failing:
                    log.info("publishing route figures to Redis again")
                self._failing = False
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not self._failing:
                    log.warning(
                        "cannot publish route figures to Redis (%s): the admin API of other "
                        "processes shows this one's figures late or not at all",
                        type(exc).__name__,
                    )
                self._failing = True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.interval)

    async def summary(self, key: str, period: str) -> tuple[WindowSummary, int]:
        own, _ = await super().summary(key, period)
        try:
            others = await self._others()
        except Exception as exc:
            log.warning("cannot read other processes' figures (%s)", type(exc).__name__)
            return own, 1
        parts = [own]
        for snapshot in others:
            data = snapshot.get("keys", {}).get(key, {}).get(period)
            if data is not None:
                with contextlib.suppress(KeyError, TypeError, ValueError):
                    parts.append(WindowSummary.from_dict(data))
        return WindowSummary.merge(parts), 1 + len(others)

    async def _others(self) -> list[dict[str, Any]]:
        members = [
            m.decode() if isinstance(m, bytes) else str(m)
            for m in await self._redis.smembers(self._index)
        ]
        members = [m for m in members if m != self.instance]
        if not members:
            return []
        values = await self._redis.mget([self._prefix + m for m in members])
        gone = [m for m, v in zip(members, values, strict=True) if v is None]
        if gone:
            await self._redis.srem(self._index, *gone)  # stopped publishing: not live any more
        out = []
        for value in values:
            if value is not None:
                with contextlib.suppress(orjson.JSONDecodeError):
                    out.append(orjson.loads(value))
        return out

    async def aclose(self) -> None:
        """Stop publishing and withdraw this process's figures."""
        task, self._task = self._task, None
        self._stop.set()
        if task is not None:
            # A command cancelled half-way can leave the client stuck: let it finish instead.
            await asyncio.wait({task}, timeout=2.0)
            if not task.done():
                task.cancel()
                await asyncio.wait({task}, timeout=1.0)
        with contextlib.suppress(Exception):
            async with asyncio.timeout(1.0):
                await self._redis.delete(self._own)
                await self._redis.srem(self._index, self.instance)
        with contextlib.suppress(Exception):
            async with asyncio.timeout(1.0):
                await self._redis.aclose()


def stats_source_for(config: GatewayConfig, rolling: RollingStats) -> LocalStats:
    """Shared through Redis with ``state.backend: redis``, else this process's own."""
    state = config.state
    if state.backend == "redis" and state.redis_url:
        return StatsExchange(
            rolling,
            state.redis_url,
            key_prefix=state.key_prefix,
            connect_timeout=state.redis_connect_timeout,
            socket_timeout=state.redis_socket_timeout,
        )
    return LocalStats(rolling)
