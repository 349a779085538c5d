"""Counters in Redis, shared by every gateway process, with a local fallback.

A decision is one ``EVALSHA`` of :data:`~bff.ratelimit.script.SCRIPT` per hash tag: the caller's
own counters (plan, app, route) share the tag ``{<caller>}``, so the usual decision is one
command, one round trip, atomic across all its windows, and stays in one slot of a Redis Cluster.
A global limit lives under its own tag; a decision that includes one sends one script per tag in
a single pipeline (still one round trip), and when one refuses while another allowed, what the
others charged is given back, so a refused request costs nothing anywhere.

The script is called by its SHA-1, known in advance; after ``NOSCRIPT`` (first use, or a
restarted Redis) it is loaded once and the call repeated.

Commands go through :class:`~bff.ratelimit.resp.RespClient`, one pipelined connection that
concurrent decisions share (redis-py's pool and parser cost far more CPU than the round trip);
for what that client does not handle (TLS) the store uses redis-py's client.

**Redis unreachable** (refused, reset, or silent past ``state.redis_socket_timeout``): with
``fail_open`` the process switches at once to its own :class:`~bff.ratelimit.memory.MemoryStore`,
counts every decision made there in :attr:`RedisStore.local_decisions`, logs the outage once (and
a reminder once per ``log_interval``), and pings Redis in the background every
``probe_interval`` until it answers, then goes back. Requests never wait on a Redis known to be
down. Without ``fail_open`` the decision raises :class:`~bff.errors.ServiceUnavailable` (503).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import NoScriptError, RedisError, ResponseError

from bff.errors import ServiceUnavailable
from bff.ratelimit.algorithms import Algorithm
from bff.ratelimit.decision import Decision, Tightest
from bff.ratelimit.memory import MemoryStore
from bff.ratelimit.resp import RespClient, bulk, pack
from bff.ratelimit.script import SCRIPT, SCRIPT_SHA
from bff.ratelimit.store import Batch, CounterSet

__all__ = ["RedisStore"]

log = logging.getLogger("bff.ratelimit")

_ALGORITHM = {"token_bucket": b"tb", "sliding_window": b"sw"}


_EVALSHA = bulk(b"EVALSHA") + bulk(SCRIPT_SHA.encode())
_SCRIPT_LOAD = pack(b"SCRIPT", b"LOAD", SCRIPT.encode())
_PING = pack(b"PING")
_CHARGE, _PEEK = b"c", b"p"
_UNREACHABLE = (RedisError, OSError, TimeoutError)


class RedisStore:
    """Rate-limit counters in Redis (see the module docstring).

    ``clock``: when given, the decision time comes from it rather than from Redis's ``TIME``
    (tests use it to replay a sequence through both stores). ``resp``: the connection the
    decisions use; by default one to ``client``'s server and database (None when ``client``
    connects in a way :class:`RespClient` does not: then ``client`` itself is used).
    """

    def __init__(
        self,
        client: Redis,
        *,
        algorithm: Algorithm = "token_bucket",
        fallback: MemoryStore | None = None,
        fail_open: bool = True,
        timeout: float = 0.5,
        probe_interval: float = 1.0,
        log_interval: float = 60.0,
        clock: Any = None,
        resp: RespClient | None = None,
    ) -> None:
        self.client = client
        self.resp = resp if resp is not None else RespClient.like(client)
        self.algorithm: Algorithm = algorithm
        self.fallback = fallback or MemoryStore(algorithm)
        self.fail_open = fail_open
        self.timeout = timeout
        self.probe_interval = probe_interval
        self.log_interval = log_interval
        self._clock = clock
        self._mode = _ALGORITHM[algorithm]
        #: Decisions made by the local fallback because Redis was unreachable (a metric).
        self.local_decisions = 0
        #: Times Redis was found unreachable (each starts a fallback period).
        self.outages = 0
        self.available = True
        self._next_probe = 0.0
        self._next_log = 0.0
        self._probe: asyncio.Task[None] | None = None
        self._tails: dict[CounterSet, bytes] = {}

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        connect_timeout: float = 0.5,
        socket_timeout: float = 0.5,
        **kwargs: Any,
    ) -> RedisStore:
        """A store on new clients for ``url``: short timeouts and no retries, since a slow
        Redis must not hold requests (``fail_open`` answers instead)."""
        resp = None
        if RespClient.supports(url):
            resp = RespClient.from_url(url, connect_timeout=connect_timeout)
        client = Redis.from_url(
            url,
            socket_connect_timeout=connect_timeout,
            # Every call is bounded by the store's own asyncio.timeout(socket_timeout); one
            # inside the client too would cost two more timers per decision.
            socket_timeout=None,
            retry=Retry(NoBackoff(), 0),
            health_check_interval=0,
        )
        return cls(client, timeout=socket_timeout, resp=resp, **kwargs)

    # -- deciding --------------------------------------------------------------------------

    async def decide(self, batches: Sequence[Batch], cost: int, *, charge: bool = True) -> Decision:
        if not self.available:
            self._maybe_probe()
            return await self._locally(batches, cost, charge)
        now = b"" if self._clock is None else repr(float(self._clock())).encode()
        try:
            async with asyncio.timeout(self.timeout):
                if len(batches) == 1:
                    keys, counter_set = batches[0]
                    mode = _CHARGE if charge else _PEEK
                    command = self._packed(keys, counter_set, now, b"%d" % cost, mode)
                    reply = await self._evalsha_packed(command)
                    return Decision(reply[0] == 1, reply[1], reply[2], reply[3], reply[4])
                return await self._decide_many(batches, cost, charge, now)
        except _UNREACHABLE as exc:
            self._went_down(exc)
            return await self._locally(batches, cost, charge)

    def _packed(
        self, keys: Sequence[str], counter_set: CounterSet, now: bytes, cost: bytes, mode: bytes
    ) -> bytes:
        """The ``EVALSHA`` of one decision in Redis's wire format. What does not change
        between requests (the script, the windows) is encoded once per counter set."""
        tail = self._tails.get(counter_set)
        if tail is None:
            tail = self._tails[counter_set] = b"".join(
                bulk(a) for a in (self._mode, *counter_set.argv)
            )
        parts = [
            b"*%d\r\n" % (7 + len(keys) + len(counter_set.argv)),
            _EVALSHA,
            bulk(b"%d" % len(keys)),
        ]
        parts.extend(bulk(key.encode()) for key in keys)
        parts += (bulk(now), bulk(cost), bulk(mode), tail)
        return b"".join(parts)

    async def _evalsha_packed(self, command: bytes) -> Any:
        """Send one packed ``EVALSHA`` and read its reply. After ``NOSCRIPT`` (first use, a
        restarted Redis) the script is loaded and the call made again."""
        resp = self.resp
        if resp is None:
            return (await self._send_all([command]))[0]
        try:  # the usual path: no list, no gather
            return await resp.send(command)
        except NoScriptError:
            pass
        await resp.send(_SCRIPT_LOAD)
        return await resp.send(command)

    async def _decide_many(
        self, batches: Sequence[Batch], cost: int, charge: bool, now: bytes
    ) -> Decision:
        mode = _CHARGE if charge else _PEEK
        calls = [
            (keys, (now, b"%d" % cost, mode, self._mode, *counter_set.argv))
            for keys, counter_set in batches
        ]
        replies = await self._pipeline(calls)
        tightest = Tightest()
        for reply in replies:
            tightest.add(reply[0] == 1, reply[1], reply[2], reply[3], reply[4])
        decision = tightest.decision()
        if charge and cost > 0 and not decision.allowed:
            given = [call for call, reply in zip(calls, replies, strict=True) if reply[0] == 1]
            if given:
                refunds = [(keys, (now, b"%d" % -cost, _CHARGE, *args[3:])) for keys, args in given]
                await self._pipeline(refunds)
        return decision

    async def _pipeline(self, calls: Sequence[tuple[Sequence[str], Sequence[Any]]]) -> list[Any]:
        """One ``EVALSHA`` per call, all sent before any reply is read (one round trip)."""
        commands = [
            pack(b"EVALSHA", SCRIPT_SHA.encode(), b"%d" % len(keys), *map(str.encode, keys), *args)
            for keys, args in calls
        ]
        return await self._send_all(commands)

    async def _send_all(self, commands: Sequence[bytes]) -> list[Any]:
        """Send packed ``commands`` at once and read their replies in order; after
        ``NOSCRIPT`` load the script and send them again. Raises the first error reply."""
        for attempt in (1, 2):
            replies = await self._exchange(commands)
            if not any(isinstance(r, NoScriptError) for r in replies):
                break
            if attempt == 1:
                await self._exchange([_SCRIPT_LOAD])
        for reply in replies:
            if isinstance(reply, BaseException):
                raise reply
        return replies

    async def _exchange(self, commands: Sequence[bytes]) -> list[Any]:
        """The replies to ``commands`` (an error reply as its exception), through the store's
        own client, or redis-py's pool where there is none (TLS): on one pooled connection,
        without redis-py packing the arguments again or its retry and event machinery."""
        resp = self.resp
        if resp is not None:
            return list(
                await asyncio.gather(*(resp.send(c) for c in commands), return_exceptions=True)
            )
        pool = self.client.connection_pool
        conn = await pool.get_connection()
        try:
            # redis-py closes the connection itself when a send or read fails or is cancelled
            # (the store's timeout), so it never goes back half-read.
            await conn.send_packed_command(b"".join(commands), check_health=False)
            replies: list[Any] = []
            for _ in commands:
                try:
                    replies.append(await conn.read_response())
                except ResponseError as exc:  # read whole: the connection stays in step
                    replies.append(exc)
            return replies
        finally:
            await pool.release(conn)

    async def _locally(self, batches: Sequence[Batch], cost: int, charge: bool) -> Decision:
        if not self.fail_open:
            raise ServiceUnavailable(
                "rate limiting is unavailable; try again shortly",
                retry_after=self.probe_interval,
            )
        self.local_decisions += 1
        now = time.monotonic()
        if now >= self._next_log:
            self._next_log = now + self.log_interval
            log.warning(
                "rate limits: Redis is still unreachable; %d decisions made with local "
                "limits so far",
                self.local_decisions,
            )
        return self.fallback.decide_now(batches, cost, charge=charge)

    def _went_down(self, exc: BaseException) -> None:
        if not self.available:
            return
        if self.resp is not None:
            # Whatever is still waiting on this connection waits on a Redis that is gone or
            # hung; the probe connects afresh.
            self.resp.disconnect()
        self.available = False
        self.outages += 1
        now = time.monotonic()
        self._next_probe = now + self.probe_interval
        self._next_log = now + self.log_interval
        reason = type(exc).__name__ if isinstance(exc, TimeoutError) else str(exc) or repr(exc)
        if self.fail_open:
            log.warning(
                "rate limits: Redis unreachable (%s); using this process's own limits until "
                "it answers again",
                reason,
            )
        else:
            log.error(
                "rate limits: Redis unreachable (%s); limited requests get 503 until it "
                "answers again (fail_open is false)",
                reason,
            )

    def _maybe_probe(self) -> None:
        if self._probe is not None:
            return
        now = time.monotonic()
        if now < self._next_probe:
            return
        self._next_probe = now + self.probe_interval
        self._probe = asyncio.get_running_loop().create_task(self._ping())

    async def _ping(self) -> None:
        try:
            async with asyncio.timeout(self.timeout):
                if self.resp is not None:
                    await self.resp.send(_PING)
                else:
                    await self.client.ping()
        except _UNREACHABLE:
            if self.resp is not None:
                self.resp.disconnect()  # a hung connection: the next probe connects afresh
            return
        except asyncio.CancelledError:
            raise
        except Exception:  # a probe must never kill the fallback
            log.exception("rate limits: Redis probe failed")
            return
        finally:
            self._probe = None
        self.available = True
        log.warning(
            "rate limits: Redis is reachable again; shared limits resume (%d decisions were "
            "made locally)",
            self.local_decisions,
        )

    async def aclose(self) -> None:
        if self._probe is not None:
            self._probe.cancel()
            self._probe = None
        await self.fallback.aclose()
        if self.resp is not None:
            await self.resp.aclose()
        try:
            await self.client.aclose()
        except Exception:  # closing a dead connection may fail; nothing to do about it
            log.debug("closing the Redis client failed", exc_info=True)
