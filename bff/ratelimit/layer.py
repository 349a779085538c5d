"""The rate-limit edge layer: charge each request, describe the quota, refuse with 429.

It runs after authentication (it needs ``scope["bff.principal"]``) and treats two kinds of path:

- **GraphQL app paths**: the amount is only known once the operation's cost is, so the layer puts
  a :class:`Meter` in ``scope["bff.ratelimit"]`` and the app settles it (:func:`charge`) after
  cost analysis, before executing anything. A refusal there is the app's 429 (GraphQL-shaped).
  A request the app answers without charging (malformed, invalid, over a cost-control limit,
  GraphiQL) costs nothing; its response still carries the headers, and a caller with nothing
  left gets a GraphQL-shaped 429 instead.
- **everything else** is charged one request up front, against the caller's plan, the gateway's
  global limit and, when the path belongs to a passthrough route (found with the proxy's own
  route table: :func:`proxy_route_resolver`), the route's ``rate_limit`` and ``global_limit``,
  all in one decision. Refused: 429 with the JSON error body; the request goes no further.

Every limited response carries ``RateLimit-Limit``/``-Remaining``/``-Reset`` and the
``X-RateLimit-*`` equivalents; refusals add ``Retry-After``. Health, readiness, metrics and the
admin API are never limited.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

import orjson

from bff.asgi import ASGIApp, Message, Receive, Scope, Send, header
from bff.auth.principal import PRINCIPAL_KEY
from bff.edge.request_id import REQUEST_ID_KEY
from bff.error_mapping import graphql_code, http_status, rest_error, rest_error_headers
from bff.errors import GatewayError, RateLimited
from bff.proxy.paths import normalize_path, raw_path
from bff.ratelimit.decision import Decision
from bff.ratelimit.policy import RateLimiter, Target, caller_key
from bff.ratelimit.store import Batch

__all__ = ["RATE_LIMIT_KEY", "Meter", "RateLimitLayer", "charge", "proxy_route_resolver"]

RATE_LIMIT_KEY = "bff.ratelimit"
"""Scope key of a GraphQL request's :class:`Meter`."""

ClientIpResolver = Callable[[Scope], "str | None"]
RouteResolver = Callable[[Scope], Any]

_GRAPHQL_RESPONSE_JSON = b"application/graphql-response+json"
_MAX_ANONYMOUS = 10_000  # anonymous callers' keys kept by address
_MAX_KNOWN = 4096  # callers' batches kept per GraphQL app
_QUOTA_NAMES = frozenset(
    p + n for p in (b"ratelimit-", b"x-ratelimit-") for n in (b"limit", b"remaining", b"reset")
)


def _peer(scope: Scope) -> str | None:
    client = scope.get("client")
    return client[0] if client else None


