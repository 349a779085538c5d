"""Response compression: negotiation, thresholds, pass-through, and streaming kept."""

from __future__ import annotations

import asyncio
import gzip
import zlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import brotli
import orjson
import pytest

from bff.asgi import Message, Receive, Scope, Send
from bff.edge.compression import Compression, CompressionLayer, negotiate_encoding
from bff.gateway import Gateway
from tests.bff.graphql.delivery_support import client_for, own_gateway
from tests.conftest import SampleServices
from tests.support.servers import ThreadedServer

BIG = orjson.dumps({"items": [{"id": i, "name": f"Product {i}"} for i in range(200)]})


def answer(
    body: bytes = BIG, headers: list[tuple[bytes, bytes]] | None = None, status: int = 200
) -> Any:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        hdrs = headers if headers is not None else [(b"content-type", b"application/json")]
        hdrs = [*hdrs, (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": hdrs})
        await send({"type": "http.response.body", "body": body})

    return app


async def call(
    app: Any, accept_encoding: str | None = "gzip", method: str = "GET"
) -> tuple[dict[str, Any], list[Message]]:
    headers = [(b"accept-encoding", accept_encoding.encode())] if accept_encoding else []
    scope = {"type": "http", "method": method, "path": "/", "headers": headers}
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b""}

    async def send(message: Message) -> None:
        sent.append(message)

    await CompressionLayer(app)(scope, receive, send)
    start = sent[0]
    return {k.decode(): v.decode() for k, v in start["headers"]}, sent[1:]


def body_of(parts: list[Message]) -> bytes:
    return b"".join(p.get("body", b"") for p in parts)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, "identity"),
        ("", "identity"),
        ("gzip", "gzip"),
        ("gzip, deflate, br", "br"),
        ("br;q=0.5, gzip", "gzip"),
        ("gzip;q=0, br;q=0", "identity"),
        ("*", "br"),
        ("*;q=0.1, gzip;q=0.5", "gzip"),
        ("br;q=0, *", "gzip"),
        ("x-gzip", "gzip"),
        ("deflate", "identity"),
        ("gzip;q=abc", "identity"),
        ("identity", "identity"),
    ],
)
def test_negotiation(header: str | None, expected: str) -> None:
    assert negotiate_encoding(header.encode() if header is not None else None) == expected
    if expected == "br":
        assert negotiate_encoding(header.encode() if header else None, brotli=False) == "gzip"


async def test_big_json_is_gzipped() -> None:
    headers, parts = await call(answer())
    assert headers["content-encoding"] == "gzip"
    assert headers["vary"] == "Accept-Encoding"
    data = body_of(parts)
    assert int(headers["content-length"]) == len(data) < len(BIG) / 4
    assert gzip.decompress(data) == BIG


async def test_br_when_preferred() -> None:
    headers, parts = await call(answer(), "br, gzip")
    assert headers["content-encoding"] == "br"
    assert brotli.decompress(body_of(parts)) == BIG


async def test_small_answers_stay_as_they_are() -> None:
    headers, parts = await call(answer(b'{"data": {"a": 1}}'))
    assert "content-encoding" not in headers and "vary" not in headers
    assert body_of(parts) == b'{"data": {"a": 1}}'


async def test_a_client_that_does_not_ask_gets_identity_and_vary() -> None:
    headers, parts = await call(answer(), None)
    assert "content-encoding" not in headers
    assert headers["vary"] == "Accept-Encoding"  # caches keep the variants apart
    assert body_of(parts) == BIG


@pytest.mark.parametrize(
    "headers",
    [
        [(b"content-type", b"application/json"), (b"content-encoding", b"gzip")],
        [(b"content-type", b"image/png")],
        [(b"content-type", b"application/cbor")],
        [(b"content-type", b"text/event-stream")],
        [(b"content-type", b"application/json"), (b"cache-control", b"no-transform")],
        [],
    ],
)
async def test_what_is_never_compressed(headers: list[tuple[bytes, bytes]]) -> None:
    out, parts = await call(answer(BIG, headers))
    already = dict(headers).get(b"content-encoding")
    assert out.get("content-encoding") == (already.decode() if already else None)
    assert body_of(parts) == BIG  # untouched, byte for byte


async def test_ranges_and_head_pass_through() -> None:
    out, parts = await call(answer(status=206))
    assert "content-encoding" not in out and body_of(parts) == BIG
    out, _ = await call(answer(), method="HEAD")
    assert "content-encoding" not in out


