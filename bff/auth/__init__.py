"""Authentication: who the caller is (JWT, API keys) and what they may do (scopes).

The edge layer (:class:`AuthenticationLayer`) resolves every request's :class:`Principal` with an
:class:`Authenticator`; GraphQL apps and fields check it; passthrough routes use
:class:`RouteGuard`. API keys live in the store, managed through :class:`ApiKeyManager`.
"""

from bff.auth.api_keys import generate_api_key, hash_api_key, key_prefix
from bff.auth.authenticator import Authenticator, key_events_for
from bff.auth.client_ip import ClientIpResolver, peer_ip
from bff.auth.errors import InvalidCredentials
from bff.auth.jwks import JWKSClient
from bff.auth.jwt_verifier import JWTVerifier
from bff.auth.key_cache import ApiKeyCache
from bff.auth.key_events import KeyEvents, LocalKeyEvents, RedisKeyEvents
from bff.auth.key_manager import ApiKeyManager, KeySpec
from bff.auth.key_verifier import ApiKeyVerifier
from bff.auth.layer import AuthenticationLayer
from bff.auth.principal import ANONYMOUS, PRINCIPAL_KEY, Principal
from bff.auth.route_policy import RouteGuard, authorize_route, upstream_identity_headers

__all__ = [
    "ANONYMOUS",
    "PRINCIPAL_KEY",
    "ApiKeyCache",
    "ApiKeyManager",
    "ApiKeyVerifier",
    "AuthenticationLayer",
    "Authenticator",
    "ClientIpResolver",
    "InvalidCredentials",
    "JWKSClient",
    "JWTVerifier",
    "KeyEvents",
    "KeySpec",
    "LocalKeyEvents",
    "Principal",
    "RedisKeyEvents",
    "RouteGuard",
    "authorize_route",
    "generate_api_key",
    "hash_api_key",
    "key_events_for",
    "key_prefix",
    "peer_ip",
    "upstream_identity_headers",
]
