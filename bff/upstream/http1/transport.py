"""The native transport: pooled HTTP/1.1 connections behind the httpx transport API.

One :class:`Http1Transport` serves one upstream (all its targets). Requests are admitted first
come, first served (:class:`~bff.upstream.slots.FairSlots`); each takes an idle keep-alive
connection to its origin (the most recently used, which is the least likely to have been closed
by the server) or opens one. A request that fails on a reused connection before any byte of
answer came back is sent once more on a fresh connection when it is idempotent and its body is
in memory: the server closed the idle connection as we wrote (the race every HTTP/1.1 client
has). Bytes travel verbatim: the request target is sent as given, bodies are never decoded.
"""

from __future__ import annotations

import asyncio
import re
import ssl
from collections.abc import AsyncIterable, AsyncIterator, Mapping, Sequence
from urllib.parse import urlsplit

import httpx

from bff.upstream.http1.connection import Http1Connection
from bff.upstream.responses import BufferedResponse, StreamedResponse
from bff.upstream.slots import FairSlots

__all__ = ["Http1Transport"]

Headers = Sequence[tuple[str, str]] | Sequence[tuple[bytes, bytes]]
Body = bytes | AsyncIterable[bytes] | None

_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_BAD_TARGET = re.compile(rb"[\x00-\x20\x7f]")
# RFC 9110 token characters: what a method or a header name may be made of. A space or a colon
# in a name would let "Content-Length : 5" past the framing headers we set ourselves, which a
# lenient server could read as a second Content-Length.
_TCHAR = b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_METHOD = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_COMMON_METHODS = frozenset({*_BODY_METHODS, "GET", "HEAD", "OPTIONS", "DELETE", "TRACE"})
# In-memory bodies up to this size are sent in one write with the head.
_JOIN_LIMIT = 16 * 1024


def _read_timeout() -> BaseException:
    return httpx.ReadTimeout("read timeout")


class _Origin:
    """``scheme://host:port``, parsed once."""

    __slots__ = ("host", "host_header", "key", "port", "tls")

    def __init__(self, origin: str) -> None:
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise httpx.UnsupportedProtocol(f"not an http(s) origin: {origin!r}")
        self.key = origin
        self.tls = parts.scheme == "https"
        self.host = parts.hostname
        self.port = parts.port or (443 if self.tls else 80)
        netloc = parts.netloc.rpartition("@")[2]
        default = ":443" if self.tls else ":80"
        self.host_header = netloc.removesuffix(default).encode("idna")


