"""One upstream service: its targets, its pooled transport and its chain of stages.

The chain is assembled as a plain list in :func:`Upstream._build_chain` (as Starlette's
``build_middleware_stack`` and lura's ``newStack`` do): each stage is a small callable that wraps
the next one. Resolvers (through ``clients/``) and the passthrough proxy call the same chain, so
what protects an upstream protects it from both.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlencode

import httpx
import orjson

from bff.errors import NotFound, UpstreamError, UpstreamTimeout
from bff.upstream.call import Handler, UpstreamCall
from bff.upstream.deadline import remaining_budget
from bff.upstream.recorder import RecordedCall, is_recording, record
from bff.upstream.transport import TransportKind, make_transport

__all__ = ["Target", "Upstream"]


class Target:
    """One base URL of an upstream (``http://10.0.0.5:8080``), with its weight."""

    __slots__ = ("base", "weight")

    def __init__(self, url: str, weight: int = 1) -> None:
        self.base = url.rstrip("/")
        self.weight = weight

    def __repr__(self) -> str:
        return f"Target({self.base!r})"


class Upstream:
    """A configured upstream service.

    Build one per upstream at start-up; call :meth:`aclose` at shutdown. ``request`` returns a
    fully read ``httpx.Response`` whatever its status; ``stream`` yields one whose body is still
    to be read; ``get_json`` is the convenience the typed clients use.
    """

    def __init__(
        self,
        name: str,
        targets: Sequence[tuple[str, int]],
        *,
        connect_timeout: float = 1.0,
        read_timeout: float = 10.0,
        write_timeout: float = 10.0,
        pool_timeout: float = 1.0,
        max_connections: int = 100,
        max_keepalive_connections: int = 100,
        keepalive_expiry: float = 30.0,
        transport: TransportKind = "aiohttp",
    ) -> None:
        if not targets:
            raise ValueError(f"upstream {name!r} has no targets")
        self.name = name
        self.targets = [Target(url, weight) for url, weight in targets]
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.write_timeout = write_timeout
        self.pool_timeout = pool_timeout
        self.transport_kind = transport
        self._transport = make_transport(
            transport,
            max_connections=max_connections,
            max_keepalive_connections=max_keepalive_connections,
            keepalive_expiry=keepalive_expiry,
        )
        self._rr = itertools.cycle(range(len(self.targets)))
        self._handler: Handler = self._build_chain()

    # -- the chain -------------------------------------------------------------------------

    def _build_chain(self) -> Handler:
        stages: list[Any] = [_Recorder]
        handler: Handler = self._send
        for stage in reversed(stages):
            handler = stage(self, handler)
        return handler

    def pick_target(self, call: UpstreamCall) -> Target:
        """The target for this call (round robin)."""
        if len(self.targets) == 1:
            return self.targets[0]
        return self.targets[next(self._rr)]

    async def _send(self, call: UpstreamCall) -> httpx.Response:
        target = self.pick_target(call)
        read = call.timeout if call.timeout is not None else self.read_timeout
        budget = remaining_budget()
        if budget is not None:
            if budget <= 0:
                raise UpstreamTimeout(upstream=self.name)
            read = min(read, budget)
        url = target.base + call.path
        if call.query:
            url += "?" + call.query.decode("latin-1")
        request = httpx.Request(
            call.method,
            url,
            headers=call.headers,
            content=call.content,
            extensions={
                "timeout": {
                    "connect": min(self.connect_timeout, read),
                    "read": read,
                    "write": min(self.write_timeout, read),
                    "pool": min(self.pool_timeout, read),
                }
            },
        )
        try:
            response = await self._transport.handle_async_request(request)
            response.request = request
            if not call.stream:
                try:
                    await response.aread()
                finally:
                    await response.aclose()
        except httpx.TimeoutException as exc:
            raise UpstreamTimeout(upstream=self.name) from exc
        except httpx.TransportError as exc:
            raise UpstreamError(upstream=self.name) from exc
        return response

    # -- the API used by clients and the proxy ---------------------------------------------

    async def send(self, call: UpstreamCall) -> httpx.Response:
        """Run ``call`` through the chain."""
        return await self._handler(call)

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        headers: Sequence[tuple[str, str]] | None = None,
        content: bytes | None = None,
        json: Any = None,
        template: str = "",
        timeout: float | None = None,
    ) -> httpx.Response:
        """Send a request and read the whole response, whatever its status.

        Raises :class:`UpstreamTimeout` or :class:`UpstreamError` when no response arrives.
        """
        hdrs = list(headers or ())
        if json is not None:
            content = orjson.dumps(json)
            hdrs.append(("content-type", "application/json"))
        call = UpstreamCall(
            method=method,
            path=path,
            query=urlencode(params, safe=",").encode() if params else b"",
            headers=hdrs,
            content=content,
            timeout=timeout,
            template=template,
        )
        return await self._handler(call)

    @asynccontextmanager
    async def stream(self, call: UpstreamCall) -> AsyncIterator[httpx.Response]:
        """Send ``call`` and yield the response with its body unread; closes it afterwards."""
        call.stream = True
        response = await self._handler(call)
        try:
            yield response
        finally:
            await response.aclose()

    async def get_json(
        self,
        path: str,
        params: Mapping[str, Any] | None = None,
        *,
        template: str = "",
    ) -> Any:
        """GET ``path`` and decode its JSON body.

        404 raises :class:`NotFound`; any other non-2xx status or an undecodable body raises
        :class:`UpstreamError` (the caller asked for something the upstream could not give).
        """
        response = await self.request("GET", path, params=params, template=template)
        return self.decode(response)

    def decode(self, response: httpx.Response) -> Any:
        """The JSON body of a 2xx response, or the typed error its status means."""
        status = response.status_code
        if status == 404:
            raise NotFound()
        if not 200 <= status < 300:
            raise UpstreamError(upstream=self.name, status=status)
        try:
            return orjson.loads(response.content)
        except orjson.JSONDecodeError as exc:
            raise UpstreamError(upstream=self.name, status=status) from exc

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._transport.aclose()


class _Recorder:
    """First stage: report the call to any open ``upstream_calls()`` block."""

    __slots__ = ("_next", "_upstream")

    def __init__(self, upstream: Upstream, next_handler: Handler) -> None:
        self._upstream = upstream
        self._next = next_handler

    async def __call__(self, call: UpstreamCall) -> httpx.Response:
        if is_recording():
            record(RecordedCall(self._upstream.name, call.method, call.endpoint, call.path))
        return await self._next(call)
