"""Connection pools: the last stage of every upstream chain.

Three interchangeable ``httpx.AsyncBaseTransport`` implementations sit behind the same httpx
API: the gateway's own HTTP/1.1 client (:class:`~bff.upstream.http1.Http1Transport`, the
default), :class:`AiohttpTransport`, which hands the connection work to aiohttp's connector, and
httpx's own pool. httpx's pool rescans its connections for every queued request and loses
throughput under concurrency (encode/httpx#3215); aiohttp's request machinery costs about 90 us
of CPU per call; docs/performance.md has the figures. All keep bytes verbatim: the URL is not
re-quoted (the request target travels in httpcore's ``target`` extension) and bodies are not
decompressed.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Callable, Mapping, Sequence
from typing import Literal

import aiohttp
import httpx
from yarl import URL

from bff.upstream.http1 import Http1Transport
from bff.upstream.responses import BufferedResponse, StreamedResponse
from bff.upstream.slots import FairSlots

__all__ = [
    "AiohttpTransport",
    "BufferedResponse",
    "StreamedResponse",
    "TransportKind",
    "make_transport",
]

TransportKind = Literal["native", "aiohttp", "httpx"]


class _AiohttpStream(httpx.AsyncByteStream):
    __slots__ = ("_release_slot", "_resp")

    def __init__(
        self, resp: aiohttp.ClientResponse, release_slot: Callable[[], None] | None = None
    ) -> None:
        self._resp = resp
        self._release_slot = release_slot

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._resp.content.iter_any():
                yield chunk
        except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError) as exc:
            raise httpx.ReadError(str(exc)) from exc
        except TimeoutError as exc:
            raise httpx.ReadTimeout(str(exc)) from exc

    async def aclose(self) -> None:
        self._resp.release()
        if self._release_slot is not None:
            release, self._release_slot = self._release_slot, None
            release()


def _client_error(exc: BaseException) -> BaseException:
    """The httpx exception for an aiohttp one (the same exception when there is none)."""
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return httpx.ConnectTimeout(str(exc) or "connect timeout")
    if isinstance(exc, aiohttp.ServerTimeoutError | TimeoutError):
        return httpx.ReadTimeout(str(exc) or "read timeout")
    if isinstance(exc, aiohttp.ClientConnectorError):
        return httpx.ConnectError(str(exc))
    if isinstance(
        exc, aiohttp.ServerDisconnectedError | aiohttp.ClientOSError | aiohttp.ClientPayloadError
    ):
        return httpx.ReadError(str(exc))
    if isinstance(exc, aiohttp.ClientError):
        return httpx.RemoteProtocolError(str(exc))
    return exc


class AiohttpTransport(httpx.AsyncBaseTransport):
    """An httpx transport backed by an ``aiohttp`` connection pool.

    Timeouts come from the request (httpx puts them in ``request.extensions["timeout"]``), and
    aiohttp's exceptions are translated to httpx's, so callers see exactly the httpx API.
    """

    def __init__(
        self,
        *,
        max_connections: int = 100,
        max_keepalive_connections: int | None = None,
        keepalive_expiry: float = 30.0,
    ) -> None:
        self._limit = max_connections
        self._keepalive = keepalive_expiry
        self._session: aiohttp.ClientSession | None = None
        # aiohttp's connector hands a freed connection to the newest request rather than the
        # longest waiting one: admission goes through a FIFO in front of it.
        self._slots = FairSlots(max_connections)

    def _get_session(self) -> aiohttp.ClientSession:
        # Created lazily: a ClientSession binds to the running loop, and transports are built
        # before the server's loop exists when the gateway is configured.
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=self._limit,
                limit_per_host=0,
                keepalive_timeout=self._keepalive,
                ttl_dns_cache=300,
                enable_cleanup_closed=False,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                auto_decompress=False,
                skip_auto_headers=("User-Agent", "Accept-Encoding", "Accept", "Content-Type"),
                cookie_jar=aiohttp.DummyCookieJar(),
                timeout=aiohttp.ClientTimeout(total=None),
            )
        return self._session

    async def _start(
        self,
        session: aiohttp.ClientSession,
        method: str,
        url: URL,
        headers: Sequence[tuple[str, str]],
        data: object,
        timeout: aiohttp.ClientTimeout,
        pool_timeout: float | None,
    ) -> aiohttp.ClientResponse:
        """Take a pool slot and send; the answer's head is read, its body is not. The slot is
        released on failure here, else when the response's stream is closed."""
        await self._slots.acquire(pool_timeout)
        try:
            return await session.request(
                method,
                url,
                headers=headers,
                data=data,
                timeout=timeout,
                allow_redirects=False,
                compress=False,
            )
        except BaseException as exc:
            self._slots.release()
            mapped = _client_error(exc)
            if mapped is exc:
                raise
            raise mapped from exc

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        session = self._get_session()
        ext = request.extensions.get("timeout") or {}
        timeout = _client_timeout(ext)
        raw_headers = request.headers.raw
        data: object
        if isinstance(request.stream, httpx.ByteStream):
            data = request.content or None
        elif isinstance(request.stream, httpx.AsyncByteStream):
            data = _iter_request(request.stream)
            # aiohttp frames a streamed body itself (chunked unless Content-Length is given).
            raw_headers = [h for h in raw_headers if h[0].lower() != b"transfer-encoding"]
        else:
            raise TypeError("synchronous request bodies are not supported")
        target = request.extensions.get("target")
        if target is None:
            url = URL(str(request.url), encoded=True)
        else:  # httpcore's request-target extension: the path and query, sent as they are
            origin = request.url
            url = URL(
                f"{origin.scheme}://{origin.netloc.decode('ascii')}{target.decode('latin-1')}",
                encoded=True,
            )
        resp = await self._start(
            session,
            request.method,
            url,
            [(k.decode("latin-1"), v.decode("latin-1")) for k, v in raw_headers],
            data,
            timeout,
            ext.get("pool"),
        )
        return httpx.Response(
            status_code=resp.status,
            headers=resp.raw_headers,
            stream=_AiohttpStream(resp, self._slots.release),
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": (resp.reason or "").encode()},
        )

    async def fetch(
        self,
        method: str,
        origin: str,
        target: bytes,
        headers: Sequence[tuple[str, str]],
        body: bytes | None,
        timeouts: Mapping[str, float | None],
    ) -> httpx.Response:
        """Send a request whose body is in memory and read the whole answer.

        The same exchange as :meth:`handle_async_request` without building httpx's request
        and response models (about 50 us per call, a tenth of a small GraphQL query's cost):
        the answer is a :class:`BufferedResponse`, an ``httpx.Response`` whose headers are
        parsed only if read. ``origin`` is ``scheme://host:port`` and ``target`` the path and
        query, sent byte for byte.
        """
        session = self._get_session()
        timeout = _client_timeout(timeouts)
        await self._slots.acquire(timeouts.get("pool"))
        try:
            async with session.request(
                method,
                URL(origin + target.decode("latin-1"), encoded=True),
                headers=headers,
                data=body,
                timeout=timeout,
                allow_redirects=False,
                compress=False,
            ) as resp:
                content = await resp.read()
                return BufferedResponse(resp.status, resp.raw_headers, content)
        except BaseException as exc:
            mapped = _client_error(exc)
            if mapped is exc:
                raise
            raise mapped from exc
        finally:
            self._slots.release()

    async def open(
        self,
        method: str,
        origin: str,
        target: bytes,
        headers: Sequence[tuple[str, str]] | Sequence[tuple[bytes, bytes]],
        body: bytes | AsyncIterable[bytes] | None,
        timeouts: Mapping[str, float | None],
    ) -> httpx.Response:
        """Send a request and return as soon as the answer's head arrives, body unread.

        :meth:`fetch`'s counterpart for streams (the proxy): the body may itself be an async
        iterable, and the answer is a :class:`StreamedResponse` whose ``stream`` yields the
        upstream's chunks as they come; closing it returns the connection.
        """
        session = self._get_session()
        pool = timeouts.get("pool")
        timeout = _client_timeout(timeouts)
        data: object = body if body is None or isinstance(body, bytes) else _chunks(body)
        resp = await self._start(
            session,
            method,
            URL(origin + target.decode("latin-1"), encoded=True),
            _str_headers(headers),
            data,
            timeout,
            pool,
        )
        return StreamedResponse(
            resp.status, resp.raw_headers, _AiohttpStream(resp, self._slots.release)
        )

    async def aclose(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()


def _client_timeout(timeouts: Mapping[str, float | None]) -> aiohttp.ClientTimeout:
    connect = timeouts.get("connect")
    pool = timeouts.get("pool")
    return aiohttp.ClientTimeout(
        total=None,
        connect=(connect + pool) if connect is not None and pool is not None else connect,
        sock_connect=connect,
        sock_read=timeouts.get("read"),
    )


def _str_headers(
    headers: Sequence[tuple[str, str]] | Sequence[tuple[bytes, bytes]],
) -> Sequence[tuple[str, str]]:
    if headers and isinstance(headers[0][0], bytes):
        return [(k.decode("latin-1"), v.decode("latin-1")) for k, v in headers]  # type: ignore[union-attr]
    return headers  # type: ignore[return-value]


async def _chunks(body: AsyncIterable[bytes]) -> AsyncIterator[bytes]:
    async for chunk in body:
        yield chunk


async def _iter_request(stream: httpx.AsyncByteStream) -> AsyncIterator[bytes]:
    async for chunk in stream:
        yield chunk


def make_transport(
    kind: TransportKind,
    *,
    max_connections: int,
    max_keepalive_connections: int,
    keepalive_expiry: float,
) -> httpx.AsyncBaseTransport:
    """The pooled transport for one upstream."""
    if kind == "native":
        return Http1Transport(
            max_connections=max_connections,
            max_keepalive_connections=max_keepalive_connections,
            keepalive_expiry=keepalive_expiry,
        )
    if kind == "aiohttp":
        return AiohttpTransport(
            max_connections=max_connections,
            max_keepalive_connections=max_keepalive_connections,
            keepalive_expiry=keepalive_expiry,
        )
    return httpx.AsyncHTTPTransport(
        limits=httpx.Limits(
            max_connections=max_connections,
            max_keepalive_connections=max_keepalive_connections,
            keepalive_expiry=keepalive_expiry,
        ),
        retries=0,
    )
