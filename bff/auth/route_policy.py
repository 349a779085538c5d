"""Authorization of passthrough routes, and the identity an upstream receives.

How the proxy uses it, per request, once the route is matched::

    guard = RouteGuard(route.auth, api_key_header=config.auth.api_keys.header)  # at start-up
    principal = scope.get(PRINCIPAL_KEY) or ANONYMOUS
    guard.authorize(principal)            # Unauthenticated (401) / Forbidden (403)
    headers = guard.upstream_headers(scope["headers"], principal)

``upstream_headers`` removes every credential the caller sent (the API-key header always, the
``Authorization`` header unless the route has ``forward_jwt`` and the caller is a JWT user) and
any ``X-Auth-*`` header the caller tried to set, then adds ``X-Auth-Subject`` and
``X-Auth-Scopes`` for an authenticated caller. Values are percent-encoded (RFC 3986 style:
visible ASCII other than ``%`` is kept as is), so any subject is one safe header value; decode
with ``urllib.parse.unquote``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

from bff.auth.principal import Principal
from bff.errors import Forbidden, Unauthenticated

__all__ = [
    "SCOPES_HEADER",
    "SUBJECT_HEADER",
    "RouteGuard",
    "authorize_route",
    "upstream_identity_headers",
]

SUBJECT_HEADER = "x-auth-subject"
SCOPES_HEADER = "x-auth-scopes"
# Visible ASCII minus '%': kept as is, so common subjects ("auth0|42", emails) read naturally.
_SAFE = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) != "%")


def authorize_route(principal: Principal, route_auth: Any) -> None:
    """Raise unless ``principal`` may use a route with ``route_auth`` (a ``RouteAuthConfig``:
    ``required``, ``scopes``)."""
    if route_auth is None:
        return
    if route_auth.required and not principal.is_authenticated:
        raise Unauthenticated("this route requires authentication")
    scopes = route_auth.scopes
    if scopes and not principal.has_scopes(scopes):
        missing = ", ".join(s for s in scopes if s not in principal.scopes)
        raise Forbidden(f"missing scope: {missing}")


def _encode(value: str) -> str:
    return quote(value, safe=_SAFE)


def upstream_identity_headers(principal: Principal) -> list[tuple[str, str]]:
    """``X-Auth-Subject`` and ``X-Auth-Scopes`` (space-separated, sorted) for an authenticated
    principal; nothing for an anonymous one."""
    if not principal.is_authenticated or principal.subject is None:
        return []
    return [
        (SUBJECT_HEADER, _encode(principal.subject)),
        (SCOPES_HEADER, " ".join(_encode(s) for s in sorted(principal.scopes))),
    ]


class RouteGuard:
    """A route's authorization and upstream header rewriting, built once per route."""

    __slots__ = ("_drop", "forward_jwt", "route_auth")

    def __init__(self, route_auth: Any, *, api_key_header: str = "X-API-Key") -> None:
        self.route_auth = route_auth
        self.forward_jwt = bool(getattr(route_auth, "forward_jwt", False))
        self._drop = frozenset(
            {
                api_key_header.lower().encode("latin-1"),
                b"authorization",
                SUBJECT_HEADER.encode(),
                SCOPES_HEADER.encode(),
            }
        )

    def authorize(self, principal: Principal) -> None:
        """:class:`Unauthenticated` or :class:`Forbidden` unless the route allows the caller."""
        authorize_route(principal, self.route_auth)

    def upstream_headers(
        self, headers: Iterable[tuple[bytes, bytes]], principal: Principal
    ) -> list[tuple[bytes, bytes]]:
        """The request headers to send upstream (raw ASGI pairs in, raw pairs out)."""
        keep_authorization = self.forward_jwt and principal.kind == "user"
        out = [
            (k, v)
            for k, v in headers
            if k.lower() not in self._drop or (keep_authorization and k.lower() == b"authorization")
        ]
        out.extend((k.encode(), v.encode("ascii")) for k, v in upstream_identity_headers(principal))
        return out
