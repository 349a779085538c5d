"""One HTTP/1.1 client connection: an asyncio protocol whose answers httptools parses.

The connection carries one exchange at a time (no pipelining). The parser's callbacks fill in
the exchange's state (status, headers, body chunks, completion) and wake whoever waits for it;
the waiting side (:class:`~bff.upstream.http1.transport.Http1Transport`) loops on that state.
Timeouts are timers armed only while somebody waits, so a connection whose reader is slow (a
slow downstream client) is never timed out for it.

Why not aiohttp's client: its request and response objects cost about 90 us of CPU per call,
a third of a passthrough request (docs/performance.md). This protocol does the same work in a
fraction of that, with the same C parser uvicorn uses on the server side.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httptools
import httpx

__all__ = ["Http1Connection"]

# A streamed body buffered past HIGH_WATER pauses reading from the socket until the consumer
# takes it: memory stays flat whatever the body size.
HIGH_WATER = 256 * 1024

_FRAMING_HEADERS = (b"content-length", b"transfer-encoding")


class Http1Connection(asyncio.Protocol):
    """A keep-alive HTTP/1.1 connection to one origin.

    ``closed`` is set as soon as the connection is known to be unusable (closed by either side,
    or an exchange that did not finish cleanly); the pool then drops it.
    """

    # Slots: every callback reads and sets several of these, and past 30 attributes CPython
    # 3.11 stops sharing instance dict keys, which costs about 0.5 us per exchange.
    __slots__ = (
        "_armed_at",
        "_buffered",
        "_chunks",
        "_drain_waiter",
        "_framed",
        "_head_only",
        "_interim",
        "_loop",
        "_parser",
        "_progress_at",
        "_reading_paused",
        "_surplus",
        "_timer",
        "_transport",
        "_wait_timeout",
        "_waiter",
        "_write_paused",
        "answered",
        "closed",
        "complete",
        "error",
        "head_done",
        "headers",
        "idle_since",
        "in_use",
        "keep_alive",
        "on_idle_lost",
        "origin",
        "reason",
        "status",
        "writer",
    )

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self.closed = False
        #: The pool's key for it: ``scheme://host:port``.
        self.origin = ""
        #: The task streaming the current request's body, if it has one.
        self.writer: asyncio.Future[None] | None = None
        #: When the connection went back to the pool (loop time), for keep-alive expiry.
        self.idle_since = 0.0
        self._waiter: asyncio.Future[None] | None = None
        self._drain_waiter: asyncio.Future[None] | None = None
        self._write_paused = False
        self._reading_paused = False
        #: An exchange is under way (bytes arriving on an idle connection are a protocol error).
        self.in_use = False
        #: Called when the connection is lost while idle, so that the pool forgets it at once
        #: (a dead connection left there would take a keep-alive place from a live one).
        self.on_idle_lost: Callable[[Http1Connection], None] | None = None
        # The read timer of the current wait: when it was armed and for how long, and when the
        # request body last moved on (an upload in progress is activity, not a stalled answer).
        self._timer: asyncio.TimerHandle | None = None
        self._armed_at = 0.0
        self._wait_timeout = 0.0
        self._progress_at = 0.0
        self._reset_exchange(head_only=False)

    def _reset_exchange(self, *, head_only: bool) -> None:
        self._head_only = head_only
        self.status = 0
        self.reason = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self._interim = False
        self._framed = False
        self.head_done = False
        #: Any byte of the answer arrived (a failure before that may be a stale connection).
        self.answered = False
        self.complete = False
        self.keep_alive = False
        self._chunks: list[bytes] = []
        self._buffered = 0
        self._surplus = False
        self.error: BaseException | None = None

    # -- the exchange, as the transport drives it -----------------------------------------

    def begin(self, *, head_only: bool) -> None:
        """Start a new exchange on this (idle) connection."""
        if self._head_only:
            # A HEAD answer left the parser expecting the body its Content-Length announced.
            self._parser = httptools.HttpResponseParser(self)
        self._reset_exchange(head_only=head_only)
        self.writer = None
        self.in_use = True

    def rest(self) -> None:
        """The exchange is over and the connection goes idle: drop what is left of the answer
        (a stream closed before its end was read), so an idle connection holds no body."""
        self._chunks = []
        self._buffered = 0
        self.in_use = False

    def write(self, data: bytes) -> None:
        """Queue ``data`` for the socket (request head and in-memory body)."""
        transport = self._transport
        if transport is None or transport.is_closing():
            raise httpx.WriteError("connection closed")
        transport.write(data)

    def writelines(self, parts: list[bytes]) -> None:
        """Queue several pieces at once (a chunk and its framing) without joining them."""
        transport = self._transport
        if transport is None or transport.is_closing():
            raise httpx.WriteError("connection closed")
        transport.writelines(parts)

    async def drain(self, timeout: float | None) -> None:
        """Wait until the socket's write buffer is below its high-water mark."""
        if not self._write_paused:
            return
        if self.error is not None:
            raise self.error
        waiter = self._loop.create_future()
        self._drain_waiter = waiter
        try:
            async with asyncio.timeout(timeout):
                await waiter
        except TimeoutError:
            self.fail(httpx.WriteTimeout("write timeout"))
            raise httpx.WriteTimeout("write timeout") from None
        finally:
            self._drain_waiter = None

    async def wait(self, timeout: float | None, on_timeout: Callable[[], BaseException]) -> None:
        """Wait for the next event of the exchange (head, body chunk, completion or failure).

        Raises the exchange's error, or ``on_timeout()`` if nothing happens for ``timeout``
        seconds (the connection is then closed); a request body still going out
        (:meth:`note_progress`) counts as something happening.
        """
        if self.error is not None:
            raise self.error
        waiter = self._loop.create_future()
        self._waiter = waiter
        if timeout is not None:
            self._wait_timeout = timeout
            self._armed_at = now = self._loop.time()
            self._timer = self._loop.call_at(now + timeout, self._expire, waiter)
        try:
            await waiter
        finally:
            self._waiter = None
            timer = self._timer
            if timer is not None:
                timer.cancel()
                self._timer = None
        if self.error is not None:
            if isinstance(self.error, _Expired):
                error = on_timeout()
                self.error = error
                raise error
            raise self.error

    def take_body(self) -> bytes:
        """The body bytes received since the last call (b"" if none)."""
        chunks = self._chunks
        if not chunks:
            return b""
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        self._chunks = []
        self._buffered = 0
        if self._reading_paused and self._transport is not None:
            self._reading_paused = False
            self._transport.resume_reading()
        return data

    def note_progress(self) -> None:
        """A piece of the request body went out (see :meth:`wait`)."""
        self._progress_at = self._loop.time()

    @property
    def buffered(self) -> bool:
        """Body bytes are waiting in :meth:`take_body`."""
        return bool(self._chunks)

    def fail(self, error: BaseException) -> None:
        """End the exchange with ``error`` and close the connection."""
        if self.error is None:
            self.error = error
        self.close()
        self._wake()

    def close(self) -> None:
        """Close the socket; the connection is not reused."""
        self.closed = True
        if self._transport is not None:
            self._transport.close()

    def _expire(self, waiter: asyncio.Future[None]) -> None:
        if self._waiter is not waiter or waiter.done():
            return
        progress = self._progress_at
        if progress > self._armed_at:
            # The request body moved on meanwhile: the wait starts over from then.
            self._armed_at = progress
            self._timer = self._loop.call_at(progress + self._wait_timeout, self._expire, waiter)
            return
        self.fail(_Expired())

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        drain = self._drain_waiter
        if drain is not None and not drain.done() and self.error is not None:
            drain.set_exception(self.error)

    # -- asyncio.Protocol ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if not self.in_use:
            self.close()  # nothing was asked: whatever this is, the connection can't be trusted
            return
        self.answered = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self.fail(httpx.RemoteProtocolError("unexpected protocol upgrade"))
        except httptools.HttpParserError as exc:
            if self._surplus:
                # The answer itself is whole and stays good; the connection can't be trusted.
                self.keep_alive = False
                self.close()
                return
            self.fail(httpx.RemoteProtocolError(f"malformed HTTP response: {exc}"))

    def eof_received(self) -> bool:
        return False  # close our side too: connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._transport = None
        if not self.in_use:  # nobody waits on it
            if self.on_idle_lost is not None:
                self.on_idle_lost(self)
            return
        if self.error is not None or self.complete:
            self._wake()
            return
        if self.head_done and not self._framed and not self._head_only:
            # No Content-Length and not chunked: the body ends where the connection does.
            self.complete = True
            self.keep_alive = False
            self._wake()
            return
        if self.head_done:
            error: BaseException = httpx.RemoteProtocolError(
                "the upstream closed the connection before the end of the body"
            )
        elif self.answered:
            error = httpx.RemoteProtocolError("the upstream closed the connection mid-answer")
        else:
            error = httpx.RemoteProtocolError(
                "the upstream closed the connection without answering"
            )
        self.error = error
        self._wake()

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        drain = self._drain_waiter
        if drain is not None and not drain.done():
            drain.set_result(None)

    # -- httptools callbacks ------------------------------------------------------------------

    def on_message_begin(self) -> None:
        if self.complete:
            # A second answer to one request (a server out of step, or one splitting its
            # responses): it must not be read as this one's; parsing stops here.
            self._surplus = True
            raise _Surplus

    def on_status(self, reason: bytes) -> None:
        self.reason = reason

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))
        if len(name) in (14, 17) and name.lower() in _FRAMING_HEADERS:
            self._framed = True

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if status < 200:
            # An interim answer (100 Continue, 103 Early Hints): the real one follows.
            self._interim = True
            self.headers = []
            self._framed = False
            return
        self._interim = False
        self.status = status
        self.head_done = True
        if self._head_only:
            self.complete = True
            self.keep_alive = self._parser.should_keep_alive()
        self._wake()

    def on_body(self, body: bytes) -> None:
        if self._head_only:
            return
        self._chunks.append(body)
        self._buffered += len(body)
        if self._buffered > HIGH_WATER and not self._reading_paused and self._transport:
            self._reading_paused = True
            self._transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        if self._interim or self._head_only:
            return
        self.complete = True
        self.keep_alive = self._parser.should_keep_alive()
        if self._reading_paused and self._transport is not None:
            # Nothing more belongs to this answer: read on, or a connection going back to the
            # pool with its reading paused would never see the server close it, nor the next
            # answer it carries.
            self._reading_paused = False
            self._transport.resume_reading()
        self._wake()


class _Expired(Exception):
    """Internal marker: a wait ran out (the waiting side raises its own timeout type)."""


class _Surplus(Exception):
    """Internal marker: bytes past the end of the answer (raised to stop the parser)."""
