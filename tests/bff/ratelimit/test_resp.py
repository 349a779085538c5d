"""The rate limiter's own Redis client: RESP2 parsing, pipelining, cancellation, connection loss.

Real Redis where it can say something (``redis_url``); a scripted server (:class:`RawServer`)
for what a real one never does: replies split at will, garbage, a dropped connection, the
handshake a password makes.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from redis.asyncio import Redis
from redis.exceptions import AuthenticationError, NoScriptError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError

from bff.ratelimit import RedisStore
from bff.ratelimit.resp import RespClient, _Protocol, pack

# -- a scripted server ----------------------------------------------------------------------


class RawServer:
    """A server that records what each connection sends and writes what the test tells it."""

    def __init__(self) -> None:
        self.received: list[bytearray] = []
        self.writers: list[asyncio.StreamWriter] = []
        self._server: asyncio.Server | None = None
        self._changed = asyncio.Event()
        self.port = 0
        self.path: str | None = None

    async def start(self, *, unix: bool = False) -> RawServer:
        if unix:
            self.path = os.path.join(tempfile.mkdtemp(prefix="bff-resp-"), "redis.sock")
            self._server = await asyncio.start_unix_server(self._serve, self.path)
        else:
            self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
            self.port = self._server.sockets[0].getsockname()[1]
        return self

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        data = bytearray()
        self.received.append(data)
        self.writers.append(writer)
        self._changed.set()
        try:
            while chunk := await reader.read(65536):
                data += chunk
                self._changed.set()
        except (asyncio.CancelledError, ConnectionError):
            pass  # the test is over, or the client went away

    async def until_received(self, expected: bytes, connection: int = -1) -> None:
        """Wait until ``connection`` has sent exactly ``expected`` so far."""
        async with asyncio.timeout(5):
            while not self._has(expected, connection):
                self._changed.clear()
                await self._changed.wait()

    def _has(self, expected: bytes, connection: int) -> bool:
        if len(self.received) <= connection or not self.received:
            return False
        return bytes(self.received[connection]) == expected

    async def reply(self, data: bytes, connection: int = -1) -> None:
        writer = self.writers[connection]
        writer.write(data)
        await writer.drain()

    async def close(self) -> None:
        for writer in self.writers:
            writer.close()
        if self._server is not None:
            self._server.close()


@pytest.fixture
async def raw() -> AsyncIterator[RawServer]:
    server = await RawServer().start()
    yield server
    await server.close()


@pytest.fixture
async def raw_client(raw: RawServer) -> AsyncIterator[RespClient]:
    client = RespClient.from_url(raw.url)
    yield client
    await client.aclose()


PING = pack(b"PING")


def ping(n: int = 1) -> bytes:
    return PING * n


# -- parsing --------------------------------------------------------------------------------

REPLIES: list[tuple[bytes, Any]] = [
    (b":42\r\n", 42),
    (b":-3\r\n", -3),
    (b"+OK\r\n", b"OK"),
    (b"$5\r\nhello\r\n", b"hello"),
    (b"$0\r\n\r\n", b""),
    (b"$4\r\na\r\nb\r\n", b"a\r\nb"),  # a bulk string may hold CRLF
    (b"$-1\r\n", None),
    (b"*-1\r\n", None),
    (b"*0\r\n", []),
    (b"*5\r\n:1\r\n:10\r\n:9\r\n:6000\r\n:0\r\n", [1, 10, 9, 6000, 0]),  # a decision
    (b"*3\r\n:1\r\n*2\r\n$1\r\na\r\n$-1\r\n+x\r\n", [1, [b"a", None], b"x"]),
]


class FakeTransport:
    def __init__(self) -> None:
        self.written = bytearray()
        self.aborted = False

    def write(self, data: bytes) -> None:
        self.written += data

    def abort(self) -> None:
        self.aborted = True


def protocol() -> tuple[_Protocol, FakeTransport]:
    proto, transport = _Protocol(), FakeTransport()
    proto.connection_made(transport)  # type: ignore[arg-type]
    return proto, transport


@pytest.mark.parametrize("chunk", [None, 1, 2, 3, 7])
async def test_every_reply_type_parses_whole_or_split_across_packets(chunk: int | None) -> None:
    proto, _ = protocol()
    waiters = [proto.send(PING) for _ in REPLIES]
    stream = b"".join(reply for reply, _ in REPLIES)
    step = chunk or len(stream)
    for i in range(0, len(stream), step):
        proto.data_received(stream[i : i + step])
    assert [w.result() for w in waiters] == [value for _, value in REPLIES]
    assert proto.open and not proto._waiters and proto._buffer == b""


async def test_error_replies_raise_typed_errors_and_an_error_in_an_array_is_an_element() -> None:
    proto, _ = protocol()
    waiters = [proto.send(PING) for _ in range(4)]
    proto.data_received(
        b"-NOSCRIPT No matching script. Please use EVAL.\r\n"
        b"-ERR wrong number of arguments\r\n"
        b"*2\r\n-ERR inner\r\n:1\r\n"
        b":7\r\n"
    )
    with pytest.raises(NoScriptError, match="NOSCRIPT"):
        waiters[0].result()
    with pytest.raises(ResponseError) as info:
        waiters[1].result()
    assert not isinstance(info.value, NoScriptError)
    inner, one = waiters[2].result()
    assert isinstance(inner, ResponseError) and str(inner) == "ERR inner" and one == 1
    assert waiters[3].result() == 7 and proto.open


@pytest.mark.parametrize(
    "garbage", [b"?what\r\n", b":notanumber\r\n", b"$3\r\nabcXY", b"+OK\r\n+OK\r\n"]
)
async def test_a_protocol_error_fails_every_waiter_and_drops_the_connection(
    garbage: bytes,
) -> None:
    proto, transport = protocol()
    waiter = proto.send(PING)
    proto.data_received(garbage)
    if garbage == b"+OK\r\n+OK\r\n":  # the second reply nobody asked for
        assert waiter.result() == b"OK"
    else:
        with pytest.raises(RedisConnectionError, match="protocol error"):
            waiter.result()
    assert transport.aborted and not proto.open


# -- a real Redis ---------------------------------------------------------------------------


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[RespClient]:
    c = RespClient.from_url(redis_url)
    yield c
    await c.aclose()


async def test_concurrent_commands_are_pipelined_and_answered_in_order(
    client: RespClient, redis_url: str
) -> None:
    replies = await asyncio.gather(*(client.send(pack(b"ECHO", b"%d" % i)) for i in range(300)))
    assert replies == [b"%d" % i for i in range(300)]
    protocol = client._protocol
    again = await asyncio.gather(*(client.send(pack(b"ECHO", b"x%d" % i)) for i in range(50)))
    assert again == [b"x%d" % i for i in range(50)] and client._protocol is protocol  # one


async def test_noscript_is_a_noscript_error_and_the_connection_goes_on(
    client: RespClient,
) -> None:
    with pytest.raises(NoScriptError):
        await client.send(pack(b"EVALSHA", b"0" * 40, b"0"))
    with pytest.raises(ResponseError):
        await client.send(pack(b"NOSUCHCOMMAND"))
    assert await client.send(PING) == b"PONG"
    sha = await client.send(pack(b"SCRIPT", b"LOAD", b"return {1, 'a', false}"))
    assert await client.send(pack(b"EVALSHA", sha, b"0")) == [1, b"a", None]


async def test_the_database_comes_from_the_url(
    client: RespClient, redis_url: str, key_prefix: str
) -> None:
    parts = urlsplit(redis_url)
    db = int(parts.path.strip("/") or 0)
    other = (db + 1) % 16
    key = f"{key_prefix}db".encode()
    assert client.db == db
    assert await client.send(pack(b"SET", key, b"here", b"PX", b"60000")) == b"OK"
    there = RespClient.from_url(urlunsplit(parts._replace(path=f"/{other}")))
    redis = Redis.from_url(redis_url)
    try:
        assert await redis.get(key) == b"here"
        assert await there.send(pack(b"GET", key)) is None  # another database
    finally:
        await redis.delete(key)
        await redis.aclose()
        await there.aclose()


async def test_a_refused_connection_is_a_connection_error() -> None:
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    c = RespClient.from_url(f"redis://127.0.0.1:{port}")
    with pytest.raises(RedisConnectionError):
        await c.send(PING)


# -- the scripted server --------------------------------------------------------------------


async def test_a_cancelled_waiter_does_not_desynchronize_later_replies(
    raw: RawServer, raw_client: RespClient
) -> None:
    first = asyncio.ensure_future(raw_client.send(pack(b"ECHO", b"a")))
    await raw.until_received(pack(b"ECHO", b"a"))
    second = raw_client.send(pack(b"ECHO", b"b"))
    await raw.until_received(pack(b"ECHO", b"a") + pack(b"ECHO", b"b"))
    first.cancel()  # as the store's asyncio.timeout does
    await asyncio.sleep(0)
    assert first.cancelled()
    await raw.reply(b"$1\r\na\r\n$1")  # the cancelled one's reply, and half the next
    await raw.reply(b"\r\nb\r\n")
    assert await second == b"b"
    third = raw_client.send(PING)
    await raw.reply(b"+PONG\r\n")
    assert await third == b"PONG"
    assert len(raw.writers) == 1  # the same connection throughout


async def test_connection_loss_fails_pending_waiters_then_the_next_send_reconnects(
    raw: RawServer, raw_client: RespClient
) -> None:
    waiters = [asyncio.ensure_future(raw_client.send(PING)) for _ in range(3)]
    await raw.until_received(ping(3))
    await raw.reply(b"+PONG\r\n")  # the first is answered
    raw.writers[0].close()
    assert await waiters[0] == b"PONG"
    for waiter in waiters[1:]:
        with pytest.raises(RedisConnectionError):
            await waiter
    again = asyncio.ensure_future(raw_client.send(PING))
    await raw.until_received(PING, connection=1)
    await raw.reply(b"+PONG\r\n", connection=1)
    assert await again == b"PONG" and len(raw.writers) == 2


async def test_garbage_from_the_server_drops_the_connection_then_it_reconnects(
    raw: RawServer, raw_client: RespClient
) -> None:
    waiter = asyncio.ensure_future(raw_client.send(PING))
    await raw.until_received(PING)
    await raw.reply(b"!oops\r\n")
    with pytest.raises(RedisConnectionError, match="protocol error"):
        await waiter
    again = asyncio.ensure_future(raw_client.send(PING))
    await raw.until_received(PING, connection=1)
    await raw.reply(b"+PONG\r\n", connection=1)
    assert await again == b"PONG"


@pytest.mark.parametrize(
    ("credentials", "auth"),
    [(":s3cret@", pack(b"AUTH", b"s3cret")), ("bff:p%40ss@", pack(b"AUTH", b"bff", b"p@ss"))],
)
async def test_auth_and_select_from_the_url_go_first(
    raw: RawServer, credentials: str, auth: bytes
) -> None:
    c = RespClient.from_url(f"redis://{credentials}127.0.0.1:{raw.port}/3")
    try:
        waiter = asyncio.ensure_future(c.send(PING))
        handshake = auth + pack(b"SELECT", b"3")
        await raw.until_received(handshake)
        await raw.reply(b"+OK\r\n+OK\r\n")
        await raw.until_received(handshake + PING)  # only once the handshake succeeded
        await raw.reply(b"+PONG\r\n")
        assert await waiter == b"PONG"
    finally:
        await c.aclose()


async def test_a_refused_password_is_an_authentication_error(raw: RawServer) -> None:
    c = RespClient.from_url(f"redis://:wrong@127.0.0.1:{raw.port}")
    try:
        waiter = asyncio.ensure_future(c.send(PING))
        await raw.until_received(pack(b"AUTH", b"wrong"))
        await raw.reply(b"-WRONGPASS invalid username-password pair\r\n")
        with pytest.raises(AuthenticationError):  # a ConnectionError: Redis is unusable
            await waiter
        assert raw.received[0] == pack(b"AUTH", b"wrong")  # the command was never sent
    finally:
        await c.aclose()


async def test_a_unix_socket_url() -> None:
    server = await RawServer().start(unix=True)
    c = RespClient.from_url(f"unix://{server.path}?db=2")
    try:
        waiter = asyncio.ensure_future(c.send(PING))
        await server.until_received(pack(b"SELECT", b"2"))
        await server.reply(b"+OK\r\n")
        await server.until_received(pack(b"SELECT", b"2") + PING)
        await server.reply(b"+PONG\r\n")
        assert await waiter == b"PONG"
    finally:
        await c.aclose()
        await server.close()


# -- which client the store uses ------------------------------------------------------------


def test_urls() -> None:
    c = RespClient.from_url("redis://u%3Ax:p%40w@redis.internal:6380/4")
    assert (c.host, c.port, c.db, c.username, c.password) == (
        "redis.internal",
        6380,
        4,
        "u:x",
        "p@w",
    )
    c = RespClient.from_url("redis://localhost")
    assert (c.host, c.port, c.db, c.username, c.password) == ("localhost", 6379, 0, None, None)
    c = RespClient.from_url("unix:///run/redis.sock?db=5")
    assert (c.path, c.db) == ("/run/redis.sock", 5)
    assert not RespClient.supports("rediss://redis.internal:6380/0")
    with pytest.raises(ValueError):
        RespClient.from_url("rediss://redis.internal")


async def test_the_store_keeps_redis_py_for_tls_only() -> None:
    stores = [
        RedisStore.from_url("redis://127.0.0.1:1/2"),
        RedisStore(Redis.from_url("redis://:pw@127.0.0.1:1/3")),
        RedisStore.from_url("rediss://127.0.0.1:1/0"),
    ]
    try:
        first, second, tls = stores
        assert first.resp is not None and first.resp.db == 2
        assert second.resp is not None and (second.resp.db, second.resp.password) == (3, "pw")
        assert tls.resp is None
    finally:
        for store in stores:
            await store.aclose()
