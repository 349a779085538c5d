"""The native HTTP/1.1 transport against real sockets.

Three kinds of upstream: the sample services and the fault server (a real framework, uvicorn
with httptools), and :class:`RawServer`, a TCP server on the test's own event loop that answers
with scripted bytes: the answers no framework would send (a truncated body, a malformed status
line, bytes nobody asked for), and the server's view of the client (connections accepted, the
exact request bytes, when the client closed its side).
"""

from __future__ import annotations

import asyncio
import datetime
import gc
import ipaddress
import socket
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from bff.upstream.http1 import Http1Transport
from bff.upstream.http1.connection import HIGH_WATER
from services import ServiceServer
from tests.support.fault_server import ResetServer
from tests.support.servers import ThreadedServer, free_port

TIMEOUTS: dict[str, float | None] = {"connect": 1.0, "read": 1.0, "write": 1.0, "pool": 1.0}


def timeouts(**changes: float | None) -> dict[str, float | None]:
    return {**TIMEOUTS, **changes}


# -- a raw upstream -------------------------------------------------------------------------------


@dataclass
class RawRequest:
    """One request as the raw server read it (names lower-cased, body de-chunked)."""

    method: bytes
    target: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes

    def header(self, name: bytes) -> bytes | None:
        return next((v for n, v in self.headers if n == name), None)


class RawConnection:
    """The server's end of one accepted connection."""

    def __init__(self, index: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.index = index
        self.reader = reader
        self.writer = writer
        #: Every byte read from the client so far.
        self.received = bytearray()
        self.requests: list[RawRequest] = []
        #: The client closed its side (seen by a read).
        self.eof = asyncio.Event()

    async def _kept(self, reading: Awaitable[bytes]) -> bytes | None:
        """What ``reading`` returns, also kept in ``received``; None at the client's EOF."""
        try:
            data = await reading
        except asyncio.IncompleteReadError as exc:
            self.received += exc.partial
            self.eof.set()
            return None
        self.received += data
        return data

    def _until(self, separator: bytes) -> Awaitable[bytes | None]:
        return self._kept(self.reader.readuntil(separator))

    def _exactly(self, n: int) -> Awaitable[bytes | None]:
        return self._kept(self.reader.readexactly(n))

    async def read_request(self) -> RawRequest | None:
        """The next request (head and body), or ``None`` once the client closed."""
        head = await self._until(b"\r\n\r\n")
        if head is None:
            return None
        request_line, *lines = head[:-4].split(b"\r\n")
        method, target, version = request_line.split(b" ")
        assert version == b"HTTP/1.1"
        headers = []
        for line in lines:
            name, colon, value = line.partition(b":")
            assert colon and name == name.strip(), line
            headers.append((name.lower(), value.strip()))
        request = RawRequest(method, target, headers, b"")
        if request.header(b"transfer-encoding") == b"chunked":
            parts = []
            while True:
                size_line = await self._until(b"\r\n")
                if size_line is None:
                    return None
                size = int(size_line.split(b";")[0], 16)
                data = await self._exactly(size + 2)
                if data is None:
                    return None
                if size == 0:
                    break
                parts.append(data[:-2])
            request.body = b"".join(parts)
        elif (length := request.header(b"content-length")) is not None:
            body = await self._exactly(int(length))
            if body is None:
                return None
            request.body = body
        self.requests.append(request)
        return request

    async def read_until_eof(self) -> None:
        """Read (and keep) whatever the client sends until it closes its side."""
        while data := await self.reader.read(65536):
            self.received += data
        self.eof.set()

    async def send(self, *pieces: bytes, pause: float = 0.002) -> None:
        """Send ``pieces`` one at a time, a moment apart (several reads on the client side)."""
        for i, piece in enumerate(pieces):
            if i:
                await asyncio.sleep(pause)
            self.writer.write(piece)
            await self.writer.drain()


Handler = Callable[[RawConnection], Awaitable[None]]


class RawServer:
    """A TCP server on the running loop; ``handler`` drives each accepted connection, which is
    closed when it returns. Assertion failures inside handlers fail the test at exit."""

    def __init__(self, handler: Handler, tls: ssl.SSLContext | None = None) -> None:
        self._handler = handler
        self._tls = tls
        self.connections: list[RawConnection] = []
        self.errors: list[BaseException] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._server: asyncio.Server | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"{'https' if self._tls else 'http'}://127.0.0.1:{self.port}"

    @property
    def requests(self) -> list[RawRequest]:
        return [r for c in self.connections for r in c.requests]

    async def __aenter__(self) -> RawServer:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0, ssl=self._tls)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()
        if self.errors and exc[0] is None:
            raise self.errors[0]

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        conn = RawConnection(len(self.connections), reader, writer)
        self.connections.append(conn)
        try:
            await self._handler(conn)
        except (ConnectionError, asyncio.CancelledError):
            pass
        except BaseException as exc:
            self.errors.append(exc)
        finally:
            writer.close()
            self._tasks.discard(task)


def answer(body: bytes = b"ok", status: bytes = b"200 OK", headers: bytes = b"") -> bytes:
    """A complete keep-alive answer with a Content-Length."""
    return b"HTTP/1.1 %s\r\nContent-Length: %d\r\n%s\r\n%s" % (status, len(body), headers, body)


async def _ok(request: RawRequest) -> bytes:
    return answer()


def serving(reply: Callable[[RawRequest], Awaitable[bytes]] = _ok) -> Handler:
    """A keep-alive server: every request gets ``await reply(request)``."""

    async def handler(conn: RawConnection) -> None:
        while (request := await conn.read_request()) is not None:
            await conn.send(await reply(request))

    return handler


def scripted(*replies: bytes | Sequence[bytes], then_close: bool = False) -> Handler:
    """Each connection answers its first requests with ``replies`` (a reply given as several
    pieces is sent a moment apart), then closes (``then_close``) or goes on answering "ok"."""

    async def handler(conn: RawConnection) -> None:
        for reply in replies:
            if await conn.read_request() is None:
                return
            await conn.send(*([reply] if isinstance(reply, bytes) else reply))
        if not then_close:
            await serving()(conn)

    return handler


