"""The authentication edge layer: puts the request's :class:`Principal` in the ASGI scope.

No credentials: an anonymous principal (with the client address), at the cost of one pass over
the headers. Valid credentials: the caller's principal (a cached JWT costs a hash and a
dictionary lookup). Invalid credentials are refused here, whatever the path would allow: a
GraphQL app answers 401 with a GraphQL-shaped body (``errors[].extensions.code``), anything else
with the REST error body; both with ``WWW-Authenticate``.

Paths that do their own authentication (the admin API and its bearer token) or none (health,
metrics) are passed through untouched.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

import orjson

from bff.asgi import ASGIApp, Receive, Scope, Send, header, send_response
from bff.auth.authenticator import Authenticator
from bff.auth.client_ip import ClientIpResolver, peer_ip
from bff.auth.errors import InvalidCredentials
from bff.auth.principal import PRINCIPAL_KEY, Principal
from bff.edge.request_id import REQUEST_ID_KEY
from bff.error_mapping import graphql_code, http_status, rest_error, rest_error_headers
from bff.errors import GatewayError

__all__ = ["AuthenticationLayer"]

log = logging.getLogger("bff.auth")

_GRAPHQL_RESPONSE_JSON = b"application/graphql-response+json"
_MAX_ANONYMOUS = 4096


class AuthenticationLayer:
    """Pure-ASGI layer resolving ``scope[PRINCIPAL_KEY]``.

    ``graphql_paths`` are answered GraphQL-style when credentials are refused;
    ``exempt_paths`` (exact) and ``exempt_prefixes`` (the path or anything below it) are passed
    through without looking at credentials; ``client_ip`` resolves the caller's address;
    ``on_refused(error)`` hears of every refusal (metrics).
    """

    def __init__(
        self,
        app: ASGIApp,
        authenticator: Authenticator,
        *,
        graphql_paths: Iterable[str] = (),
        exempt_paths: Iterable[str] = (),
        exempt_prefixes: Iterable[str] = (),
        client_ip: ClientIpResolver = peer_ip,
        on_refused: Callable[[GatewayError], object] | None = None,
    ) -> None:
        self.app = app
        self._on_refused = on_refused
        self.authenticator = authenticator
        self._key_header = authenticator.api_key_header
        self._graphql = frozenset(_with_slash_variants(graphql_paths))
        prefixes = tuple(p.rstrip("/") for p in exempt_prefixes)
        self._exempt = frozenset(_with_slash_variants(exempt_paths)) | frozenset(prefixes)
        self._exempt_below = tuple(p + "/" for p in prefixes)
        self._client_ip = client_ip
        # Anonymous principals by address: most requests come from few addresses, and reusing
        # one is cheaper than building one per request.
        self._anonymous: dict[str | None, Principal] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if path in self._exempt or (self._exempt_below and path.startswith(self._exempt_below)):
            await self.app(scope, receive, send)
            return
        authorization: bytes | None = None
        api_key: bytes | None = None
        repeated = False
        for name, value in scope["headers"]:
            if name == b"authorization":
                repeated |= authorization is not None
                authorization = value
            elif name == self._key_header:
                repeated |= api_key is not None
                api_key = value
        client_ip = self._client_ip(scope)
        if authorization is None and api_key is None:
            anonymous = self._anonymous.get(client_ip)
            if anonymous is None:
                if len(self._anonymous) >= _MAX_ANONYMOUS:
                    self._anonymous.clear()
                anonymous = self._anonymous[client_ip] = Principal(client_ip=client_ip)
            scope[PRINCIPAL_KEY] = anonymous
            await self.app(scope, receive, send)
            return
        try:
            if repeated:
                raise InvalidCredentials(
                    "send one credential header, once", "a credential header was repeated"
                )
            principal = await self.authenticator.authenticate(authorization, api_key, client_ip)
        except GatewayError as exc:
            await self._refuse(scope, send, exc)
            return
        scope[PRINCIPAL_KEY] = principal
        await self.app(scope, receive, send)

    async def _refuse(self, scope: Scope, send: Send, exc: GatewayError) -> None:
        request_id = scope.get(REQUEST_ID_KEY)
        reason = exc.reason if isinstance(exc, InvalidCredentials) else exc.code
        log.debug("credentials refused (request %s): %s", request_id, reason)
        if self._on_refused is not None:
            self._on_refused(exc)
        path = scope["path"]
        if path in self._graphql:
            accept = header(scope, b"accept") or b""
            media = (
                _GRAPHQL_RESPONSE_JSON.decode()
                if _GRAPHQL_RESPONSE_JSON in accept
                else "application/json"
            )
            body = orjson.dumps(
                {"errors": [{"message": exc.message, "extensions": {"code": graphql_code(exc)}}]}
            )
            headers = [
                ("content-type", media),
                ("cache-control", "no-store"),
                *rest_error_headers(exc),
            ]
            await send_response(send, http_status(exc), body, headers)
            return
        status, headers, body = rest_error(exc, request_id)
        await send_response(send, status, body, [*headers, ("cache-control", "no-store")])


def _with_slash_variants(paths: Iterable[str]) -> list[str]:
    out: list[str] = []
    for p in paths:
        bare = p.rstrip("/") or "/"
        out.extend((bare, bare + "/") if bare != "/" else ("/",))
    return out
