"""A minimal Redis client for the rate limiter's hot path: one connection, pipelined.

The rate-limit store sends one pre-packed ``EVALSHA`` per decision. Through redis-py that costs
about 100 us of CPU (its pool's locks and events, a parser reading each line through a
``StreamReader``), far more than the round trip itself. :class:`RespClient` is an
:class:`asyncio.Protocol` over one connection instead: :meth:`RespClient.send` writes a packed
command and returns a future; Redis answers in order, so :meth:`data_received` parses RESP2
replies as they arrive and resolves the oldest waiting future. Concurrent decisions share the
connection (pipelining) rather than each taking a pooled one.

- **Replies**: integers, simple strings (bytes), bulk strings (bytes; ``$-1``: None), arrays
  (lists, nested; ``*-1``: None); a reply split across packets waits for the rest. An error reply
  raises :class:`~redis.exceptions.ResponseError` (``NOSCRIPT``:
  :class:`~redis.exceptions.NoScriptError`); an error inside an array is an element.
- **Connection**: opened on first use within ``connect_timeout``, with ``AUTH`` and ``SELECT``
  from the URL sent first; after a loss, the next :meth:`~RespClient.send` opens a new one. When
  the connection is lost or a reply cannot be parsed, every waiting future fails with
  :class:`~redis.exceptions.ConnectionError` and the connection is dropped (a stream out of step
  would hand replies to the wrong callers).
- **Cancellation**: a cancelled waiter keeps its place in the queue, and its reply is read and
  discarded, so the replies after it still reach their own callers.

No TLS: ``rediss://`` URLs are not handled here (:meth:`RespClient.supports`); the store keeps
redis-py for them. Writes are small and not flow-controlled: the transport buffers them.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from redis.asyncio import Redis
from redis.asyncio.connection import Connection, UnixDomainSocketConnection
from redis.exceptions import (
    AuthenticationError,
    NoScriptError,
    RedisError,
    ResponseError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

__all__ = ["RespClient", "bulk", "pack"]

_SCHEMES = ("redis", "unix")


def bulk(value: bytes) -> bytes:
    """``value`` as a RESP bulk string."""
    return b"$%d\r\n%s\r\n" % (len(value), value)


def pack(*args: bytes) -> bytes:
    """``args`` as one command in Redis's wire format (an array of bulk strings)."""
    return b"*%d\r\n" % len(args) + b"".join(bulk(arg) for arg in args)


class _Incomplete(Exception):
    """The buffer ends inside a reply: wait for more data."""


_INCOMPLETE = _Incomplete()


def _error(message: str) -> RedisError:
    """The exception for an error reply (the same classes redis-py raises)."""
    if message.startswith("NOSCRIPT"):
        return NoScriptError(message)
    if message.startswith(("NOAUTH", "WRONGPASS")):
        return AuthenticationError(message)
    return ResponseError(message)


def _parse(buf: bytes, pos: int) -> tuple[Any, int]:
    """The reply starting at ``buf[pos]`` and the position after it. Raises
    :class:`_Incomplete` when it is not all there yet, ValueError when it is not RESP."""
    end = buf.find(b"\r\n", pos)
    if end < 0:
        raise _INCOMPLETE
    kind = buf[pos]
    if kind == 58:  # ':'
        return int(buf[pos + 1 : end]), end + 2
    if kind == 42:  # '*'
        n = int(buf[pos + 1 : end])
        pos = end + 2
        if n < 0:
            return None, pos
        items = []
        for _ in range(n):
            item, pos = _parse(buf, pos)
            items.append(item)
        return items, pos
    if kind == 36:  # '$'
        n = int(buf[pos + 1 : end])
        if n < 0:
            return None, end + 2
        start = end + 2
        stop = start + n
        if len(buf) < stop + 2:
            raise _INCOMPLETE
        if buf[stop : stop + 2] != b"\r\n":
            raise ValueError("bulk string not followed by CRLF")
        return buf[start:stop], stop + 2
    if kind == 43:  # '+'
        return buf[pos + 1 : end], end + 2
    if kind == 45:  # '-'
        return _error(buf[pos + 1 : end].decode("utf-8", "replace")), end + 2
    raise ValueError(f"unknown reply type {chr(kind)!r}")