async def until(predicate: Callable[[], bool], timeout: float = 2.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.002)


async def read(response: httpx.Response) -> bytes:
    """The body of a streamed response, which is closed after."""
    try:
        return b"".join([chunk async for chunk in response.stream])  # type: ignore[union-attr]
    finally:
        await response.aclose()


async def get(transport: Http1Transport, url: str, target: bytes = b"/", **t: float) -> bytes:
    response = await transport.fetch("GET", url, target, [], None, timeouts(**t))
    assert response.status_code == 200
    return response.content


async def chunks_of(*parts: bytes, pause: float = 0.0) -> AsyncIterator[bytes]:
    for part in parts:
        if pause:
            await asyncio.sleep(pause)
        yield part


@pytest.fixture(scope="module")
def young_heap() -> Iterator[None]:
    """What exists before this module's tests is frozen, so the collections below only go
    through what the tests made (a full one over the imported gateway takes 0.1 s)."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


@pytest.fixture(autouse=True)
async def no_stray_tasks_or_loop_errors(young_heap: None) -> AsyncIterator[None]:
    """Every test ends with no task of the transport still running and nothing reported to the
    loop's exception handler ("Task exception was never retrieved", errors in callbacks)."""
    loop = asyncio.get_running_loop()
    reported: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _, context: reported.append(context))
    before = asyncio.all_tasks()
    try:
        yield
        for _ in range(3):  # closed transports call connection_lost on a later iteration
            await asyncio.sleep(0)
        gc.collect()  # futures report unretrieved exceptions when collected
        stray = [t for t in asyncio.all_tasks() - before if t is not asyncio.current_task()]
        assert stray == []
        assert reported == []
    finally:
        loop.set_exception_handler(previous)


# -- the pool ---------------------------------------------------------------------------------


async def test_sequential_requests_share_one_connection() -> None:
    async with RawServer(serving()) as server, Http1Transport() as transport:
        for target in (b"/a", b"/b"):
            assert await get(transport, server.url, target) == b"ok"
        streamed = await transport.open("GET", server.url, b"/c", [], None, TIMEOUTS)
        assert await read(streamed) == b"ok"
        assert await get(transport, server.url, b"/d") == b"ok"
    assert len(server.connections) == 1
    assert [r.target for r in server.requests] == [b"/a", b"/b", b"/c", b"/d"]
    assert server.requests[0].header(b"host") == f"127.0.0.1:{server.port}".encode()


async def test_a_sample_service_is_served_over_one_kept_connection() -> None:
    with ServiceServer("users") as users:
        async with Http1Transport() as transport:
            first = await transport.fetch("GET", users.url, b"/users/7", [], None, TIMEOUTS)
            second = await transport.fetch("GET", users.url, b"/users/8", [], None, TIMEOUTS)
            assert transport._idle_count == 1
    assert (first.status_code, first.json()["name"]) == (200, "User 7")
    assert (second.status_code, second.json()["name"]) == (200, "User 8")
    assert first.headers["content-type"] == "application/json"


async def test_more_callers_than_connections_share_them() -> None:
    active = peak = 0

    async def reply(request: RawRequest) -> bytes:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        await asyncio.sleep(0.01)
        active -= 1
        return answer(request.target)

    async with RawServer(serving(reply)) as server, Http1Transport(max_connections=3) as transport:
        bodies = await asyncio.gather(*(get(transport, server.url, b"/%d" % i) for i in range(12)))
    assert bodies == [b"/%d" % i for i in range(12)]
    assert peak == 3
    assert len(server.connections) == 3


async def test_waiting_callers_are_admitted_first_come_first_served() -> None:
    async def reply(request: RawRequest) -> bytes:
        await asyncio.sleep(0.002)
        return answer()

    async with RawServer(serving(reply)) as server, Http1Transport(max_connections=1) as transport:
        await asyncio.gather(*(get(transport, server.url, b"/%d" % i) for i in range(8)))
    assert [r.target for r in server.requests] == [b"/%d" % i for i in range(8)]


async def test_past_the_pool_timeout_a_waiting_caller_gets_pool_timeout() -> None:
    release = asyncio.Event()

    async def reply(request: RawRequest) -> bytes:
        if request.target == b"/hold":
            await release.wait()
        return answer()

    async with RawServer(serving(reply)) as server, Http1Transport(max_connections=1) as transport:
        held = asyncio.ensure_future(get(transport, server.url, b"/hold"))
        await until(lambda: len(server.requests) == 1)
        started = time.monotonic()
        with pytest.raises(httpx.PoolTimeout):
            await get(transport, server.url, b"/next", pool=0.05)
        assert time.monotonic() - started < 0.5
        release.set()
        assert await held == b"ok"
        # The slot came back: served at once, on the same connection.
        assert await get(transport, server.url, b"/after", pool=0.05) == b"ok"
    assert [r.target for r in server.requests] == [b"/hold", b"/after"]
    assert len(server.connections) == 1


async def test_idle_connections_past_max_keepalive_are_closed() -> None:
    arrived = 0
    everyone_in = asyncio.Event()

    async def reply(request: RawRequest) -> bytes:
        nonlocal arrived
        arrived += 1
        if arrived == 4:
            everyone_in.set()
        await everyone_in.wait()  # four connections at once
        return answer()

    async with (
        RawServer(serving(reply)) as server,
        Http1Transport(max_connections=4, max_keepalive_connections=1) as transport,
    ):
        await asyncio.gather(*(get(transport, server.url) for _ in range(4)))
        assert len(server.connections) == 4
        await until(lambda: sum(c.eof.is_set() for c in server.connections) == 3)
        assert await get(transport, server.url) == b"ok"  # on the one kept
        assert len(server.connections) == 4


