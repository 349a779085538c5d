"""Route enforcement and the identity headers an upstream receives."""

from __future__ import annotations

from urllib.parse import unquote

import pytest

from bff.auth import ANONYMOUS, Principal, RouteGuard, authorize_route, upstream_identity_headers
from bff.config import RouteAuthConfig
from bff.errors import Forbidden, Unauthenticated

USER = Principal(kind="user", subject="42", scopes=frozenset({"orders:read", "x"}), tier="pro")
KEY = Principal(kind="api_key", subject="key_1", scopes=frozenset({"orders:read"}), tier="free")


def test_public_route_lets_anyone_in() -> None:
    authorize_route(ANONYMOUS, RouteAuthConfig())
    authorize_route(ANONYMOUS, None)


def test_required_route() -> None:
    auth = RouteAuthConfig(required=True)
    with pytest.raises(Unauthenticated):
        authorize_route(ANONYMOUS, auth)
    authorize_route(USER, auth)
    authorize_route(KEY, auth)


def test_scoped_route() -> None:
    auth = RouteAuthConfig.model_validate({"scopes": ["orders:read", "orders:write"]})
    assert auth.required
    with pytest.raises(Unauthenticated):
        authorize_route(ANONYMOUS, auth)
    with pytest.raises(Forbidden, match="missing scope: orders:write"):
        authorize_route(USER, auth)
    authorize_route(USER, RouteAuthConfig.model_validate({"scopes": ["orders:read"]}))


def test_identity_headers() -> None:
    assert upstream_identity_headers(ANONYMOUS) == []
    assert upstream_identity_headers(USER) == [
        ("x-auth-subject", "42"),
        ("x-auth-scopes", "orders:read x"),
    ]


def test_identity_headers_are_always_safe_header_values() -> None:
    odd = Principal(kind="user", subject="josé 100%|auth0", scopes=frozenset({"ä"}))
    headers = dict(upstream_identity_headers(odd))
    assert headers["x-auth-subject"] == "jos%C3%A9%20100%25|auth0"
    assert unquote(headers["x-auth-subject"]) == "josé 100%|auth0"
    assert unquote(headers["x-auth-scopes"]) == "ä"
    for value in headers.values():
        value.encode("ascii")
        assert all(0x20 < ord(c) < 0x7F or c == " " for c in value)


def raw(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    return [(k.lower().encode(), v.encode()) for k, v in headers.items()]


INCOMING = raw(
    {
        "Authorization": "Bearer eyJhbGciOi.x.y",
        "X-API-Key": "bff_secret",
        "X-Auth-Subject": "admin",
        "X-Auth-Scopes": "everything",
        "Accept": "application/json",
    }
)


def test_guard_strips_credentials_and_spoofed_identity() -> None:
    guard = RouteGuard(RouteAuthConfig(required=True), api_key_header="X-API-Key")
    out = dict(guard.upstream_headers(INCOMING, USER))
    assert out == {
        b"accept": b"application/json",
        b"x-auth-subject": b"42",
        b"x-auth-scopes": b"orders:read x",
    }
    anonymous = dict(RouteGuard(RouteAuthConfig()).upstream_headers(INCOMING, ANONYMOUS))
    assert anonymous == {b"accept": b"application/json"}


def test_forward_jwt_forwards_only_a_users_token() -> None:
    guard = RouteGuard(RouteAuthConfig(required=True, forward_jwt=True))
    assert dict(guard.upstream_headers(INCOMING, USER))[b"authorization"] == (
        b"Bearer eyJhbGciOi.x.y"
    )
    # An API key sent as "Authorization: Bearer bff_..." is never forwarded.
    key_headers = raw({"Authorization": "Bearer bff_" + "a" * 43})
    assert b"authorization" not in dict(guard.upstream_headers(key_headers, KEY))


def test_guard_authorize() -> None:
    guard = RouteGuard(RouteAuthConfig.model_validate({"scopes": ["orders:read"]}))
    guard.authorize(KEY)
    with pytest.raises(Unauthenticated):
        guard.authorize(ANONYMOUS)