async def test_vary_is_merged_and_a_strong_etag_weakened() -> None:
    headers = [
        (b"content-type", b"application/json; charset=utf-8"),
        (b"vary", b"Accept"),
        (b"etag", b'"abc"'),
    ]
    out, _ = await call(answer(BIG, headers))
    assert out["vary"] == "Accept, Accept-Encoding"
    assert out["etag"] == 'W/"abc"'


async def test_streaming_is_kept_chunk_by_chunk() -> None:
    """Each chunk goes out compressed as soon as it comes in: nothing is buffered."""
    release = asyncio.Event()
    seen_first = asyncio.Event()
    chunk = orjson.dumps([{"n": i} for i in range(50)])

    async def streaming(scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await release.wait()  # the upstream is slow: the first chunk must already be out
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)
        if message["type"] == "http.response.body":
            seen_first.set()

    scope = {
        "type": "http",
        "method": "GET",
        "path": "/",
        "headers": [(b"accept-encoding", b"gzip")],
    }

    async def receive() -> Message:
        return {"type": "http.request", "body": b""}

    task = asyncio.ensure_future(CompressionLayer(streaming)(scope, receive, send))
    await asyncio.wait_for(seen_first.wait(), 2)
    first = sent[1]
    assert first["more_body"] is True and first["body"]
    # A sync flush: the client can already decode the first chunk.
    assert zlib.decompressobj(31).decompress(first["body"]) == chunk
    release.set()
    await task
    headers = dict(sent[0]["headers"])
    assert headers[b"content-encoding"] == b"gzip" and b"content-length" not in headers
    assert gzip.decompress(body_of(sent[1:])) == chunk * 2


def test_compressing_whole_bodies() -> None:
    c = Compression()
    assert gzip.decompress(c.compress(BIG, "gzip")) == BIG
    assert brotli.decompress(c.compress(BIG, "br")) == BIG
    with pytest.raises(ValueError):
        c.compress(BIG, "deflate")


# -- through the gateway: GraphQL answers and a streamed passthrough ------------------------------


ROW = orjson.dumps({"id": 1, "name": "x" * 100}) + b","
CHUNK = ROW * (65536 // len(ROW))


def _upstream_app() -> Any:
    """/big: a streamed 2 MB JSON body in 64 KB chunks; /gz: an already gzipped body."""
    chunk = CHUNK

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if scope["path"].endswith("/gz"):
            data = gzip.compress(BIG)
            headers = [
                (b"content-type", b"application/json"),
                (b"content-encoding", b"gzip"),
                (b"content-length", str(len(data)).encode()),
            ]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": data})
            return
        headers = [(b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        for _ in range(32):
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    return app


@pytest.fixture(scope="module")
def upstream() -> Iterator[ThreadedServer]:
    with ThreadedServer(_upstream_app(), lifespan="off") as server:
        yield server


@pytest.fixture(scope="module")
async def gw(services: SampleServices, upstream: ThreadedServer) -> AsyncIterator[Gateway]:
    route = {"id": "files", "path": "/api/files", "upstream": "files", "strip_prefix": "/api"}
    overrides = {
        "upstreams": {"files": {"targets": [upstream.url]}},
        "routes": [route],
    }
    async with own_gateway(services.env, overrides) as gateway:
        yield gateway


async def test_graphql_answers_are_compressed(gw: Gateway) -> None:
    async with client_for(gw) as client:
        query = "{ products(limit: 50) { items { id name description } } }"
        r = await client.post(
            "/graphql/web", json={"query": query}, headers={"accept-encoding": "br"}
        )
        assert r.headers["content-encoding"] == "br"
        assert len(r.json()["data"]["products"]["items"]) == 50
        r = await client.post("/graphql/web", json={"query": "{ product(id: 1) { id } }"})
        assert "content-encoding" not in r.headers  # under 1 KB


async def test_a_passthrough_stream_is_compressed_as_it_flows(gw: Gateway) -> None:
    async with client_for(gw) as client:
        async with client.stream("GET", "/api/files/big", headers={"accept-encoding": "gzip"}) as r:
            assert r.status_code == 200
            assert r.headers["content-encoding"] == "gzip"
            assert "content-length" not in r.headers
            size = 0
            decoder = zlib.decompressobj(31)
            async for raw in r.aiter_raw():
                size += len(decoder.decompress(raw))
        assert size == 32 * len(CHUNK)


async def test_an_upstreams_gzip_passes_through_untouched(gw: Gateway) -> None:
    async with client_for(gw) as client:
        r = await client.get("/api/files/gz", headers={"accept-encoding": "gzip, br"})
        assert r.headers["content-encoding"] == "gzip"  # once, not twice
        assert r.content == BIG
