"""Connection pools: the last stage of every upstream chain.

Two interchangeable ``httpx.AsyncBaseTransport`` implementations sit behind the same httpx API:
httpx's own pool, and :class:`AiohttpTransport`, which hands the connection work to aiohttp's
connector. httpx's pool rescans its connections for every queued request and loses throughput
under concurrency (encode/httpx#3215); docs/performance.md has the figures that made aiohttp the
default. Both keep bytes verbatim: the URL is not re-quoted (the request target travels in
httpcore's ``target`` extension) and bodies are not decompressed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Literal

import aiohttp
import httpx
from yarl import URL

__all__ = ["AiohttpTransport", "TransportKind", "make_transport"]

TransportKind = Literal["aiohttp", "httpx"]


class _AiohttpStream(httpx.AsyncByteStream):
    __slots__ = ("_resp",)

    def __init__(self, resp: aiohttp.ClientResponse) -> None:
        self._resp = resp

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

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        session = self._get_session()
        ext = request.extensions.get("timeout") or {}
        connect = ext.get("connect")
        pool = ext.get("pool")
        timeout = aiohttp.ClientTimeout(
            total=None,
            connect=(connect + pool) if connect is not None and pool is not None else connect,
            sock_connect=connect,
            sock_read=ext.get("read"),
        )
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
        try:
            resp = await session.request(
                request.method,
                url,
                headers=[(k.decode("latin-1"), v.decode("latin-1")) for k, v in raw_headers],
                data=data,
                timeout=timeout,
                allow_redirects=False,
                compress=False,
                chunked=None,
            )
        except aiohttp.ConnectionTimeoutError as exc:
            raise httpx.ConnectTimeout(str(exc) or "connect timeout", request=request) from exc
        except (aiohttp.ServerTimeoutError, TimeoutError) as exc:
            raise httpx.ReadTimeout(str(exc) or "read timeout", request=request) from exc
        except aiohttp.ClientConnectorError as exc:
            raise httpx.ConnectError(str(exc), request=request) from exc
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as exc:
            raise httpx.ReadError(str(exc), request=request) from exc
        except aiohttp.ClientError as exc:
            raise httpx.RemoteProtocolError(str(exc), request=request) from exc
        return httpx.Response(
            status_code=resp.status,
            headers=resp.raw_headers,
            stream=_AiohttpStream(resp),
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": (resp.reason or "").encode()},
        )

    async def aclose(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()


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
