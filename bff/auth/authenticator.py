"""Credentials in, :class:`Principal` out: the one entry point of authentication.

Credentials are ``Authorization: Bearer <JWT>``, an API key in ``auth.api_keys.header``
(``X-API-Key``), or ``Authorization: Bearer bff_...`` (an API key sent as a bearer token). One
request carries one credential: a bearer token *and* an API key are refused as ambiguous.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from bff.auth.errors import InvalidCredentials
from bff.auth.jwks import JWKSClient
from bff.auth.jwt_verifier import JWTVerifier
from bff.auth.key_cache import ApiKeyCache
from bff.auth.key_events import KeyEvents, LocalKeyEvents, RedisKeyEvents
from bff.auth.key_verifier import ApiKeyVerifier
from bff.auth.last_used import LastUsedRecorder
from bff.auth.principal import Principal

if TYPE_CHECKING:
    from bff.config import GatewayConfig
    from bff.store import Store

__all__ = ["Authenticator", "key_events_for"]

log = logging.getLogger("bff.auth")

_KEY_START = b"bff_"


def key_events_for(config: GatewayConfig) -> KeyEvents:
    """Redis pub/sub when ``state.backend`` is redis, else this process only."""
    state = config.state
    if state.backend == "redis" and state.redis_url:
        return RedisKeyEvents(
            state.redis_url,
            channel=f"{state.key_prefix}auth:api-keys",
            connect_timeout=state.redis_connect_timeout,
            socket_timeout=state.redis_socket_timeout,
        )
    return LocalKeyEvents()


class Authenticator:
    """Verifies JWTs and API keys for one gateway process.

    Build it with :meth:`from_config`; :meth:`start` at start-up (JWKS prefetch, background
    tasks), :meth:`aclose` at shutdown (flushes ``last_used``).
    """

    def __init__(
        self,
        *,
        jwt: JWTVerifier | None = None,
        keys: ApiKeyVerifier | None = None,
        key_events: KeyEvents | None = None,
        api_key_header: str = "X-API-Key",
    ) -> None:
        self.jwt = jwt if jwt is not None and jwt.enabled else None
        self.keys = keys
        self.key_events = key_events or LocalKeyEvents()
        self.api_key_header = api_key_header.lower().encode("latin-1")
        if keys is not None:
            self.key_events.subscribe(keys.cache.invalidate)

    @classmethod
    def from_config(cls, config: GatewayConfig, store: Store | None) -> Authenticator:
        """JWT verification from ``auth.jwt``; API keys from ``store`` (None: keys refused)."""
        jwt_cfg = config.auth.jwt
        jwks = None
        if jwt_cfg.jwks_url:
            jwks = JWKSClient(
                jwt_cfg.jwks_url,
                ttl=jwt_cfg.jwks_cache_ttl,
                min_refresh_interval=jwt_cfg.jwks_min_refresh_interval,
            )
        verifier = JWTVerifier.from_config(jwt_cfg, jwks=jwks)
        keys = None
        events = key_events_for(config)
        if store is not None:
            cache = ApiKeyCache(store.api_keys.find_by_prefix, ttl=config.auth.api_keys.cache_ttl)
            keys = ApiKeyVerifier(cache, LastUsedRecorder(store.api_keys.touch_last_used))
        return cls(
            jwt=verifier,
            keys=keys,
            key_events=events,
            api_key_header=config.auth.api_keys.header,
        )

    async def start(self) -> None:
        """Fetch JWKS keys and start the background tasks."""
        if self.jwt is not None and self.jwt.jwks is not None:
            await self.jwt.jwks.start()
        if self.keys is not None and self.keys.last_used is not None:
            self.keys.last_used.start()
        self.key_events.start()

    async def aclose(self) -> None:
        """Stop background work; write pending ``last_used`` times."""
        await self.key_events.aclose()
        if self.keys is not None:
            await self.keys.cache.aclose()
            if self.keys.last_used is not None:
                await self.keys.last_used.aclose()
        if self.jwt is not None and self.jwt.jwks is not None:
            await self.jwt.jwks.aclose()

    async def authenticate(
        self, authorization: bytes | None, api_key: bytes | None, client_ip: str | None
    ) -> Principal:
        """The caller of a request with these header values (at least one is not None).

        Raises :class:`InvalidCredentials` (401) or, when an API key must be looked up and the
        store is down, :class:`~bff.errors.ServiceUnavailable` (503).
        """
        if authorization is not None:
            if api_key is not None:
                raise InvalidCredentials(
                    "send one credential: a bearer token or an API key, not both",
                    "both Authorization and an API key header",
                )
            scheme, _, credentials = authorization.strip().partition(b" ")
            credentials = credentials.strip()
            if scheme.lower() != b"bearer" or not credentials:
                raise InvalidCredentials(
                    "the Authorization header must be 'Bearer <token>'", "not a bearer credential"
                )
            if credentials.startswith(_KEY_START):
                return await self.verify_key(credentials, client_ip)
            return await self.verify_token(credentials, client_ip)
        assert api_key is not None
        return await self.verify_key(api_key.strip(), client_ip)

    async def verify_token(self, token: bytes, client_ip: str | None) -> Principal:
        """The principal of a bearer JWT."""
        if self.jwt is None:
            raise InvalidCredentials("invalid bearer token", "JWT verification is not configured")
        return await self.jwt.verify(token, client_ip)

    async def verify_key(self, key: bytes, client_ip: str | None) -> Principal:
        """The principal of an API key."""
        if self.keys is None:
            raise InvalidCredentials("invalid API key", "API keys are not enabled", scheme="ApiKey")
        return await self.keys.verify(key, client_ip)