class Http1Transport(httpx.AsyncBaseTransport):
    """An HTTP/1.1 connection pool on asyncio protocols, with httptools parsing the answers.

    ``fetch`` (whole answer in memory) and ``open`` (answer streamed) are the gateway's own
    paths; ``handle_async_request`` makes it usable as any httpx transport. Timeouts come per
    call: ``connect``, ``read`` (the longest wait for the next bytes of the answer; a streamed
    request body still going out counts as activity, so a long upload is not cut short),
    ``write`` (the longest wait for the socket to take more of a streamed body) and ``pool``.
    """

    def __init__(
        self,
        *,
        max_connections: int = 100,
        max_keepalive_connections: int | None = None,
        keepalive_expiry: float = 30.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._slots = FairSlots(max_connections)
        self._max_idle = (
            max_connections if max_keepalive_connections is None else max_keepalive_connections
        )
        self._keepalive = keepalive_expiry
        self._idle: dict[str, list[Http1Connection]] = {}
        self._idle_count = 0
        self._origins: dict[str, _Origin] = {}
        self._ssl_context = ssl_context
        self._max_connections = max_connections
        self._sweeper: asyncio.TimerHandle | None = None
        self._closed = False

    # -- the two paths ----------------------------------------------------------------------

    async def fetch(
        self,
        method: str,
        origin: str,
        target: bytes,
        headers: Headers,
        body: bytes | None,
        timeouts: Mapping[str, float | None],
    ) -> httpx.Response:
        """Send a request and read the whole answer into a :class:`BufferedResponse`."""
        await self._slots.acquire(timeouts.get("pool"))
        conn: Http1Connection | None = None
        try:
            conn = await self._exchange(method, origin, target, headers, body, timeouts)
            read = timeouts.get("read")
            parts: list[bytes] = []
            while not conn.complete:
                if conn.buffered:  # taking it keeps a large body flowing (see HIGH_WATER)
                    parts.append(conn.take_body())
                await conn.wait(read, _read_timeout)
            parts.append(conn.take_body())
            content = parts[0] if len(parts) == 1 else b"".join(parts)
            return BufferedResponse(conn.status, conn.headers, content)
        finally:
            self._release(conn)

    async def open(
        self,
        method: str,
        origin: str,
        target: bytes,
        headers: Headers,
        body: Body,
        timeouts: Mapping[str, float | None],
    ) -> httpx.Response:
        """Send a request and return once the answer's head is in, as a
        :class:`StreamedResponse` whose ``stream`` yields the body as it arrives; closing the
        stream returns the connection to the pool."""
        await self._slots.acquire(timeouts.get("pool"))
        try:
            conn = await self._exchange(method, origin, target, headers, body, timeouts)
        except BaseException:
            self._release(None)
            raise
        stream = _BodyStream(self, conn, timeouts.get("read"))
        return StreamedResponse(conn.status, conn.headers, stream)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        stream = request.stream
        body: Body
        if isinstance(stream, httpx.ByteStream):
            body = request.content or None
        elif isinstance(stream, httpx.AsyncByteStream):
            body = stream
        else:
            raise TypeError("synchronous request bodies are not supported")
        target = request.extensions.get("target") or url.raw_path
        response = await self.open(
            request.method,
            f"{url.scheme}://{url.netloc.decode('ascii')}",
            target,
            request.headers.raw,
            body,
            request.extensions.get("timeout") or {},
        )
        response.request = request
        return response

    async def aclose(self) -> None:
        """Close the idle connections; those in use are closed when their exchange ends."""
        self._closed = True
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for idle in self._idle.values():
            for conn in idle:
                conn.close()
        self._idle.clear()
        self._idle_count = 0

    # -- one exchange ---------------------------------------------------------------------------

    async def _exchange(
        self,
        method: str,
        origin: str,
        target: bytes,
        headers: Headers,
        body: Body,
        timeouts: Mapping[str, float | None],
    ) -> Http1Connection:
        """Send the request on a pooled or new connection; return it once the answer's head
        is in. The caller holds a slot; on failure the connection is closed."""
        info = self._origins.get(origin)
        if info is None:
            info = self._origins[origin] = _Origin(origin)
        head, length, chunked = _request_head(method, target, info.host_header, headers, body)
        conn = self._checkout(origin)
        reused = conn is not None
        if conn is None:
            if self._idle_count and self._slots.held + self._idle_count > self._max_connections:
                # Idle connections to other targets would take the total past the limit.
                self._evict_oldest()
            conn = await self._connect(info, timeouts.get("connect"))
        read = timeouts.get("read")
        while True:
            try:
                conn.begin(head_only=method == "HEAD")
                if body is None:
                    conn.write(head)
                elif isinstance(body, bytes):
                    if len(body) <= _JOIN_LIMIT:
                        conn.write(head + body)
                    else:
                        conn.writelines([head, body])
                else:
                    conn.write(head)
                    conn.writer = asyncio.ensure_future(
                        _write_body(conn, body, length, chunked, timeouts.get("write"))
                    )
                while not conn.head_done:
                    await conn.wait(read, _read_timeout)
                return conn
            except httpx.TransportError as exc:
                _abandon(conn)
                if (
                    reused
                    and not conn.answered
                    and not isinstance(exc, httpx.TimeoutException)
                    and method in _IDEMPOTENT
                    and not isinstance(body, AsyncIterable)
                ):
                    # Most likely the server closed the idle connection as we wrote to it.
                    reused = False
                    conn = await self._connect(info, timeouts.get("connect"))
                    continue
                raise
            except BaseException:
                _abandon(conn)
                raise

    async def _connect(self, info: _Origin, timeout: float | None) -> Http1Connection:
        loop = asyncio.get_running_loop()
        tls: ssl.SSLContext | None = None
        if info.tls:
            tls = self._ssl_context
            if tls is None:
                tls = self._ssl_context = ssl.create_default_context()
        try:
            async with asyncio.timeout(timeout):
                _, conn = await loop.create_connection(
                    lambda: Http1Connection(loop),
                    info.host,
                    info.port,
                    ssl=tls,
                    server_hostname=info.host if tls is not None else None,
                )
        except TimeoutError:
            raise httpx.ConnectTimeout(f"connect timeout to {info.key}") from None
        except OSError as exc:
            raise httpx.ConnectError(f"cannot connect to {info.key}: {exc}") from exc
        conn.origin = info.key
        conn.on_idle_lost = self._forget
        return conn

    # -- the pool -------------------------------------------------------------------------------

    def _checkout(self, origin: str) -> Http1Connection | None:
        idle = self._idle.get(origin)
        if not idle:
            return None
        now = asyncio.get_running_loop().time()
        while idle:
            conn = idle.pop()  # the most recently used
            self._idle_count -= 1
            if not conn.closed and now - conn.idle_since < self._keepalive:
                return conn
            conn.close()
        return None

    def _release(self, conn: Http1Connection | None) -> None:
        """End an exchange: keep the connection if it can carry another, give the slot back."""
        try:
            if conn is None:
                return
            writer = conn.writer
            if writer is not None and not writer.done():
                writer.cancel()  # the answer ended before the request body: nothing to reuse
                conn.close()
            if (
                conn.closed
                or not conn.complete
                or not conn.keep_alive
                or conn.error is not None
                or self._closed
            ):
                conn.close()
                return
            now = asyncio.get_running_loop().time()
            key = conn.origin
            idle = self._idle.get(key)
            if idle is None:
                idle = self._idle[key] = []
            elif idle and now - idle[0].idle_since >= self._keepalive:
                self._expire(idle, now)
            if self._idle_count >= self._max_idle:
                conn.close()
                return
            conn.rest()
            conn.idle_since = now
            idle.append(conn)
            self._idle_count += 1
            if self._sweeper is None:
                self._sweeper = asyncio.get_running_loop().call_later(self._keepalive, self._sweep)
        finally:
            self._slots.release()

    def _sweep(self) -> None:
        """Close expired idle connections even where no request comes to find them."""
        self._sweeper = None
        now = asyncio.get_running_loop().time()
        for idle in self._idle.values():
            if idle:
                self._expire(idle, now)
        if self._idle_count and not self._closed:
            self._sweeper = asyncio.get_running_loop().call_later(self._keepalive, self._sweep)

    def _evict_oldest(self) -> None:
        oldest: list[Http1Connection] | None = None
        for idle in self._idle.values():
            if idle and (oldest is None or idle[0].idle_since < oldest[0].idle_since):
                oldest = idle
        if oldest is not None:
            oldest.pop(0).close()
            self._idle_count -= 1

    def _expire(self, idle: list[Http1Connection], now: float) -> None:
        """Close the connections of ``idle`` past their keep-alive expiry (the oldest come
        first: connections are appended as they come back and taken from the end)."""
        expired = 0
        for conn in idle:
            if now - conn.idle_since < self._keepalive:
                break
            conn.close()
            expired += 1
        del idle[:expired]
        self._idle_count -= expired

    def _forget(self, conn: Http1Connection) -> None:
        """Drop an idle connection that was lost (closed by the server, say)."""
        idle = self._idle.get(conn.origin)
        if idle is not None and conn in idle:
            idle.remove(conn)
            self._idle_count -= 1


class _BodyStream(httpx.AsyncByteStream):
    """The body of a streamed answer; closing it ends the exchange."""

    __slots__ = ("_conn", "_read", "_transport")

    def __init__(self, transport: Http1Transport, conn: Http1Connection, read: float | None):
        self._transport: Http1Transport | None = transport
        self._conn = conn
        self._read = read

    @property
    def finished(self) -> bool:
        """The whole body has arrived and nothing of it is left to read."""
        conn = self._conn
        return conn.complete and not conn.buffered

    async def __aiter__(self) -> AsyncIterator[bytes]:
        if self._transport is None:
            # Closed: its connection may carry somebody else's exchange by now.
            raise httpx.StreamClosed()
        conn, read = self._conn, self._read
        while True:
            if conn.buffered:
                yield conn.take_body()
            elif conn.complete:
                return
            else:
                await conn.wait(read, _read_timeout)

    async def aclose(self) -> None:
        transport, self._transport = self._transport, None
        if transport is not None:
            transport._release(self._conn)


def _abandon(conn: Http1Connection) -> None:
    writer = conn.writer
    if writer is not None and not writer.done():
        writer.cancel()
    conn.close()


def _request_head(
    method: str, target: bytes, host: bytes, headers: Headers, body: Body
) -> tuple[bytes, int | None, bool]:
    """The request line and headers, with the framing of ``body`` (Content-Length or chunked);
    also the length a streamed body announced and whether it goes chunked."""
    if _BAD_TARGET.search(target):
        raise httpx.LocalProtocolError("the request target contains spaces or control characters")
    if method not in _COMMON_METHODS and not _METHOD.fullmatch(method):
        raise httpx.LocalProtocolError(f"invalid request method {method!r}")
    lines = [method.encode("ascii"), b" ", target, b" HTTP/1.1\r\n"]
    breaks = 2  # the request line's and the final one's
    has_host = False
    declared: bytes | None = None
    try:
        for raw_name, raw_value in headers:
            name = raw_name.encode("latin-1") if isinstance(raw_name, str) else raw_name
            value = raw_value.encode("latin-1") if isinstance(raw_value, str) else raw_value
            size = len(name)
            if size == 4 or size == 14 or size == 17:
                lower = name.lower()
                if lower == b"host":
                    has_host = True
                elif lower == b"content-length":
                    declared = value
                    continue
                elif lower == b"transfer-encoding":
                    continue  # framing is ours to set, from the body we send
            lines += (name, b": ", value, b"\r\n")
            breaks += 1
    except UnicodeEncodeError:
        raise httpx.LocalProtocolError("a request header is not latin-1") from None
    # The names are every fourth piece from the first header's on: all checked in one pass.
    if b"".join(lines[4::4]).translate(None, _TCHAR):
        raise httpx.LocalProtocolError("a request header name is not a token")
    if not has_host:
        lines += (b"host: ", host, b"\r\n")
        breaks += 1
    length: int | None = None
    chunked = False
    if body is None:
        if method in _BODY_METHODS:
            lines.append(b"content-length: 0\r\n")
            breaks += 1
    elif isinstance(body, bytes):
        lines += (b"content-length: ", b"%d" % len(body), b"\r\n")
        breaks += 1
    elif declared is not None:
        try:
            length = int(declared)
        except ValueError:
            raise httpx.LocalProtocolError("invalid Content-Length") from None
        lines += (b"content-length: ", b"%d" % length, b"\r\n")
        breaks += 1
    else:
        lines.append(b"transfer-encoding: chunked\r\n")
        chunked = True
        breaks += 1
    lines.append(b"\r\n")
    head = b"".join(lines)
    # Only the line breaks written here may appear: a CR, LF or NUL inside a name or value
    # would let a caller inject headers or a second request.
    if head.count(b"\n") != breaks or head.count(b"\r") != breaks or b"\0" in head:
        raise httpx.LocalProtocolError("a request header contains CR, LF or NUL")
    return head, length, chunked


async def _write_body(
    conn: Http1Connection,
    body: AsyncIterable[bytes],
    length: int | None,
    chunked: bool,
    write_timeout: float | None,
) -> None:
    """Stream a request body to the connection (a task beside the wait for the answer, so an
    upstream that answers early, a 413 say, is heard); a failure ends the exchange."""
    sent = 0
    try:
        async for chunk in body:
            if not chunk:
                continue
            sent += len(chunk)
            if chunked:
                conn.writelines([b"%x\r\n" % len(chunk), chunk, b"\r\n"])
            else:
                if length is not None and sent > length:
                    raise httpx.LocalProtocolError("request body longer than its Content-Length")
                conn.write(chunk)
            await conn.drain(write_timeout)
            conn.note_progress()
        if chunked:
            conn.write(b"0\r\n\r\n")
        elif length is not None and sent != length:
            raise httpx.LocalProtocolError("request body shorter than its Content-Length")
    except httpx.TransportError as exc:
        conn.fail(exc)
    except Exception as exc:
        error = httpx.WriteError(f"request body failed: {exc}")
        error.__cause__ = exc
        conn.fail(error)