async def test_an_idle_connection_past_keepalive_expiry_is_not_reused() -> None:
    async with RawServer(serving()) as server, Http1Transport(keepalive_expiry=0.05) as transport:
        await get(transport, server.url)
        await asyncio.sleep(0.08)
        await get(transport, server.url)
        assert len(server.connections) == 2
        await until(server.connections[0].eof.is_set)


async def test_idle_connections_expire_without_another_request_to_find_them() -> None:
    async with RawServer(serving()) as server, Http1Transport(keepalive_expiry=0.05) as transport:
        await get(transport, server.url)
        await until(server.connections[0].eof.is_set)
        assert transport._idle_count == 0


async def test_idle_connections_to_other_targets_make_room_under_the_limit() -> None:
    async def slowly(request: RawRequest) -> bytes:
        await asyncio.sleep(0.02)
        return answer()

    async with (
        RawServer(serving(slowly)) as first,
        RawServer(serving()) as second,
        Http1Transport(max_connections=2) as transport,
    ):
        await asyncio.gather(get(transport, first.url), get(transport, first.url))
        assert len(first.connections) == 2
        await get(transport, second.url)
        # Two idle connections to the first target and one new one would make three.
        await until(lambda: sum(c.eof.is_set() for c in first.connections) == 1)
        assert transport._idle_count == 2


async def test_keepalive_expiry_closes_only_the_idle_connections_past_it() -> None:
    async def reply(request: RawRequest) -> bytes:
        await asyncio.sleep(float(request.target[1:]))  # "/0.2": answer in 0.2 s
        return answer()

    async with (
        RawServer(serving(reply)) as server,
        Http1Transport(keepalive_expiry=0.3) as transport,
    ):
        # Three connections going idle at 0, 0.15 and 0.35 s: when the last one comes back,
        # the first is past its expiry, the second is not.
        await asyncio.gather(*(get(transport, server.url, t) for t in (b"/0", b"/0.15", b"/0.35")))
        by_first = {c.requests[0].target: c for c in server.connections}
        await until(by_first[b"/0"].eof.is_set)
        await asyncio.sleep(0.02)
        assert not by_first[b"/0.15"].eof.is_set()
        # Two at once now use the two connections still open.
        await asyncio.gather(
            get(transport, server.url, b"/0.01"), get(transport, server.url, b"/0")
        )
        assert len(server.connections) == 3
        assert [len(by_first[t].requests) for t in (b"/0", b"/0.15", b"/0.35")] == [1, 2, 2]


# -- connections the server closed ----------------------------------------------------------


async def test_a_connection_the_server_closed_while_idle_is_replaced() -> None:
    async def once(conn: RawConnection) -> None:
        await scripted(answer(), then_close=True)(conn)

    async with RawServer(once) as server, Http1Transport() as transport:
        await get(transport, server.url)
        await until(lambda: transport._idle_count == 0)  # the pool forgot it
        assert await get(transport, server.url) == b"ok"
        assert len(server.connections) == 2


async def test_connections_a_dead_server_closed_leave_room_for_live_ones() -> None:
    """A target going down closes its idle connections: they must not go on counting against
    max_keepalive_connections, or the other targets would lose keep-alive."""

    async def once_then_close(conn: RawConnection) -> None:
        await scripted(answer(), then_close=True)(conn)

    async def slowly(request: RawRequest) -> bytes:
        await asyncio.sleep(0.01)  # two requests at once take two connections
        return answer()

    async with (
        RawServer(once_then_close) as dying,
        RawServer(serving(slowly)) as live,
        Http1Transport(max_keepalive_connections=2) as transport,
    ):
        await asyncio.gather(get(transport, dying.url), get(transport, dying.url))
        await until(lambda: transport._idle_count == 0)
        for _ in range(3):
            await asyncio.gather(get(transport, live.url), get(transport, live.url))
        assert len(live.connections) == 2


def _closes_after_one_answer() -> Handler:
    """The first connection answers one request, reads the next and closes without answering
    (a server closing an idle connection just as the client reuses it); later connections
    answer every request."""

    async def handler(conn: RawConnection) -> None:
        if conn.index == 0:
            await scripted(answer(), then_close=True)(conn)
            await conn.read_request()
        else:
            await serving()(conn)

    return handler


@pytest.mark.parametrize(("method", "body"), [("GET", None), ("PUT", b"same"), ("DELETE", None)])
async def test_an_idempotent_request_is_resent_on_a_fresh_connection(
    method: str, body: bytes | None
) -> None:
    async with RawServer(_closes_after_one_answer()) as server, Http1Transport() as transport:
        await get(transport, server.url)
        response = await transport.fetch(method, server.url, b"/again", [], body, TIMEOUTS)
        assert (response.status_code, response.content) == (200, b"ok")
    first, second = server.connections
    assert [r.target for r in first.requests] == [b"/", b"/again"]
    assert [(r.target, r.body) for r in second.requests] == [(b"/again", body or b"")]


@pytest.mark.parametrize("method", ["POST", "PATCH"])
async def test_a_request_that_is_not_idempotent_is_never_resent(method: str) -> None:
    async with RawServer(_closes_after_one_answer()) as server, Http1Transport() as transport:
        await get(transport, server.url)
        with pytest.raises(httpx.RemoteProtocolError):
            await transport.fetch(method, server.url, b"/pay", [], b"100 EUR", TIMEOUTS)
        assert len(server.connections) == 1
        assert [r.target for r in server.requests] == [b"/", b"/pay"]
        assert await get(transport, server.url) == b"ok"  # a fresh connection


async def test_a_streamed_body_is_never_resent() -> None:
    async with RawServer(_closes_after_one_answer()) as server, Http1Transport() as transport:
        await get(transport, server.url)
        with pytest.raises(httpx.RemoteProtocolError):
            await transport.open("PUT", server.url, b"/up", [], chunks_of(b"a", b"b"), TIMEOUTS)
        assert len(server.connections) == 1