def refusal(decision: Decision, cost: int = 1) -> RateLimited:
    """The error for a refused decision of ``cost`` requests."""
    if cost > decision.limit:
        # No wait helps: the operation needs more than the quota ever holds at once.
        return RateLimited(
            f"rate limit exceeded: this operation counts as {cost} requests and the quota "
            f"holds at most {decision.limit}; make it cheaper",
            retry_after=decision.retry_after,
        )
    seconds = max(1, -(-decision.retry_ms // 1000))
    return RateLimited(
        f"rate limit exceeded; retry in {seconds} s", retry_after=decision.retry_after
    )


def charge(scope: Scope, cost: int = 1) -> Awaitable[Decision | None]:
    """Charge ``cost`` requests for this GraphQL request (to be awaited); None when nothing
    limits it.

    Raises :class:`~bff.errors.RateLimited` when refused and
    :class:`~bff.errors.ServiceUnavailable` when the shared store is down without
    ``fail_open``. A no-op where the rate-limit layer is not installed. (Not a coroutine
    function: it hands back the meter's own coroutine, one frame fewer per request.)
    """
    meter: Meter | None = scope.get(RATE_LIMIT_KEY)
    if meter is None:
        return _nothing()
    return meter.charge(cost)


class Meter:
    """The charge of one GraphQL request, settled by the app once the cost is known; also the
    ``send`` that adds the quota headers to the response."""

    __slots__ = (
        "_batches",
        "_headers",
        "_limiter",
        "_plan",
        "_refused",
        "_send",
        "decision",
    )

    def __init__(
        self,
        limiter: RateLimiter,
        plan: str | None,
        batches: list[Batch],
        scope: Scope,
        send: Send,
    ) -> None:
        self._limiter = limiter
        self._plan = plan
        self._batches = batches  # the caller's counters on this app (RateLimiter.batches)
        # The request's headers, not the scope: the scope holds this meter (until the layer
        # takes it back), and what it holds should not lead back to the scope.
        self._headers = scope["headers"]
        self._send = send
        self._refused = False
        #: The charge's decision; None until the request is charged.
        self.decision: Decision | None = None

    async def charge(self, cost: int) -> Decision:
        """Charge ``cost`` requests (see :func:`charge`)."""
        local = self._limiter.local  # the memory store never waits: no coroutine for it
        if local is not None:
            decision = local(self._batches, cost)
        else:
            decision = await self._limiter.store.decide(self._batches, cost)
        self.decision = decision
        if not decision.allowed:
            self._limiter.refused(self._plan)
            raise refusal(decision, cost)
        return decision

    def send(self, message: Message) -> Awaitable[None]:
        """The app's ``send``. Not a coroutine function: once the request is charged, it adds
        the headers and hands back the next ``send``'s own awaitable, so no frame of its own
        runs per message."""
        if message["type"] == "http.response.start":
            decision = self.decision
            if decision is None:
                return self._start_uncharged(message)
            message["headers"] = [*message.get("headers", ()), *decision.headers()]
        elif self._refused:
            return _nothing()
        return self._send(message)

    async def _start_uncharged(self, message: Message) -> None:
        """The response of a request the app answered without charging: it costs nothing,
        but carries the quota as it stands, or is a 429 when nothing is left."""
        try:
            decision: Decision | None = await self._limiter.peek(self._batches)
        except GatewayError:
            decision = None  # nothing was charged: answer as the app did
        if decision is not None and not decision.allowed:
            self._refused = True
            self._limiter.refused(self._plan)
            request = {"headers": self._headers}
            await _graphql_refusal(request, self._send, refusal(decision), decision)
            return
        if decision is not None:
            message["headers"] = [*message.get("headers", ()), *decision.headers()]
        await self._send(message)


async def _nothing() -> None:
    return None


class RateLimitLayer:
    """Pure-ASGI layer applying a :class:`RateLimiter` (see the module docstring).

    ``graphql_targets``: GraphQL app paths and each app's :class:`Target`; ``exempt_paths``
    (exact) and ``exempt_prefixes`` (the path and below) are never limited; ``client_ip``
    resolves anonymous callers' addresses (:class:`bff.edge.client_ip.ClientIp`);
    ``route_of`` finds the passthrough route of a path (None: no route).

    Per request it only looks up what it worked out before: anonymous callers' keys by
    address, and on GraphQL paths each caller's counters by (caller, plan), both in bounded
    dictionaries of this layer (rebuilt with it when the configuration changes).
    """

    def __init__(
        self,
        app: ASGIApp,
        limiter: RateLimiter,
        *,
        graphql_targets: Mapping[str, Target] | None = None,
        exempt_paths: Iterable[str] = (),
        exempt_prefixes: Iterable[str] = (),
        client_ip: ClientIpResolver = _peer,
        route_of: RouteResolver | None = None,
    ) -> None:
        self.app = app
        self.limiter = limiter
        prefixes = tuple(p.rstrip("/") for p in exempt_prefixes if p.rstrip("/"))
        self._exempt = frozenset(exempt_paths) | frozenset(prefixes)
        self._exempt_below = tuple(p + "/" for p in prefixes)
        # Per GraphQL app path (none exempt, so they are looked up first): the app's target,
        # and its callers' batches by (caller, plan) (empty: nothing limits them).
        self._graphql: dict[str, tuple[Target, dict[tuple[str, str | None], list[Batch]]]] = {}
        for path, target in (graphql_targets or {}).items():
            bare = path.rstrip("/") or "/"
            entry: tuple[Target, dict[tuple[str, str | None], list[Batch]]] = (target, {})
            for variant in (bare, bare + "/"):
                if not self._is_exempt(variant):
                    self._graphql[variant] = entry
        self._client_ip = client_ip
        self._route_of = route_of
        # Anonymous callers' keys by address: few addresses send most requests, and an IPv6
        # address's key takes parsing.
        self._anonymous: dict[str | None, str] = {}

    def _is_exempt(self, path: str) -> bool:
        return path in self._exempt or bool(
            self._exempt_below and path.startswith(self._exempt_below)
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        app = self._graphql.get(path)
        if app is None and self._is_exempt(path):
            await self.app(scope, receive, send)
            return
        limiter = self.limiter
        principal = scope.get(PRINCIPAL_KEY)
        if principal is None or principal.kind == "anonymous":
            # The authentication layer has resolved the address (with the gateway's resolver,
            # the one given here); without it, this layer does.
            address = principal.client_ip if principal is not None else None
            if address is None:
                address = self._client_ip(scope)
            caller = self._anonymous.get(address)
            if caller is None:
                if len(self._anonymous) >= _MAX_ANONYMOUS:
                    self._anonymous.clear()
                caller = self._anonymous[address] = caller_key(None, address)
            plan = limiter.anonymous_plan
        else:
            caller = caller_key(principal, None)
            plan = limiter.plan_for(principal)
        if app is not None:
            target, known = app
            # The caller's counters on this app, kept: the same callers come back.
            batches = known.get((caller, plan))
            if batches is None:
                if len(known) >= _MAX_KNOWN:
                    known.clear()
                batches = limiter.batches(caller, plan, "app", target) or []
                known[caller, plan] = batches
            if not batches:  # nothing limits it
                await self.app(scope, receive, send)
                return
            meter = Meter(limiter, plan, batches, scope, send)
            scope[RATE_LIMIT_KEY] = meter
            try:
                await self.app(scope, receive, meter.send)
            finally:
                # The meter holds the next layer's send, which may hold the scope (compression
                # does): left in the scope, each request would leave a reference cycle of some
                # 30 objects for the garbage collector.
                scope.pop(RATE_LIMIT_KEY, None)
            return
        route = self._route_of(scope) if self._route_of is not None else None
        try:
            if route is not None:
                decision = await limiter.check_route(caller, plan, route)
            else:
                decision = await limiter.check(caller, plan)
        except GatewayError as exc:
            await _rest_refusal(scope, send, exc, None)
            return
        if decision is None:
            await self.app(scope, receive, send)
            return
        if not decision.allowed:
            limiter.refused(plan)
            await _rest_refusal(scope, send, refusal(decision), decision)
            return
        extra = decision.headers()

        async def send_with_quota(message: Message) -> None:
            if message["type"] == "http.response.start":
                # An upstream's own quota headers would contradict the gateway's: ours win.
                message["headers"] = [
                    *(h for h in message.get("headers", ()) if h[0].lower() not in _QUOTA_NAMES),
                    *extra,
                ]
            await send(message)

        await self.app(scope, receive, send_with_quota)


async def _respond(
    send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes
) -> None:
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _encode(pairs: Iterable[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    return [(k.encode("latin-1"), v.encode("latin-1")) for k, v in pairs]


async def _rest_refusal(
    scope: Scope, send: Send, exc: GatewayError, decision: Decision | None
) -> None:
    status, headers, body = rest_error(exc, scope.get(REQUEST_ID_KEY))
    raw = _encode([*headers, ("cache-control", "no-store")])
    if decision is not None:
        raw.extend(decision.headers())
    await _respond(send, status, raw, body)


async def _graphql_refusal(
    scope: Scope, send: Send, exc: GatewayError, decision: Decision | None
) -> None:
    accept = header(scope, b"accept") or b""
    media = _GRAPHQL_RESPONSE_JSON if _GRAPHQL_RESPONSE_JSON in accept else b"application/json"
    body = orjson.dumps(
        {"errors": [{"message": exc.message, "extensions": {"code": graphql_code(exc)}}]}
    )
    raw = [(b"content-type", media), (b"cache-control", b"no-store")]
    raw.extend(_encode(rest_error_headers(exc)))
    if decision is not None:
        raw.extend(decision.headers())
    await _respond(send, http_status(exc), raw, body)


def proxy_route_resolver(proxy: Any) -> RouteResolver:
    """A ``route_of`` for :class:`RateLimitLayer` from the passthrough proxy's own route table,
    so route limits follow exactly the routes the proxy serves (admin changes included).

    Returns the matched route's configuration, or None (no route, a method the route does not
    allow, or a path the proxy would refuse: those are charged against the plan only).
    """

    def route_of(scope: Scope) -> Any:
        try:
            path, _ = normalize_path(raw_path(scope))
            route = proxy.table.match(path, scope["method"], scope["headers"])
        except GatewayError:
            return None
        return route.config

    return route_of