class _Protocol(asyncio.Protocol):
    """One connection: writes commands, parses replies, resolves waiters in order."""

    def __init__(self) -> None:
        self.transport: Any = None  # uvloop's transports are not asyncio.Transport instances
        self.open = False
        self._waiters: deque[asyncio.Future[Any]] = deque()
        self._buffer = b""
        self._loop = asyncio.get_running_loop()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.open = True

    def send(self, command: bytes) -> asyncio.Future[Any]:
        waiter = self._loop.create_future()
        self._waiters.append(waiter)
        self.transport.write(command)
        return waiter

    def data_received(self, data: bytes) -> None:
        buf = self._buffer + data if self._buffer else data
        size, pos = len(buf), 0
        waiters = self._waiters
        while pos < size:
            try:
                reply, pos_after = _parse(buf, pos)
            except _Incomplete:
                break
            except (ValueError, IndexError) as exc:
                self.drop(RedisConnectionError(f"Redis protocol error: {exc}"))
                return
            if not waiters:
                self.drop(RedisConnectionError("Redis protocol error: a reply nobody asked for"))
                return
            pos = pos_after
            waiter = waiters.popleft()
            if waiter.done():  # cancelled: its reply is read and dropped
                continue
            if isinstance(reply, RedisError):
                waiter.set_exception(reply)
            else:
                waiter.set_result(reply)
        self._buffer = buf[pos:] if pos < size else b""

    def connection_lost(self, exc: Exception | None) -> None:
        reason = f": {exc}" if exc else ""
        self._fail(RedisConnectionError(f"Connection closed by Redis{reason}"))

    def drop(self, exc: Exception) -> None:
        """Fail every waiter with ``exc`` and close the connection."""
        self._fail(exc)
        if self.transport is not None:
            self.transport.abort()

    def _fail(self, exc: Exception) -> None:
        self.open = False
        self._buffer = b""
        waiters, self._waiters = self._waiters, deque()
        for waiter in waiters:
            if not waiter.done():
                waiter.set_exception(exc)


