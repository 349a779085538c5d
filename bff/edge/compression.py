"""Response compression at the edge: gzip, and br when the ``brotli`` package is installed.

A pure-ASGI layer. A response is compressed when the client's ``Accept-Encoding`` allows it, its
type is text or JSON (``application/json``, ``*+json``, ``text/*`` except event streams,
JavaScript, XML), and it is big enough: a body that arrives whole is compressed from
``min_bytes`` (1 KB) up, a streamed body (no ``Content-Length``, more than one chunk) always.
Never compressed: a body that already has a ``Content-Encoding`` (an upstream's gzip passes
through untouched), ``Cache-Control: no-transform``, ranges (206), and bodiless answers.

Streaming is kept: each chunk is compressed and flushed as it arrives, so a passthrough body is
never held in memory, and the first bytes reach the client as soon as the upstream sends them.
Every compressible response says ``Vary: Accept-Encoding`` (whether or not this client got it
compressed), so shared caches keep the variants apart; a strong ``ETag`` of a compressed
body becomes weak, since the bytes differ from the identity representation's.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bff.asgi import ASGIApp, Message, Receive, Scope, Send, header

__all__ = ["BROTLI_AVAILABLE", "Compression", "CompressionLayer", "negotiate_encoding"]

try:  # the optional extra: pip install 'bff-gateway[brotli]'
    import brotli as _brotli
except ImportError:  # pragma: no cover - depends on the installation
    _brotli = None

BROTLI_AVAILABLE = _brotli is not None

_COMPRESSIBLE_PREFIXES = (b"text/", b"application/json", b"application/graphql-response+json")
_COMPRESSIBLE_EXACT = frozenset(
    {
        b"application/javascript",
        b"application/xml",
        b"application/problem+json",
        b"image/svg+xml",
    }
)
_NEVER = frozenset({b"text/event-stream"})


def _compressible(content_type: bytes | None) -> bool:
    if not content_type:
        return False
    media = content_type.split(b";", 1)[0].strip().lower()
    if media in _NEVER:
        return False
    return (
        media.startswith(_COMPRESSIBLE_PREFIXES)
        or media in _COMPRESSIBLE_EXACT
        or media.endswith(b"+json")
    )


def negotiate_encoding(accept_encoding: bytes | None, *, brotli: bool = BROTLI_AVAILABLE) -> str:
    """The coding to answer with: ``br``, ``gzip`` or ``identity`` (q-values honoured; on a
    tie br wins, being smaller)."""
    if not accept_encoding:
        return "identity"
    offers = {"gzip": 0.0, "br": 0.0}
    named: set[str] = set()
    star: float | None = None
    for part in accept_encoding.decode("latin-1").split(","):
        coding, _, params = part.strip().partition(";")
        coding = coding.strip().lower()
        q = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if coding == "x-gzip":
            coding = "gzip"
        if coding in offers:
            offers[coding] = max(offers[coding], q)
            named.add(coding)
        elif coding == "*":
            star = q
    if star is not None:  # "*" stands for every coding the header does not name
        for coding in offers:
            if coding not in named:
                offers[coding] = star
    if not brotli:
        offers["br"] = 0.0
    best = max(("br", "gzip"), key=lambda c: offers[c])
    return best if offers[best] > 0 else "identity"


class _Stream:
    """One response's compressor: ``chunk`` for each body part, ``finish`` at the end."""

    __slots__ = ("chunk", "finish")

    def __init__(self, chunk: Callable[[bytes], bytes], finish: Callable[[], bytes]) -> None:
        self.chunk = chunk
        self.finish = finish


@dataclass(frozen=True)
class Compression:
    """How much to compress (``compression:`` in the configuration)."""

    min_bytes: int = 1024
    gzip_level: int = 6
    brotli_quality: int = 4

    def negotiate(self, accept_encoding: bytes | None) -> str:
        return negotiate_encoding(accept_encoding)

    def compress(self, body: bytes, encoding: str) -> bytes:
        """``body`` compressed whole with ``encoding`` (``gzip`` or ``br``)."""
        stream = self.stream(encoding)
        return stream.chunk(body) + stream.finish()

    def stream(self, encoding: str) -> _Stream:
        """A compressor that flushes after each chunk (nothing held back)."""
        if encoding == "br":
            assert _brotli is not None
            brotli_compressor = _brotli.Compressor(quality=self.brotli_quality)

            def br_chunk(data: bytes) -> bytes:
                return bytes(brotli_compressor.process(data)) + bytes(brotli_compressor.flush())

            return _Stream(br_chunk, lambda: bytes(brotli_compressor.finish()))
        if encoding != "gzip":
            raise ValueError(f"unsupported coding {encoding!r}")
        gzip_compressor = zlib.compressobj(self.gzip_level, zlib.DEFLATED, 31)  # 31: gzip format

        def gzip_chunk(data: bytes) -> bytes:
            return gzip_compressor.compress(data) + gzip_compressor.flush(zlib.Z_SYNC_FLUSH)

        return _Stream(gzip_chunk, gzip_compressor.flush)


