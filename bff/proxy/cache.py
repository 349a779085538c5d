"""The response cache of passthrough routes with ``cache:`` (GET and HEAD).

A stage of the proxy, between route matching and the streaming forward:

- **eligible requests**: GET or HEAD (HEAD is answered from the GET entry, and a HEAD miss fetches
  a GET, as nginx's ``proxy_cache_convert_head``), without a body or ``Range``, and without
  credentials (``Authorization``, the API-key header, or a signed-in principal) unless the route
  says ``authorized: true``. Anything else goes through uncached, streamed;
- **key**: route, host, normalized path, the query's parameters sorted by name, the values of the
  route's ``vary`` headers, the principal when the route is ``private``; then, when the upstream
  answers with ``Vary``, the values of those headers too (a small "variants" record under the first
  key names them, as Varnish does). Hashed by :func:`~bff.cache.cache_key` (control characters:
  400). Nothing else in the request reaches the key, and nothing else reaches the upstream
  unchanged that could change a shared answer: ``X-Forwarded-Host`` and friends are the gateway's;
- **stored**: a ``200`` within ``max_body_bytes``, without ``Set-Cookie``, ``Content-Encoding``,
  ``Vary: *`` or more than
  :data:`~bff.proxy.cache_policy.MAX_VARY_HEADERS` ``Vary`` names, and whose ``Cache-Control``
  has neither ``no-store`` nor ``no-cache`` (nor ``private``, unless the route is ``private``).
  Fresh for ``s-maxage``, else ``max-age``, else the route's ``ttl``; kept ``stale_if_error``
  seconds longer. A bigger body streams through uncached, and the key remembers it for ``ttl``
  ("hit-for-pass"), so only that one request read (at most the bound of) its body for nothing;
- **single-flight**: concurrent misses of one key make one upstream request (the others wait for
  its answer; when it turns out not storable, they each go upstream themselves, except after a
  5xx: a struggling upstream does not get the whole crowd at once);
- **answers**: ``X-Cache: HIT | MISS | STALE``, ``Age``, ``ETag`` (the upstream's, else a weak
  one computed from the body); an ``If-None-Match`` matching it answers ``304``, a malformed one is
  a 400 (:func:`~bff.cache.parse_if_none_match`);
- **stale-if-error**: when the upstream fails (``UpstreamError``, ``UpstreamTimeout``, its breaker
  open, a 500-504 answer), an entry past its freshness but within ``stale_if_error`` is served
  with ``X-Cache: STALE`` instead of the error.

See docs/caching.md.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Literal, cast

import httpx

from bff.asgi import Scope, Send, send_response
from bff.auth import ANONYMOUS, PRINCIPAL_KEY, Principal
from bff.cache import (
    CachedResponse,
    CacheStore,
    SingleFlight,
    cache_key,
    make_etag,
    none_match,
    parse_if_none_match,
)
from bff.errors import UpstreamError, UpstreamTimeout, UpstreamUnavailable
from bff.observability.context import record_cache
from bff.proxy.cache_policy import RouteCachePolicy
from bff.proxy.headers import forward_response_headers
from bff.proxy.routes import Route, request_host
from bff.upstream import Upstream, UpstreamCall, deadline

__all__ = ["MAX_BODY_BYTES", "ResponseCache"]

log = logging.getLogger("bff.proxy")

MAX_BODY_BYTES = 1024 * 1024
"""Bodies up to this size are buffered and stored; bigger ones stream through uncached."""

Condition = list[str] | Literal["*"] | None
Forward = Callable[[], Awaitable[None]]

_NAMESPACE = "rest"
_VARIANTS = b"bffV1\n"  # a variants record: the upstream's Vary names, one per line
_PASS = b"bffP1"  # hit-for-pass: this key's answer is too big to buffer
_STALE_STATUSES = frozenset({500, 502, 503, 504})
_FAILURES = (UpstreamError, UpstreamTimeout, UpstreamUnavailable)
# Not sent upstream on a cacheable request: the stored answer must be a whole, identity-coded
# 200 that suits every caller (the edge compresses per client).
_UPSTREAM_DROP = frozenset(
    {
        b"if-none-match",
        b"if-modified-since",
        b"if-match",
        b"if-unmodified-since",
        b"if-range",
        b"accept-encoding",
    }
)
# Response headers not kept in an entry (recomputed on every answer).
_NOT_STORED = frozenset({b"content-length", b"age", b"x-cache"})


@dataclasses.dataclass(slots=True)
class _Fetched:
    """What the single-flight fetch got: a whole answer, or "too big, stream it yourselves"."""

    leader: object
    status: int = 0
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    stored: bool = False
    variant_key: str | None = None
    vary: tuple[str, ...] = ()
    too_large: bool = False

    def response(self, stored_at: float) -> CachedResponse:
        return CachedResponse(self.status, self.headers, self.body, stored_at, 0)


class ResponseCache:
    """The cache of every route with ``cache:`` of one proxy (see the module docstring).

    ``credential_headers``: request header names (lower case) that carry credentials
    (``authorization`` and the API-key header). ``clock``: wall-clock seconds (tests move it).
    """

    def __init__(
        self,
        store: CacheStore,
        *,
        credential_headers: Sequence[str] = ("authorization",),
        max_body_bytes: int = MAX_BODY_BYTES,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.flight = SingleFlight()
        self.credential_headers = frozenset(n.lower().encode("latin-1") for n in credential_headers)
        self.max_body_bytes = max_body_bytes
        self.clock = clock

    def eligible(self, scope: Scope, policy: RouteCachePolicy, call: UpstreamCall) -> bool:
        """Whether this request may read and fill the cache."""
        if scope["method"] not in ("GET", "HEAD") or call.content is not None:
            return False
        for name, _ in scope["headers"]:
            if name == b"range":
                return False
            if name in self.credential_headers and not policy.authorized:
                return False
        principal: Principal = scope.get(PRINCIPAL_KEY) or ANONYMOUS
        return policy.authorized or not principal.is_authenticated

    async def serve(
        self,
        scope: Scope,
        send: Send,
        route: Route[Upstream],
        policy: RouteCachePolicy,
        upstream: Upstream,
        call: UpstreamCall,
        forward: Forward,
    ) -> None:
        """Answer from the cache, or fetch (once per key) and store; ``forward()`` streams the
        request through uncached. Raises :class:`~bff.errors.GatewayError` for an error answer
        (bad input, or an upstream failure with no stale entry to serve)."""
        headers = scope["headers"]
        head = scope["method"] == "HEAD"
        condition: Condition = None
        for name, value in headers:
            if name == b"if-none-match":
                condition = parse_if_none_match(value)
        base = self._base_key(scope, route, policy, call)
        key, entry, raw = base, None, await self.store.get(base)
        if raw is not None and raw.startswith(_PASS):
            record_cache("response", "bypass")
            await forward()
            return
        if raw is not None and raw.startswith(_VARIANTS):
            names = tuple(raw[len(_VARIANTS) :].decode("latin-1").split("\n"))
            key = _variant_key(base, names, headers)
            raw = await self.store.get(key)
        entry = CachedResponse.from_bytes(raw)
        now = self.clock()
        if entry is not None and entry.fresh(now):
            await self._answer(send, entry, "HIT", entry.age(now), head, condition)
            return
        stale = entry if entry is not None and _within(entry, policy, now) else None
        token = object()
        proxied = cast(list[tuple[bytes, bytes]], call.headers)  # the proxy's are bytes
        kept = [h for h in proxied if h[0] not in _UPSTREAM_DROP]
        fetch_call = dataclasses.replace(call, method="GET", headers=kept)
        try:
            fetched = await self.flight.do(
                key,
                lambda: self._fetch(token, base, route, policy, upstream, fetch_call, headers),
            )
        except _FAILURES:
            if stale is None:
                raise
            await self._answer(send, stale, "STALE", stale.age(now), head, condition)
            return
        if fetched.status in _STALE_STATUSES and stale is not None:
            await self._answer(send, stale, "STALE", stale.age(now), head, condition)
            return
        mine = fetched.leader is token
        if (
            fetched.too_large
            # not storable: the waiters ask for themselves (a failure is shared, though: a
            # struggling upstream does not get the whole crowd at once)
            or (not mine and not fetched.stored and fetched.status < 500)
            # a waiter whose request differs in a header the answer varies on
            or (fetched.vary and _variant_key(base, fetched.vary, headers) != fetched.variant_key)
        ):
            record_cache("response", "bypass")
            await forward()
            return
        await self._answer(send, fetched.response(now), "MISS", 0, head, condition)

    def _base_key(
        self, scope: Scope, route: Route[Upstream], policy: RouteCachePolicy, call: UpstreamCall
    ) -> str:
        headers = scope["headers"]
        parts: list[str | bytes] = [
            route.id,
            request_host(headers),
            call.path,
            _sorted_query(scope.get("query_string", b"")),
        ]
        for wanted in policy.vary:
            parts.append(_header_values(headers, wanted))
        if policy.private:
            principal: Principal = scope.get(PRINCIPAL_KEY) or ANONYMOUS
            parts.append(f"{principal.kind}:{principal.subject or ''}")
        return cache_key(_NAMESPACE, *parts)

    async def _fetch(
        self,
        token: object,
        base: str,
        route: Route[Upstream],
        policy: RouteCachePolicy,
        upstream: Upstream,
        call: UpstreamCall,
        request_headers: Sequence[tuple[bytes, bytes]],
    ) -> _Fetched:
        limit = self.max_body_bytes
        body = b""
        try:
            with deadline(route.timeout):
                async with upstream.stream(call) as response:
                    length = response.headers.get("content-length")
                    if length is not None and length.isdigit() and int(length) > limit:
                        too_large = True
                    else:
                        body, too_large = await _read_bounded(response, limit)
        except httpx.HTTPError as exc:  # failed mid-body
            raise UpstreamError(upstream=upstream.name) from exc
        if too_large:
            await self.store.set(base, _PASS, policy.ttl)
            return _Fetched(token, too_large=True)
        raw_headers = response.headers.raw
        freshness, vary = policy.storable(response.status_code, raw_headers)
        out = [
            (k.decode("latin-1"), v.decode("latin-1"))
            for k, v in forward_response_headers(raw_headers, route.response_transform)
            if k not in _NOT_STORED
        ]
        if not any(k == "etag" for k, _ in out):
            out.append(("etag", make_etag(body)))
        fetched = _Fetched(token, response.status_code, tuple(out), body)
        if freshness is None:
            return fetched
        stored_at = self.clock()
        entry = CachedResponse(fetched.status, fetched.headers, body, stored_at, freshness)
        ttl = freshness + policy.stale_if_error
        key = base
        if vary:
            key = _variant_key(base, vary, request_headers)
            await self.store.set(base, _VARIANTS + "\n".join(vary).encode("latin-1"), ttl)
            fetched.vary, fetched.variant_key = vary, key
        await self.store.set(key, entry.to_bytes(), ttl)
        fetched.stored = True
        return fetched

    async def _answer(
        self,
        send: Send,
        entry: CachedResponse,
        state: str,
        age: int,
        head: bool,
        condition: Condition,
    ) -> None:
        record_cache("response", state.lower())
        headers = [*entry.headers, ("age", str(age)), ("x-cache", state)]
        etag = entry.header("etag")
        matched = condition is not None and etag is not None and none_match(condition, etag)
        if matched and entry.status == 200:
            raw = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers]
            await send({"type": "http.response.start", "status": 304, "headers": raw})
            await send({"type": "http.response.body", "body": b""})
            return
        if head:
            headers.append(("content-length", str(len(entry.body))))
            raw = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers]
            await send({"type": "http.response.start", "status": entry.status, "headers": raw})
            await send({"type": "http.response.body", "body": b""})
            return
        await send_response(send, entry.status, entry.body, headers)


def _within(entry: CachedResponse, policy: RouteCachePolicy, now: float) -> bool:
    return policy.stale_if_error > 0 and entry.age(now) < entry.max_age + policy.stale_if_error


async def _read_bounded(response: httpx.Response, limit: int) -> tuple[bytes, bool]:
    body = bytearray()
    async for chunk in response.aiter_raw():
        body += chunk
        if len(body) > limit:
            return b"", True
    return bytes(body), False


def _sorted_query(query: bytes) -> bytes:
    # By name only (a stable sort): the order of a repeated parameter's values may matter.
    pairs = [p for p in query.split(b"&") if p]
    pairs.sort(key=lambda p: p.partition(b"=")[0])
    return b"&".join(pairs)


def _header_values(headers: Sequence[tuple[bytes, bytes]], name: bytes) -> bytes:
    return b", ".join(v for k, v in headers if k == name)


def _variant_key(base: str, names: Sequence[str], headers: Sequence[tuple[bytes, bytes]]) -> str:
    parts: list[str | bytes] = [base]
    for name in names:
        parts.append(_header_values(headers, name.encode("latin-1")))
    return cache_key(_NAMESPACE, *parts)