async def test_bytes_arriving_on_an_idle_connection_retire_it() -> None:
    sent_junk = asyncio.Event()

    async def handler(conn: RawConnection) -> None:
        if conn.index == 0:
            await conn.read_request()
            await conn.send(answer())
            await asyncio.sleep(0.01)
            await conn.send(answer(b"nobody asked"))
            sent_junk.set()
            await conn.read_until_eof()
        else:
            await serving()(conn)

    async with RawServer(handler) as server, Http1Transport() as transport:
        await get(transport, server.url)
        await sent_junk.wait()
        await until(server.connections[0].eof.is_set)  # the client closed it
        assert transport._idle_count == 0
        assert await get(transport, server.url) == b"ok"
        assert len(server.connections) == 2


@pytest.mark.parametrize("path", ["fetch", "open"])
async def test_bytes_after_the_end_of_an_answer_are_not_read_as_part_of_it(path: str) -> None:
    """An answer followed in the same segment by a second one nobody asked for (a response
    splitting upstream): the first is returned untouched, the connection retired."""
    smuggled = answer(b"nope", b"404 Not Found") + answer(b"", b"200 OK", b"X-Smuggled: 1\r\n")

    async def handler(conn: RawConnection) -> None:
        await (scripted(smuggled) if conn.index == 0 else serving())(conn)

    async with RawServer(handler) as server, Http1Transport() as transport:
        if path == "fetch":
            response = await transport.fetch("GET", server.url, b"/", [], None, TIMEOUTS)
            content = response.content
        else:
            response = await transport.open("GET", server.url, b"/", [], None, TIMEOUTS)
            content = await read(response)
        assert (response.status_code, content) == (404, b"nope")
        assert "x-smuggled" not in response.headers
        assert await get(transport, server.url) == b"ok"
        assert len(server.connections) == 2


# -- framing of answers ---------------------------------------------------------------------

CHUNKED = [
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
    b"5;name=value\r\nhello\r\n",
    b"1\r\n \r\n5;flag\r\nwor",
    b"ld\r\n0\r\nX-Trailer: 1\r\n\r\n",
]


@pytest.mark.parametrize("path", ["fetch", "open"])
async def test_a_chunked_answer_is_read_whole_and_the_connection_kept(path: str) -> None:
    async with RawServer(scripted(CHUNKED)) as server, Http1Transport() as transport:
        if path == "fetch":
            response = await transport.fetch("GET", server.url, b"/", [], None, TIMEOUTS)
            content = response.content
        else:
            response = await transport.open("GET", server.url, b"/", [], None, TIMEOUTS)
            content = await read(response)
        assert content == b"hello world"
        assert response.headers["transfer-encoding"] == "chunked"
        assert await get(transport, server.url) == b"ok"
    assert len(server.connections) == 1


