"""Readiness: may this process take traffic?

``/readyz`` answers 200 when

- the store answers a trivial query,
- Redis answers ``PING`` (when ``state.backend`` is ``redis``),
- every upstream has at least one target that may receive calls (healthy by its active
  checks, not ejected by passive health),

and 503 otherwise, with the reasons. Reasons name the failing part (``store``, ``redis``,
``upstream orders``), never an address. Checks run concurrently, each within
:data:`CHECK_TIMEOUT`; concurrent probes share one run, and a result is reused for
:data:`MAX_AGE` seconds, so a flood of probes costs the store and Redis nothing more.

An upstream's targets are only known to be down if something noticed: active health checks
(``health_check:``) or failed calls (``passive_health:``). Configure ``health_check`` on
upstreams for readiness to follow a stopped service while no traffic flows.

``/healthz`` stays trivial: it says the process answers, nothing more.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping
from typing import Any

__all__ = ["CHECK_TIMEOUT", "MAX_AGE", "Readiness"]

CHECK_TIMEOUT = 1.0
"""Seconds one check may take before it counts as failed."""
MAX_AGE = 1.0
"""Seconds a result is reused."""


class Readiness:
    """The readiness checks of one gateway process.

    ``store``: a :class:`~bff.store.Store` (or None); ``redis_url``: the shared state's Redis
    (or None); ``upstreams``: the upstreams by name (their ``targets`` are read).
    """

    def __init__(
        self,
        *,
        store: Any = None,
        redis_url: str | None = None,
        upstreams: Mapping[str, Any] | None = None,
        timeout: float = CHECK_TIMEOUT,
        max_age: float = MAX_AGE,
    ) -> None:
        self.store = store
        self.redis_url = redis_url
        self.upstreams = upstreams or {}
        self.timeout = timeout
        self.max_age = max_age
        self._redis: Any = None
        self._running: asyncio.Task[tuple[bool, dict[str, Any]]] | None = None
        self._last: tuple[bool, dict[str, Any]] | None = None
        self._last_at = 0.0

    async def check(self) -> tuple[bool, dict[str, Any]]:
        """``(ready, body)``: body is ``{"status", "checks": {part: "ok" | problem},
        "reasons": [...]}`` (``reasons`` only when not ready)."""
        if self._last is not None and time.monotonic() - self._last_at < self.max_age:
            return self._last
        task = self._running
        if task is None:
            task = self._running = asyncio.get_running_loop().create_task(self._run())
        try:
            return await asyncio.shield(task)
        finally:
            if self._running is task and task.done():
                self._running = None

    async def _run(self) -> tuple[bool, dict[str, Any]]:
        checks: dict[str, str] = {}
        probes: dict[str, Any] = {}
        if self.store is not None:
            probes["store"] = self._store()
        if self.redis_url is not None:
            probes["redis"] = self._ping_redis()
        results = await asyncio.gather(
            *(self._timed(probe) for probe in probes.values()), return_exceptions=False
        )
        checks.update(zip(probes, results, strict=True))
        for name, upstream in self.upstreams.items():
            checks[f"upstream {name}"] = _upstream_state(upstream)
        ready = all(v == "ok" for v in checks.values())
        body: dict[str, Any] = {"status": "ok" if ready else "unavailable", "checks": checks}
        if not ready:
            body["reasons"] = [
                f"{part}: {state}" for part, state in checks.items() if state != "ok"
            ]
        self._last, self._last_at = (ready, body), time.monotonic()
        return ready, body

    async def _timed(self, probe: Any) -> str:
        try:
            async with asyncio.timeout(self.timeout):
                return str(await probe)
        except TimeoutError:
            return "no answer in time"
        except Exception as exc:  # a check must answer, whatever went wrong
            return _problem(exc)

    async def _store(self) -> str:
        import sqlalchemy as sa

        if not self.store.is_open:
            return "not open"
        async with self.store.connect() as conn:
            await conn.execute(sa.text("SELECT 1"))
        return "ok"

    async def _ping_redis(self) -> str:
        if self._redis is None:
            from redis.asyncio import Redis
            from redis.backoff import NoBackoff
            from redis.retry import Retry

            self._redis = Redis.from_url(
                self.redis_url,  # type: ignore[arg-type]
                socket_connect_timeout=self.timeout,
                socket_timeout=self.timeout,
                retry=Retry(NoBackoff(), 0),
            )
        await self._redis.ping()
        return "ok"

    async def aclose(self) -> None:
        """Close the Redis connection (at shutdown)."""
        if self._running is not None:
            self._running.cancel()
            self._running = None
        if self._redis is not None:
            redis, self._redis = self._redis, None
            # Closing a dead connection may fail; there is nothing to do about it.
            with contextlib.suppress(Exception):
                await redis.aclose()


def _upstream_state(upstream: Any) -> str:
    targets = upstream.targets
    available = sum(1 for t in targets if t.available())
    if available:
        return "ok"
    return f"no healthy target (0 of {len(targets)} available)"


def _problem(exc: BaseException) -> str:
    # The kind of failure only: messages may carry addresses or credentials.
    kind = type(exc).__name__
    if "Connection" in kind or isinstance(exc, OSError):
        return "unreachable"
    if kind == "StoreError":
        return "unavailable"
    return f"failed ({kind})"
