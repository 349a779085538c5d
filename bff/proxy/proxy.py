"""The passthrough proxy: a pure-ASGI app forwarding requests to upstreams, streamed both ways.

Per request: normalize the path, match a route, build the upstream headers (one pass), then send
the call through the upstream's chain (balancing, retries, breaker, health) within the route's
budget, and stream the answer back as it arrives: status, headers (less hop-by-hop, ``Server``,
``X-Powered-By`` and ``Date``; the route's response transforms applied) and body, unchanged.
Only errors the gateway itself produces use the JSON error body (see :mod:`bff.error_mapping`).

Once the response has started, a failure can no longer become an error answer: the connection is
closed mid-body (the client sees a short body or a missing final chunk), as any proxy does.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import httpx

from bff.asgi import Message, Receive, Scope, Send, send_response
from bff.auth import ANONYMOUS, PRINCIPAL_KEY, Principal, RouteGuard
from bff.edge.request_id import REQUEST_ID_KEY
from bff.error_mapping import rest_error
from bff.errors import BadRequest, GatewayError, PayloadTooLarge, UpstreamError
from bff.observability.context import note_route, record_cache
from bff.proxy.body import ClientDisconnected, RequestBody
from bff.proxy.cache import ResponseCache
from bff.proxy.headers import forward_request_headers, forward_response_headers
from bff.proxy.paths import normalize_path, raw_path
from bff.proxy.routes import Route, RouteTable
from bff.upstream import IDEMPOTENT_METHODS, Upstream, UpstreamCall, deadline

if TYPE_CHECKING:
    from bff.cache import CacheStore
    from bff.config import GatewayConfig, RouteConfig

__all__ = ["Proxy"]

log = logging.getLogger("bff.proxy")

_NO_BODY_STATUSES = frozenset({204, 304})
_END: Message = {"type": "http.response.body", "body": b"", "more_body": False}
# Request bodies up to this size are kept while they stream, so that an idempotent call can be
# retried (larger ones are not retried once they have started to flow).
REPLAY_LIMIT = 64 * 1024
# After this many body chunks, watch for the client going away (long downloads only: a task per
# request would cost every small response).
_WATCH_AFTER_CHUNKS = 8


class Proxy:
    """The ASGI app serving every passthrough route of one gateway.

    ``guards`` holds each route's :class:`~bff.auth.RouteGuard` by route id (authorization, and
    the credentials withheld from the upstream); a route without one forwards every header
    but hop-by-hop ones. ``response_cache`` serves the routes with ``cache:`` (without one,
    they are forwarded uncached).
    """

    def __init__(
        self,
        table: RouteTable[Upstream],
        *,
        guards: Mapping[str, RouteGuard] | None = None,
        response_cache: ResponseCache | None = None,
    ) -> None:
        self.table = table
        self.guards = dict(guards or {})
        self.response_cache = response_cache

    @classmethod
    def from_config(
        cls,
        config: GatewayConfig,
        upstreams: Mapping[str, Upstream],
        *,
        cache: CacheStore | None = None,
    ) -> Proxy:
        """Compile ``config.routes`` over the built upstream pool; ``cache`` (the process's
        store) enables the response cache of routes with ``cache:``."""
        table, guards = cls.compile(config, upstreams, config.routes)
        response_cache = None
        if cache is not None:
            response_cache = ResponseCache(
                cache, credential_headers=("authorization", config.auth.api_keys.header)
            )
        return cls(table, guards=guards, response_cache=response_cache)

    @staticmethod
    def compile(
        config: GatewayConfig,
        upstreams: Mapping[str, Upstream],
        routes: Sequence[RouteConfig],
    ) -> tuple[RouteTable[Upstream], dict[str, RouteGuard]]:
        """The route table and guards of ``routes`` (validated against ``config``), for
        :meth:`replace` or the constructor."""
        table: RouteTable[Upstream] = RouteTable.from_config(
            routes, upstreams, default_max_body_bytes=config.limits.max_body_bytes
        )
        key_header = config.auth.api_keys.header
        guards = {r.id: RouteGuard(r.auth, api_key_header=key_header) for r in routes}
        return table, guards

    def replace(self, table: RouteTable[Upstream], guards: Mapping[str, RouteGuard]) -> None:
        """Serve new requests with ``table`` and ``guards`` (built by :meth:`compile`).

        One assignment, so a request sees either the old pair or the new one; requests already
        matched keep the route (and upstream) they started with.
        """
        self.table, self.guards = table, dict(guards)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        request_id: str | None = scope.get(REQUEST_ID_KEY)
        try:
            route, upstream, call = self._prepare(scope, receive, request_id)
        except GatewayError as exc:
            await _send_error(send, exc, request_id)
            return
        cache, policy = self.response_cache, route.cache
        if cache is not None and policy is not None:
            if not cache.eligible(scope, policy, call):
                record_cache("response", "bypass")
                await self._forward(scope, receive, send, route, upstream, call, request_id)
                return

            def forward() -> Awaitable[None]:
                return self._forward(scope, receive, send, route, upstream, call, request_id)

            try:
                await cache.serve(scope, send, route, policy, upstream, call, forward)
            except GatewayError as exc:
                await _send_error(send, exc, request_id)
            return
        await self._forward(scope, receive, send, route, upstream, call, request_id)

    def _prepare(
        self, scope: Scope, receive: Receive, request_id: str | None
    ) -> tuple[Route[Upstream], Upstream, UpstreamCall]:
        path, encoded_slash = normalize_path(raw_path(scope))
        method: str = scope["method"]
        headers = scope["headers"]
        route = self.table.match(path, method, headers)
        note_route(route.id)
        if encoded_slash and not route.allow_encoded_slashes:
            raise BadRequest("encoded slashes and backslashes are not allowed in this path")
        principal: Principal = scope.get(PRINCIPAL_KEY) or ANONYMOUS
        guard = self.guards.get(route.id)
        if guard is not None:
            guard.authorize(principal)
        client = scope.get("client")
        peer: str | None = client[0] if client else None
        forwarded = forward_request_headers(
            headers,
            peer=peer.encode("latin-1") if peer else None,
            scheme=scope.get("scheme", "http").encode("latin-1"),
            request_id=request_id.encode("ascii") if request_id else None,
        )
        out_headers = forwarded.headers
        if guard is not None:
            out_headers = guard.upstream_headers(out_headers, principal)
        if route.request_transform is not None:
            out_headers = route.request_transform.apply(out_headers)
        call = UpstreamCall(
            method=method,
            path=route.upstream_path(path),
            query=scope.get("query_string", b""),
            headers=out_headers,
            timeout=route.read_timeout,
            connect_timeout=route.connect_timeout,
            stream=True,
            template=route.template,
            client_ip=principal.client_ip or peer,
        )
        limit = route.max_body_bytes
        length = forwarded.content_length
        if length is not None and length > limit:
            raise PayloadTooLarge(f"request body over {limit} bytes")
        upstream = route.pick_upstream()
        if forwarded.chunked or length:
            retried = upstream.retry_budget is not None and method in IDEMPOTENT_METHODS
            call.content = RequestBody(
                receive, limit, call, replay_limit=REPLAY_LIMIT if retried else 0
            )
        return route, upstream, call

    async def _forward(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        route: Route[Upstream],
        upstream: Upstream,
        call: UpstreamCall,
        request_id: str | None,
    ) -> None:
        started = False
        try:
            with deadline(route.timeout):
                async with upstream.stream(call) as response:
                    status = response.status_code
                    raw = getattr(response, "raw_headers", None)  # no httpx.Headers to build
                    await send(
                        {
                            "type": "http.response.start",
                            "status": status,
                            "headers": forward_response_headers(
                                response.headers.raw if raw is None else raw,
                                route.response_transform,
                            ),
                        }
                    )
                    started = True
                    if scope["method"] == "HEAD" or status in _NO_BODY_STATUSES:
                        await send(_END)
                        return
                    await _stream_body(response, receive, send, call)
        except ClientDisconnected:
            return
        except GatewayError as exc:
            if started:
                log.warning("route %s: response aborted: %s", route.id, exc.message)
                return
            await _send_error(send, exc, request_id)
        except httpx.HTTPError as exc:
            # The upstream failed mid-body: returning closes the connection, so the client sees
            # a short body rather than a complete-looking one.
            if started:
                log.warning("route %s: upstream failed mid-body (%s)", route.id, type(exc).__name__)
                return
            await _send_error(send, UpstreamError(upstream=upstream.name), request_id)
        except Exception as exc:
            log.exception("route %s: unexpected error", route.id)
            if not started:
                await _send_error(send, exc, request_id)


async def _stream_body(
    response: httpx.Response, receive: Receive, send: Send, call: UpstreamCall
) -> None:
    watcher: asyncio.Future[Any] | None = None
    chunks = 0
    stream: Any = response.stream
    # A stream that can tell its last chunk lets it end the body in the same message: one pass
    # through the edge layers' send wrappers instead of two for a small answer.
    tells_end = hasattr(type(stream), "finished")
    ended = False
    try:
        async for chunk in stream:
            if not chunk:
                continue
            if tells_end and stream.finished:
                ended = True
                await send({"type": "http.response.body", "body": chunk, "more_body": False})
                continue  # the iteration ends at once; ending it lets the generator finish
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
            if watcher is not None:
                if watcher.done():
                    return  # the client is gone: stop reading from the upstream
            else:
                chunks += 1
                if chunks == _WATCH_AFTER_CHUNKS and _body_read(call):
                    watcher = asyncio.ensure_future(_disconnected(receive))
        if not ended:
            await send(_END)
    finally:
        if watcher is not None:
            watcher.cancel()


def _body_read(call: UpstreamCall) -> bool:
    # receive() may only be watched once the request body is consumed (it would steal chunks).
    body = call.content
    return body is None or (isinstance(body, RequestBody) and body.complete)


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _send_error(send: Send, exc: BaseException, request_id: str | None) -> None:
    status, headers, body = rest_error(exc, request_id)
    await send_response(send, status, body, headers)