@pytest.mark.parametrize("path", ["fetch", "open"])
async def test_an_answer_without_framing_ends_with_the_connection(path: str) -> None:
    unframed = [b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n", b"part one, ", b"two"]
    async with (
        RawServer(scripted(unframed, then_close=True)) as server,
        Http1Transport() as transport,
    ):
        if path == "fetch":
            response = await transport.fetch("GET", server.url, b"/", [], None, TIMEOUTS)
            content = response.content
        else:
            response = await transport.open("GET", server.url, b"/", [], None, TIMEOUTS)
            content = await read(response)
        assert (response.status_code, content) == (200, b"part one, two")
        assert transport._idle_count == 0
        await get(transport, server.url, b"/", read=0.5)  # on a new connection
        assert len(server.connections) == 2


async def test_a_head_answer_has_no_body_and_the_connection_is_reused() -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\n"
    async with RawServer(scripted(head, head)) as server, Http1Transport() as transport:
        response = await transport.fetch("HEAD", server.url, b"/", [], None, TIMEOUTS)
        assert (response.status_code, response.content) == (200, b"")
        assert response.headers["content-length"] == "5"
        streamed = await transport.open("HEAD", server.url, b"/", [], None, TIMEOUTS)
        assert await read(streamed) == b""
        assert await get(transport, server.url) == b"ok"
    assert len(server.connections) == 1
    assert [r.method for r in server.requests] == [b"HEAD", b"HEAD", b"GET"]


async def test_no_content_and_not_modified_have_no_body() -> None:
    script = (
        b"HTTP/1.1 204 No Content\r\n\r\n",
        # A 304's Content-Length is the representation's: no body follows it.
        b'HTTP/1.1 304 Not Modified\r\nETag: "v1"\r\nContent-Length: 10\r\n\r\n',
    )
    async with RawServer(scripted(*script)) as server, Http1Transport() as transport:
        for status in (204, 304):
            response = await transport.fetch("GET", server.url, b"/", [], None, TIMEOUTS)
            assert (response.status_code, response.content) == (status, b"")
        assert await get(transport, server.url) == b"ok"
    assert len(server.connections) == 1


async def test_no_content_and_not_modified_from_a_real_server(
    fault: dict[str, ThreadedServer],
) -> None:
    async with Http1Transport() as transport:
        for status in (204, 304):
            response = await transport.open(
                "GET", fault["a"].url, b"/status/%d" % status, [], None, TIMEOUTS
            )
            assert (response.status_code, await read(response)) == (status, b"")
        assert transport._idle_count == 1


@pytest.mark.parametrize("path", ["fetch", "open"])
async def test_interim_answers_come_before_the_final_one(path: str) -> None:
    script = [
        b"HTTP/1.1 100 Continue\r\n\r\n",
        b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n",
        b"HTTP/1.1 201 Created\r\nX-Final: 1\r\nContent-Length: 4\r\n\r\ndone",
    ]
    async with RawServer(scripted(script)) as server, Http1Transport() as transport:
        if path == "fetch":
            response = await transport.fetch("POST", server.url, b"/", [], b"x", TIMEOUTS)
            content = response.content
        else:
            response = await transport.open("POST", server.url, b"/", [], b"x", TIMEOUTS)
            content = await read(response)
        assert (response.status_code, content) == (201, b"done")
        assert response.headers.get("x-final") == "1"
        assert "link" not in response.headers
        assert await get(transport, server.url) == b"ok"
    assert len(server.connections) == 1


TRUNCATED = {
    "content-length": [b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n", b"only part"],
    "chunked": [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", b"5\r\nhello\r\n"],
}


@pytest.mark.parametrize("framing", TRUNCATED)
async def test_a_body_cut_short_by_a_close_is_an_error_not_a_short_body(framing: str) -> None:
    script = scripted(TRUNCATED[framing], then_close=True)
    async with RawServer(script) as server, Http1Transport() as transport:
        with pytest.raises(httpx.RemoteProtocolError):
            await transport.fetch("GET", server.url, b"/", [], None, TIMEOUTS)
        response = await transport.open("GET", server.url, b"/", [], None, TIMEOUTS)
        with pytest.raises(httpx.RemoteProtocolError):
            await read(response)
        assert transport._idle_count == 0


async def test_a_connection_dropped_mid_body_by_a_real_server_is_an_error(
    fault: dict[str, ThreadedServer],
) -> None:
    async with Http1Transport() as transport:
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
            await transport.fetch("GET", fault["a"].url, b"/reset", [], None, TIMEOUTS)
        response = await transport.open("GET", fault["a"].url, b"/reset", [], None, TIMEOUTS)
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
            await read(response)
        assert transport._idle_count == 0


async def test_a_connection_reset_before_any_answer_is_an_error() -> None:
    with ResetServer() as server:
        async with Http1Transport() as transport:
            with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
                await transport.fetch("GET", server.url, b"/", [], None, TIMEOUTS)
            assert transport._idle_count == 0
        assert server.connections == 1  # a fresh connection: not sent twice


async def test_a_connection_closed_mid_head_is_an_error() -> None:
    script = scripted(b"HTTP/1.1 200 OK\r\nContent-Le", then_close=True)
    async with RawServer(script) as server, Http1Transport() as transport:
        with pytest.raises(httpx.RemoteProtocolError):
            await transport.fetch("GET", server.url, b"/", [], None, TIMEOUTS)


@pytest.mark.parametrize(
    "garbage",
    [
        b"HTTP/1.1 abc OK\r\nContent-Length: 0\r\n\r\n",
        b"220 smtp.example.com ESMTP ready\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: ten\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nBad Header\r\n\r\n",
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
    ],
)
async def test_a_malformed_answer_is_a_remote_protocol_error(garbage: bytes) -> None:
    async with RawServer(scripted(garbage)) as server, Http1Transport() as transport:
        with pytest.raises(httpx.RemoteProtocolError):
            await transport.fetch("GET", server.url, b"/", [], None, TIMEOUTS)
        assert transport._idle_count == 0


# -- timeouts -------------------------------------------------------------------------------


async def test_a_slow_head_is_a_read_timeout(fault: dict[str, ThreadedServer]) -> None:
    async with Http1Transport() as transport:
        started = time.monotonic()
        with pytest.raises(httpx.ReadTimeout):
            await transport.fetch(
                "GET", fault["a"].url, b"/slow?ms=500", [], None, timeouts(read=0.05)
            )
        with pytest.raises(httpx.ReadTimeout):
            await transport.open(
                "GET", fault["a"].url, b"/slow?ms=500", [], None, timeouts(read=0.05)
            )
        assert time.monotonic() - started < 0.4
        assert transport._idle_count == 0


async def test_a_stalled_body_is_a_read_timeout() -> None:
    stalled = [b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n", b"the first part"]

    async def handler(conn: RawConnection) -> None:
        await scripted(stalled, then_close=True)(conn)
        await conn.read_until_eof()  # and nothing more

    async with RawServer(handler) as server, Http1Transport() as transport:
        with pytest.raises(httpx.ReadTimeout):
            await transport.fetch("GET", server.url, b"/", [], None, timeouts(read=0.05))
        response = await transport.open("GET", server.url, b"/", [], None, timeouts(read=0.05))
        received = []
        with pytest.raises(httpx.ReadTimeout):
            async for chunk in response.stream:  # type: ignore[union-attr]
                received.append(chunk)
        await response.aclose()
        assert b"".join(received) == b"the first part"
        await until(lambda: all(c.eof.is_set() for c in server.connections))
        assert transport._idle_count == 0


async def test_a_body_dripping_within_the_read_timeout_is_read_whole(
    fault: dict[str, ThreadedServer],
) -> None:
    async with Http1Transport() as transport:
        response = await transport.open(
            "GET", fault["a"].url, b"/drip?chunks=5&ms=30&size=3", [], None, timeouts(read=0.2)
        )
        assert await read(response) == b"x" * 15


async def test_a_refused_connection_is_a_connect_error() -> None:
    async with Http1Transport() as transport:
        with pytest.raises(httpx.ConnectError):
            await transport.fetch(
                "GET", f"http://127.0.0.1:{free_port()}", b"/", [], None, TIMEOUTS
            )
        with pytest.raises(httpx.ConnectError):
            await transport.open("GET", f"http://127.0.0.1:{free_port()}", b"/", [], None, TIMEOUTS)


@pytest.fixture
def unaccepting_listener() -> Iterator[str]:
    """A listener whose accept queue is full: a further SYN goes unanswered (Linux)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    address = listener.getsockname()
    fillers = []
    try:
        for _ in range(3):
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(address)
            fillers.append(filler)
        yield f"http://127.0.0.1:{address[1]}"
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


async def test_a_connect_that_hangs_is_a_connect_timeout(unaccepting_listener: str) -> None:
    async with Http1Transport() as transport:
        started = time.monotonic()
        with pytest.raises(httpx.ConnectTimeout):
            await transport.fetch(
                "GET", unaccepting_listener, b"/", [], None, timeouts(connect=0.1)
            )
        assert time.monotonic() - started < 0.5


# -- request bodies -------------------------------------------------------------------------


async def test_request_bodies_in_memory_are_framed_by_content_length() -> None:
    async with RawServer(serving()) as server, Http1Transport() as transport:
        await transport.fetch("POST", server.url, b"/small", [], b"hello", TIMEOUTS)
        big = bytes(range(256)) * 1000  # past the size sent in one write with the head
        await transport.fetch("PUT", server.url, b"/big", [("Content-Length", "1")], big, TIMEOUTS)
        await transport.fetch("POST", server.url, b"/none", [], None, TIMEOUTS)
        await transport.fetch("GET", server.url, b"/get", [], None, TIMEOUTS)
    small, large, empty, plain = server.requests
    assert (small.header(b"content-length"), small.body) == (b"5", b"hello")
    assert large.header(b"content-length") == b"256000" and large.body == big
    assert [n for n, _ in large.headers].count(b"content-length") == 1
    assert (empty.header(b"content-length"), empty.body) == (b"0", b"")
    assert plain.header(b"content-length") is None
    assert plain.header(b"transfer-encoding") is None
    assert len(server.connections) == 1


async def test_a_streamed_body_without_a_length_goes_chunked() -> None:
    parts = [b"first,", b"", b"second," * 1000, b"third"]
    async with RawServer(serving()) as server, Http1Transport() as transport:
        streamed = await transport.open(
            "POST",
            server.url,
            b"/",
            [("Transfer-Encoding", "gzip")],  # framing is the transport's: replaced
            chunks_of(*parts),
            TIMEOUTS,
        )
        assert await read(streamed) == b"ok"
        assert await get(transport, server.url) == b"ok"
    request = server.requests[0]
    assert request.header(b"transfer-encoding") == b"chunked"
    assert request.header(b"content-length") is None
    assert request.body == b"".join(parts)
    assert len(server.connections) == 1


async def test_a_streamed_body_with_a_declared_length_goes_as_is() -> None:
    async with RawServer(serving()) as server, Http1Transport() as transport:
        streamed = await transport.open(
            "PUT",
            server.url,
            b"/",
            [("Content-Length", "11")],
            chunks_of(b"hello", b" world"),
            TIMEOUTS,
        )
        assert await read(streamed) == b"ok"
    request = server.requests[0]
    assert (request.header(b"content-length"), request.body) == (b"11", b"hello world")
    assert request.header(b"transfer-encoding") is None


async def test_large_streamed_bodies_arrive_intact(fault: dict[str, ThreadedServer]) -> None:
    size = 8 << 20
    chunk = b"z" * 65536

    def body() -> AsyncIterator[bytes]:
        return chunks_of(*[chunk] * (size // len(chunk)))

    async with Http1Transport() as transport:
        for headers in ([], [("content-length", str(size))]):
            response = await transport.open(
                "POST", fault["a"].url, b"/echo", headers, body(), TIMEOUTS
            )
            echo = httpx.Response(200, content=await read(response)).json()
            assert echo["body_size"] == size
            sent = dict(echo["headers"])
            assert ("transfer-encoding" in sent) == (not headers)


@pytest.mark.parametrize(
    ("declared", "parts"), [("10", [b"12345"]), ("3", [b"12", b"34"])], ids=["short", "long"]
)
async def test_a_streamed_body_that_breaks_its_content_length_is_refused(
    declared: str, parts: list[bytes]
) -> None:
    async with RawServer(serving()) as server, Http1Transport() as transport:
        with pytest.raises(httpx.LocalProtocolError):
            await transport.open(
                "PUT",
                server.url,
                b"/",
                [("content-length", declared)],
                chunks_of(*parts),
                TIMEOUTS,
            )
        await until(lambda: all(c.eof.is_set() for c in server.connections))
        assert server.requests == []


async def test_a_failing_body_source_is_a_write_error_and_closes_the_connection() -> None:
    class SourceFailed(Exception):
        pass

    async def failing() -> AsyncIterator[bytes]:
        yield b"the start"
        await asyncio.sleep(0.01)
        raise SourceFailed("the client went away")

    async with RawServer(serving()) as server, Http1Transport() as transport:
        await get(transport, server.url)
        with pytest.raises(httpx.WriteError) as caught:
            await transport.open("POST", server.url, b"/", [], failing(), TIMEOUTS)
        assert isinstance(caught.value.__cause__, SourceFailed)
        await until(server.connections[0].eof.is_set)
        assert transport._idle_count == 0
        assert b"the start" in server.connections[0].received
        assert len(server.requests) == 1  # the broken one never completed


async def test_an_answer_before_the_body_is_read_is_returned() -> None:
    """An upstream refusing a large upload (413) without reading it: the answer comes back
    while the body is still blocked on a full socket, and the upload stops."""

    async def refuse(conn: RawConnection) -> None:
        await conn._until(b"\r\n\r\n")  # the head only
        await conn.send(answer(b"too large", b"413 Payload Too Large", b"Connection: close\r\n"))
        await asyncio.sleep(10)  # never reads the body

    sent = 0

    async def endless() -> AsyncIterator[bytes]:
        nonlocal sent
        chunk = b"u" * 65536
        while True:
            sent += len(chunk)
            yield chunk

    async with RawServer(refuse) as server, Http1Transport() as transport:
        response = await transport.open("PUT", server.url, b"/", [], endless(), TIMEOUTS)
        assert response.status_code == 413
        assert await read(response) == b"too large"
        assert transport._idle_count == 0
        stopped_at = sent
        await asyncio.sleep(0.02)
        assert sent == stopped_at
    assert len(server.connections) == 1


async def test_a_slow_upload_that_keeps_moving_is_not_a_read_timeout(
    fault: dict[str, ThreadedServer],
) -> None:
    """The read timeout bounds waits for the answer, not how long the request body takes to
    go out: a body trickling in for longer than it still gets its answer."""
    async with Http1Transport() as transport:
        body = chunks_of(*[b"x" * 100] * 8, pause=0.03)
        response = await transport.open(
            "POST", fault["a"].url, b"/echo", [], body, timeouts(read=0.1)
        )
        echo = httpx.Response(200, content=await read(response)).json()
        assert echo["body_size"] == 800


async def test_an_upload_that_stalls_is_a_read_timeout() -> None:
    async def handler(conn: RawConnection) -> None:
        await conn.read_until_eof()

    async with RawServer(handler) as server, Http1Transport() as transport:
        body = chunks_of(b"start", b"never", pause=1.0)
        started = time.monotonic()
        with pytest.raises(httpx.ReadTimeout):
            await transport.open("POST", server.url, b"/", [], body, timeouts(read=0.1))
        assert time.monotonic() - started < 0.5


async def test_a_body_the_upstream_does_not_take_is_a_write_timeout() -> None:
    async def never_reads(conn: RawConnection) -> None:
        await conn._until(b"\r\n\r\n")
        await asyncio.sleep(10)

    async def endless() -> AsyncIterator[bytes]:
        chunk = b"w" * 65536
        while True:
            yield chunk

    async with RawServer(never_reads) as server, Http1Transport() as transport:
        started = time.monotonic()
        with pytest.raises(httpx.WriteTimeout):
            await transport.open("PUT", server.url, b"/", [], endless(), timeouts(write=0.1))
        assert time.monotonic() - started < 0.8
        assert transport._idle_count == 0


# -- hostile input --------------------------------------------------------------------------

HOSTILE: dict[str, tuple[str, bytes, list[tuple[Any, Any]]]] = {
    "space in target": ("GET", b"/a b", []),
    "control char in target": ("GET", b"/a\x01", []),
    "CRLF in target": ("GET", b"/a HTTP/1.1\r\nX-Injected: 1\r\n\r\nGET /b", []),
    "CRLF in name": ("GET", b"/", [("X-A\r\nX-Injected", "1")]),
    "CRLF in value": ("GET", b"/", [("X-A", "1\r\nX-Injected: 1")]),
    "LF in value": ("GET", b"/", [("X-A", "1\nX-Injected: 1")]),
    "CR in value": ("GET", b"/", [("X-A", "1\rX-Injected: 1")]),
    "NUL in value": ("GET", b"/", [("X-A", "1\x00")]),
    "NUL in name": ("GET", b"/", [("X-\x00A", "1")]),
    "request in bytes value": ("GET", b"/", [(b"X-A", b"1\r\n\r\nGET /smuggled HTTP/1.1")]),
    "space in name": ("GET", b"/", [("Content-Length ", "5")]),
    "colon in name": ("GET", b"/", [("X-A: 1\tX-B", "2")]),
    "space in method": ("GET /admin", b"/", []),
    "CRLF in method": ("GET / HTTP/1.1\r\n\r\nGET", b"/", []),
    "non-latin-1 value": ("GET", b"/", [("X-A", "\u20ac")]),
}


@pytest.mark.parametrize("case", HOSTILE)
async def test_hostile_requests_are_refused_before_anything_is_sent(case: str) -> None:
    method, target, headers = HOSTILE[case]
    async with RawServer(serving()) as server, Http1Transport() as transport:
        assert await get(transport, server.url, b"/ok") == b"ok"
        with pytest.raises(httpx.LocalProtocolError):
            await transport.fetch(method, server.url, target, headers, None, TIMEOUTS)
        with pytest.raises(httpx.LocalProtocolError):
            await transport.open(method, server.url, target, headers, chunks_of(b"x"), TIMEOUTS)
        assert await get(transport, server.url, b"/ok") == b"ok"  # same connection, still clean
        await asyncio.sleep(0.01)
    assert len(server.connections) == 1
    assert [r.target for r in server.requests] == [b"/ok", b"/ok"]
    received = bytes(server.connections[0].received)
    assert received.count(b"\r\n\r\n") == 2 and b"Injected" not in received


# -- streamed answers -----------------------------------------------------------------------


async def test_a_large_answer_read_slowly_is_never_buffered_whole(
    fault: dict[str, ThreadedServer],
) -> None:
    size = 64 << 20
    async with Http1Transport() as transport:
        response = await transport.open(
            "GET", fault["a"].url, b"/bytes?n=%d" % size, [], None, TIMEOUTS
        )
        total = largest = 0
        try:
            async for chunk in response.stream:  # type: ignore[union-attr]
                total += len(chunk)
                largest = max(largest, len(chunk))
                await asyncio.sleep(0.0005)  # a slow consumer
        finally:
            await response.aclose()
        assert transport._idle_count == 1
    assert total == size
    # Each chunk is all the connection held at that moment: reading paused at HIGH_WATER
    # (plus what the socket read that crossed it).
    assert HIGH_WATER // 2 < largest <= HIGH_WATER + 256 * 1024


async def test_a_stream_closed_unread_once_its_body_is_in_leaves_a_usable_connection() -> None:
    """The whole answer arrived but nobody took it: reading paused at HIGH_WATER, and the
    connection goes back to the pool, where the next exchange must read again."""
    big = b"b" * (HIGH_WATER + 1)  # the byte crossing HIGH_WATER is the last one
    async with RawServer(scripted(answer(big))) as server, Http1Transport() as transport:
        response = await transport.open("GET", server.url, b"/", [], None, TIMEOUTS)
        conn = response.stream._conn  # type: ignore[union-attr]
        await until(lambda: conn.complete)
        await response.aclose()
        assert transport._idle_count == 1
        assert not conn.buffered  # an idle connection holds no body
        assert await get(transport, server.url, read=0.5) == b"ok"
    assert len(server.connections) == 1


async def test_a_closed_stream_cannot_be_read() -> None:
    async with RawServer(serving()) as server, Http1Transport() as transport:
        response = await transport.open("GET", server.url, b"/", [], None, TIMEOUTS)
        await response.aclose()
        with pytest.raises(httpx.StreamClosed):
            async for _ in response.stream:  # type: ignore[union-attr]
                pass


async def test_closing_a_stream_early_closes_its_connection(
    fault: dict[str, ThreadedServer],
) -> None:
    app = fault["a"].app
    async with Http1Transport(max_connections=1) as transport:
        response = await transport.open(
            "GET", fault["a"].url, b"/drip?chunks=50&ms=5", [], None, TIMEOUTS
        )
        async for _ in response.stream:  # type: ignore[union-attr]
            break
        await response.aclose()
        assert transport._idle_count == 0
        await until(lambda: app.aborted == 1)
        response = await transport.fetch("GET", fault["a"].url, b"/echo", [], None, TIMEOUTS)
        assert response.status_code == 200


async def test_a_cancelled_request_gives_its_slot_back() -> None:
    async def handler(conn: RawConnection) -> None:
        while (request := await conn.read_request()) is not None:
            if request.target == b"/hold":  # no answer
                await conn.read_until_eof()
            elif request.target == b"/stall":  # the head and a part of the body
                await conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nsome")
                await conn.read_until_eof()
            else:
                await conn.send(answer())

    async def consume(target: bytes) -> bytes:
        return await read(await transport.open("GET", server.url, target, [], None, TIMEOUTS))

    async with RawServer(handler) as server, Http1Transport(max_connections=1) as transport:
        # Cancelled while waiting for the head...
        pending = asyncio.ensure_future(consume(b"/hold"))
        await until(lambda: len(server.requests) == 1)
        pending.cancel()
        with pytest.raises(asyncio.CancelledError):
            await pending
        assert await get(transport, server.url, pool=0.1) == b"ok"
        # ... while queued for a slot...
        streamed = await transport.open("GET", server.url, b"/", [], None, TIMEOUTS)
        queued = asyncio.ensure_future(get(transport, server.url))
        await asyncio.sleep(0.01)
        queued.cancel()
        with pytest.raises(asyncio.CancelledError):
            await queued
        await read(streamed)
        assert await get(transport, server.url, pool=0.1) == b"ok"
        # ... and while reading a body.
        for path in ("open", "fetch"):
            if path == "open":
                pending = asyncio.ensure_future(consume(b"/stall"))
            else:
                pending = asyncio.ensure_future(get(transport, server.url, b"/stall"))
            await until(lambda: server.requests[-1].target == b"/stall")
            await asyncio.sleep(0.01)
            pending.cancel()
            with pytest.raises(asyncio.CancelledError):
                await pending
            assert await get(transport, server.url, pool=0.1) == b"ok"
        assert transport._idle_count == 1
    assert len(server.connections) == 4
    assert all(c.eof.is_set() for c in server.connections[:3])


async def test_a_request_cancelled_while_its_body_streams_closes_everything() -> None:
    async def handler(conn: RawConnection) -> None:
        await conn.read_until_eof()

    never = asyncio.Event()

    async def body() -> AsyncIterator[bytes]:
        yield b"start"
        await never.wait()
        yield b"never"

    async with RawServer(handler) as server, Http1Transport(max_connections=1) as transport:
        pending = asyncio.ensure_future(
            transport.open("POST", server.url, b"/", [], body(), TIMEOUTS)
        )
        await until(lambda: bool(server.connections) and b"start" in server.connections[0].received)
        pending.cancel()
        with pytest.raises(asyncio.CancelledError):
            await pending
        await until(server.connections[0].eof.is_set)
        assert transport._idle_count == 0


# -- TLS ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """A self-signed certificate for 127.0.0.1 and localhost: (cert path, key path)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bff test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return str(cert_path), str(key_path)


async def test_https_origins_are_served_over_tls(certificate: tuple[str, str]) -> None:
    cert, key = certificate
    server_side = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_side.load_cert_chain(cert, key)
    trusting = ssl.create_default_context(cafile=cert)
    unframed = scripted([b"HTTP/1.1 200 OK\r\n\r\n", b"until the end"], then_close=True)
    async with RawServer(serving(), tls=server_side) as server:
        async with Http1Transport(ssl_context=trusting) as transport:
            assert await get(transport, server.url, b"/a") == b"ok"
            assert await get(transport, server.url.replace("127.0.0.1", "localhost")) == b"ok"
            assert await get(transport, server.url, b"/b") == b"ok"
        assert len(server.connections) == 2  # one per origin
        async with Http1Transport() as transport:  # the system's trust store: not trusted
            with pytest.raises(httpx.ConnectError):
                await get(transport, server.url)
    async with (
        RawServer(unframed, tls=server_side) as server,
        Http1Transport(ssl_context=trusting) as transport,
    ):
        assert await get(transport, server.url) == b"until the end"


# -- as an httpx transport ------------------------------------------------------------------


async def test_it_serves_an_httpx_client(fault: dict[str, ThreadedServer]) -> None:
    async with httpx.AsyncClient(transport=Http1Transport(), base_url=fault["a"].url) as client:
        got = await client.get("/echo/a%2Fb", params={"q": "1 2"}, headers={"x-trace": "t1"})
        assert got.status_code == 200
        echo = got.json()
        assert (echo["method"], echo["raw_path"], echo["query"]) == ("GET", "/echo/a%2Fb", "q=1+2")
        assert ["x-trace", "t1"] in echo["headers"]
        posted = await client.post("/echo", json={"k": "v" * 100})
        assert posted.json()["body_size"] == len(b'{"k":"' + b"v" * 100 + b'"}')
        streamed_up = await client.post("/echo", content=chunks_of(b"a" * 1000, b"b" * 24))
        assert streamed_up.json()["body_size"] == 1024
        async with client.stream("GET", "/bytes", params={"n": 300_000}) as down:
            assert sum([len(c) async for c in down.aiter_bytes()]) == 300_000
        with pytest.raises(httpx.ReadTimeout):
            await client.get("/slow", params={"ms": 300}, timeout=0.05)
        assert (await client.get("/status/204")).status_code == 204