class RespClient:
    """One pipelined connection to Redis (see the module docstring)."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 6379,
        *,
        path: str | None = None,
        db: int = 0,
        username: str | None = None,
        password: str | None = None,
        connect_timeout: float | None = 0.5,
    ) -> None:
        self.host, self.port, self.path = host, port, path
        self.db, self.username, self.password = db, username, password
        self.connect_timeout = connect_timeout
        self._protocol: _Protocol | None = None
        self._lock: asyncio.Lock | None = None

    @staticmethod
    def supports(url: str) -> bool:
        """True for the URLs this client handles (``redis://``, ``unix://``; not TLS)."""
        return urlsplit(url).scheme in _SCHEMES

    @classmethod
    def from_url(cls, url: str, *, connect_timeout: float | None = 0.5) -> RespClient:
        """A client for ``redis://[[user]:password@]host[:port][/db]`` or
        ``unix://[[user]:password@]/path[?db=n]``."""
        parts = urlsplit(url)
        if parts.scheme not in _SCHEMES:
            raise ValueError(f"unsupported Redis URL scheme: {parts.scheme!r}")
        query = parse_qs(parts.query)
        db = int(query["db"][0]) if "db" in query else 0
        if parts.scheme == "redis" and parts.path.strip("/"):
            db = int(parts.path.strip("/"))
        return cls(
            parts.hostname or "127.0.0.1",
            parts.port or 6379,
            path=unquote(parts.path) if parts.scheme == "unix" else None,
            db=db,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password is not None else None,
            connect_timeout=connect_timeout,
        )

    @classmethod
    def like(cls, client: Redis) -> RespClient | None:
        """A client for the same server and database as redis-py's ``client``; None when that
        one connects in a way this one does not (TLS, a credential provider)."""
        pool = client.connection_pool
        kwargs = pool.connection_kwargs
        if kwargs.get("credential_provider") is not None:
            return None
        common: dict[str, Any] = {
            "db": int(kwargs.get("db") or 0),
            "username": kwargs.get("username"),
            "password": kwargs.get("password"),
            "connect_timeout": kwargs.get("socket_connect_timeout"),
        }
        if pool.connection_class is Connection:
            return cls(kwargs.get("host", "127.0.0.1"), int(kwargs.get("port", 6379)), **common)
        if pool.connection_class is UnixDomainSocketConnection:
            return cls(path=kwargs["path"], **common)
        return None

    def send(self, command: bytes) -> Awaitable[Any]:
        """Write ``command`` (packed, see :func:`pack`) and return what awaits its reply.

        On an open connection that is a plain future (no coroutine is created); otherwise the
        connection is opened first. Raises the exceptions of the module docstring."""
        protocol = self._protocol
        if protocol is not None and protocol.open:
            return protocol.send(command)
        return self._connect_and_send(command)

    async def _connect_and_send(self, command: bytes) -> Any:
        protocol = await self._connected()
        return await protocol.send(command)

    async def _connected(self) -> _Protocol:
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:  # concurrent first calls share one connection
            protocol = self._protocol
            if protocol is None or not protocol.open:
                protocol = self._protocol = await self._open()
            return protocol

    async def _open(self) -> _Protocol:
        loop = asyncio.get_running_loop()
        where = self.path or f"{self.host}:{self.port}"
        protocol: _Protocol | None = None
        try:
            async with asyncio.timeout(self.connect_timeout):
                if self.path is not None:
                    _, protocol = await loop.create_unix_connection(_Protocol, self.path)
                else:
                    _, protocol = await loop.create_connection(_Protocol, self.host, self.port)
                await self._handshake(protocol)
        except TimeoutError as exc:
            if protocol is not None:
                protocol.drop(RedisConnectionError("connect timed out"))
            raise RedisTimeoutError(f"Timeout connecting to Redis at {where}") from exc
        except OSError as exc:
            raise RedisConnectionError(f"Error connecting to Redis at {where}: {exc}") from exc
        except BaseException:
            if protocol is not None:
                protocol.drop(RedisConnectionError("connect failed"))
            raise
        return protocol

    async def _handshake(self, protocol: _Protocol) -> None:
        """``AUTH`` and ``SELECT`` before anything else; pipelined, so one round trip."""
        commands: list[tuple[bytes, type[RedisConnectionError]]] = []
        if self.password is not None:
            credentials = (self.username, self.password) if self.username else (self.password,)
            auth = pack(b"AUTH", *(c.encode() for c in credentials))
            commands.append((auth, AuthenticationError))
        if self.db:
            commands.append((pack(b"SELECT", b"%d" % self.db), RedisConnectionError))
        if not commands:
            return
        waiters = [protocol.send(command) for command, _ in commands]
        results = await asyncio.gather(*waiters, return_exceptions=True)
        for (_, error), result in zip(commands, results, strict=True):
            if isinstance(result, RedisConnectionError):
                raise result
            if isinstance(result, BaseException):
                # A refused AUTH or SELECT: this connection cannot serve the store.
                raise error(f"Redis refused the connection setup: {result}") from result

    def disconnect(self) -> None:
        """Drop the connection now (waiters fail); the next :meth:`send` opens a new one."""
        protocol, self._protocol = self._protocol, None
        if protocol is not None:
            protocol.drop(RedisConnectionError("connection dropped by the client"))

    async def aclose(self) -> None:
        """Close the connection (waiters fail)."""
        self.disconnect()