def _vary_with_accept_encoding(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    for i, (name, value) in enumerate(headers):
        if name.lower() == b"vary":
            tokens = [t.strip().lower() for t in value.split(b",")]
            if b"accept-encoding" in tokens or b"*" in tokens:
                return headers
            headers[i] = (name, value + b", Accept-Encoding")
            return headers
    headers.append((b"vary", b"Accept-Encoding"))
    return headers


class CompressionLayer:
    """Compresses responses on the way out (see the module docstring)."""

    def __init__(self, app: ASGIApp, compression: Compression | None = None) -> None:
        self.app = app
        self.compression = compression or Compression()
        self._codings: dict[bytes | None, str] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] == "HEAD":
            await self.app(scope, receive, send)
            return
        responder = _Responder(send, self, scope)
        await self.app(scope, receive, responder.send)

    def coding_for(self, scope: Scope) -> str:
        """The coding to answer ``scope`` with (parsed once per distinct header value)."""
        value = header(scope, b"accept-encoding")
        coding = self._codings.get(value)
        if coding is None:
            coding = negotiate_encoding(value)
            if len(self._codings) >= 256:  # a bound against clients inventing values
                self._codings.clear()
            self._codings[value] = coding
        return coding


class _Responder:
    __slots__ = (
        "compression",
        "encoding",
        "layer",
        "scope",
        "send_next",
        "start",
        "state",
        "stream",
    )

    # state: None = undecided (holding the start message), "pass" or "compress"
    def __init__(self, send: Send, layer: CompressionLayer, scope: Scope) -> None:
        self.send_next = send
        self.layer = layer
        self.scope = scope
        self.compression = layer.compression
        self.encoding = "identity"
        self.start: Message | None = None
        self.state: str | None = None
        self.stream: Any = None

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            self._start(message)
            if self.state == "pass":
                await self.send_next(message)
            return
        if kind != "http.response.body" or self.state == "pass":
            await self.send_next(message)
            return
        if self.state is None:
            await self._decide(message)
            return
        await self._compress(message)

    def _start(self, message: Message) -> None:
        headers = message.get("headers", ())
        self.start = message
        status = message["status"]
        named = dict(headers)  # ASGI response header names are lower case
        content_type = named.get(b"content-type")
        content_length = named.get(b"content-length")
        coding = named.get(b"content-encoding")
        cache_control = named.get(b"cache-control")
        if (
            status < 200
            or status in (204, 206, 304)
            or coding is not None
            or not _compressible(content_type)
            or (cache_control is not None and b"no-transform" in cache_control.lower())
        ):
            self.state = "pass"
            return
        if content_length is not None:
            try:
                small = int(content_length) < self.compression.min_bytes
            except ValueError:
                small = True
            if small:
                self.state = "pass"
                return
        # Compressible: the representation varies with Accept-Encoding from here on.
        headers = message["headers"] = list(headers)
        _vary_with_accept_encoding(headers)
        self.encoding = self.layer.coding_for(self.scope)
        if self.encoding == "identity":
            self.state = "pass"

    async def _decide(self, message: Message) -> None:
        assert self.start is not None
        body = message.get("body", b"")
        more = message.get("more_body", False)
        headers: list[tuple[bytes, bytes]] = self.start["headers"]
        if not more and len(body) < self.compression.min_bytes:
            self.state = "pass"
            await self.send_next(self.start)
            await self.send_next(message)
            return
        self.state = "compress"
        self.stream = self.compression.stream(self.encoding)
        out = [(n, v) for n, v in headers if n.lower() != b"content-length"]
        out.append((b"content-encoding", self.encoding.encode()))
        for i, (name, value) in enumerate(out):
            if name.lower() == b"etag" and not value.startswith(b"W/"):
                out[i] = (name, b"W/" + value)
        if not more:
            data = self.stream.chunk(body) + self.stream.finish()
            out.append((b"content-length", str(len(data)).encode()))
            self.start["headers"] = out
            await self.send_next(self.start)
            await self.send_next({"type": "http.response.body", "body": data})
            return
        self.start["headers"] = out
        await self.send_next(self.start)
        await self._compress(message)

    async def _compress(self, message: Message) -> None:
        body = message.get("body", b"")
        more = message.get("more_body", False)
        data = self.stream.chunk(body) if body else b""
        if not more:
            data += self.stream.finish()
        await self.send_next({"type": "http.response.body", "body": data, "more_body": more})
