"""Bearer JWT verification, with a cache of verified tokens.

Checks, in order: size (``max_token_bytes``, 8 KB by default, refused unread), header syntax,
algorithm (``none`` never; only those listed *and* with a configured key: HS* need ``secret``,
the others ``jwks_url``, so an HS token is refused when only asymmetric keys are configured and a
JWKS key can never verify an HS token), signature, ``exp`` (required), ``nbf``, ``iat`` (not in
the future), ``iss`` and ``aud`` when configured, all with ``leeway``; then the identity claims
(:func:`bff.auth.claims.principal_from_claims`).

A verified token is cached (by its SHA-256, in a bounded LRU) until it expires, so a repeated
token costs a hash and a dictionary lookup.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import time
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import jwt
import orjson
from cachetools import LRUCache

from bff.auth.claims import principal_from_claims
from bff.auth.errors import InvalidCredentials
from bff.auth.jwks import JWKSClient
from bff.auth.principal import Principal

if TYPE_CHECKING:
    from bff.config import JWTConfig

__all__ = ["JWTVerifier"]

log = logging.getLogger("bff.auth.jwt")

_INVALID = "invalid bearer token"
# PyJWT >= 2.10 warns on every decode with a short HMAC secret; older releases do not.
_KEY_LENGTH_WARNING: type[Warning] = getattr(jwt, "InsecureKeyLengthWarning", UserWarning)


class _Entry:
    """A verified token: its principal until ``expires``, and the last per-address copy."""

    __slots__ = ("expires", "last", "principal")

    def __init__(self, principal: Principal, expires: float) -> None:
        self.principal = principal
        self.expires = expires
        self.last = principal

    def seen_from(self, client_ip: str | None) -> Principal:
        # Clients mostly keep their address: reuse the last copy rather than build one.
        last = self.last
        if last.client_ip != client_ip:
            last = self.last = self.principal.with_client_ip(client_ip)
        return last


def _header(token: bytes) -> dict[str, Any]:
    """The JOSE header, decoded just enough to choose a key (PyJWT verifies everything)."""
    segment = token.partition(b".")[0]
    try:
        header = orjson.loads(base64.urlsafe_b64decode(segment + b"=" * (-len(segment) % 4)))
    except (binascii.Error, ValueError):
        raise InvalidCredentials(_INVALID, "not a well-formed JWT") from None
    if not isinstance(header, dict):
        raise InvalidCredentials(_INVALID, "not a well-formed JWT")
    return header


class JWTVerifier:
    """Verifies bearer tokens for one ``auth.jwt`` configuration.

    ``secret`` enables HS256/384/512; ``jwks`` the asymmetric algorithms. ``algorithms`` is the
    allow-list; only the listed algorithms that have a key are usable.
    """

    def __init__(
        self,
        *,
        algorithms: list[str],
        secret: str | None = None,
        jwks: JWKSClient | None = None,
        issuer: str | None = None,
        audience: list[str] | None = None,
        leeway: float = 30.0,
        max_token_bytes: int = 8192,
        tier_claim: str = "tier",
        default_tier: str = "free",
        cache_size: int = 10_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.secret = secret.encode() if secret else None
        self.jwks = jwks
        self.usable = frozenset(
            a
            for a in algorithms
            if a != "none" and (self.secret if a.startswith("HS") else jwks) is not None
        )
        self.issuer = issuer
        self.audience = list(audience or ())
        self.leeway = leeway
        self.max_token_bytes = max_token_bytes
        self.tier_claim = tier_claim
        self.default_tier = default_tier
        self._clock = clock
        self._cache: LRUCache[bytes, _Entry] = LRUCache(maxsize=cache_size)
        short = sorted(
            a
            for a in self.usable
            if a.startswith("HS") and len(self.secret or b"") < int(a[2:]) // 8
        )
        if short:
            # Said once here; PyJWT's per-token warning is silenced in _verify.
            log.warning(
                "auth.jwt.secret is shorter than RFC 7518 recommends for %s "
                "(32 bytes for HS256, 48 for HS384, 64 for HS512): use a longer random secret",
                ", ".join(short),
            )
        self._options: dict[str, Any] = {
            "require": ["exp", "sub"],
            "verify_aud": bool(self.audience),
            "verify_iss": issuer is not None,
        }

    @classmethod
    def from_config(cls, config: JWTConfig, *, jwks: JWKSClient | None = None) -> JWTVerifier:
        """A verifier for the ``auth.jwt`` section of the configuration."""
        return cls(
            algorithms=list(config.algorithms),
            secret=config.secret,
            jwks=jwks,
            issuer=config.issuer,
            audience=list(config.audience),
            leeway=config.leeway,
            max_token_bytes=config.max_token_bytes,
            tier_claim=config.tier_claim,
            default_tier=config.default_tier,
        )

    @property
    def enabled(self) -> bool:
        """False when no algorithm has a key (every bearer token is refused)."""
        return bool(self.usable)

    def _cached(self, digest: bytes) -> _Entry | None:
        entry = self._cache.get(digest)
        if entry is not None and entry.expires <= self._clock():
            self._cache.pop(digest, None)
            return None
        return entry

    def cached(self, token: bytes) -> Principal | None:
        """The principal of an already verified, unexpired token (no I/O)."""
        if len(token) > self.max_token_bytes:
            return None
        entry = self._cached(hashlib.sha256(token).digest())
        return None if entry is None else entry.principal

    async def verify(self, token: bytes, client_ip: str | None = None) -> Principal:
        """The principal of ``token`` (ASCII bytes) seen from ``client_ip``;
        :class:`InvalidCredentials` if the token is invalid."""
        if len(token) > self.max_token_bytes:
            raise InvalidCredentials(_INVALID, f"token longer than {self.max_token_bytes} bytes")
        digest = hashlib.sha256(token).digest()
        entry = self._cached(digest)
        if entry is None:
            principal, expires = await self._verify(token)
            entry = self._cache[digest] = _Entry(principal, expires)
        return entry.seen_from(client_ip)

    async def _verify(self, token: bytes) -> tuple[Principal, float]:
        header = _header(token)
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self.usable:
            raise InvalidCredentials(_INVALID, f"algorithm {str(alg)[:20]!r} is not accepted")
        key: Any
        if alg.startswith("HS"):
            key = self.secret
        else:
            assert self.jwks is not None
            kid = header.get("kid")
            if kid is not None and not isinstance(kid, str):
                raise InvalidCredentials(_INVALID, "the 'kid' header is not a string")
            key = await self.jwks.key_for(kid, alg)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", _KEY_LENGTH_WARNING)
                claims = jwt.decode(
                    token,
                    key,
                    algorithms=[alg],
                    options=self._options,  # type: ignore[arg-type]
                    audience=self.audience or None,
                    issuer=self.issuer,
                    leeway=self.leeway,
                )
        except jwt.ExpiredSignatureError:
            raise InvalidCredentials("bearer token expired", "expired") from None
        except jwt.ImmatureSignatureError:
            raise InvalidCredentials(
                "bearer token not yet valid", "nbf or iat in the future"
            ) from None
        except jwt.InvalidAudienceError:
            raise InvalidCredentials(_INVALID, "wrong audience") from None
        except jwt.InvalidIssuerError:
            raise InvalidCredentials(_INVALID, "wrong issuer") from None
        except jwt.InvalidSignatureError:
            raise InvalidCredentials(_INVALID, "bad signature") from None
        except jwt.MissingRequiredClaimError as exc:
            raise InvalidCredentials(_INVALID, f"missing claim {exc.claim!r}") from None
        except Exception as exc:  # any other malformation: never a 500
            log.debug("bearer token rejected: %s", type(exc).__name__)
            raise InvalidCredentials(_INVALID, "malformed token or claims") from None
        exp = claims.get("exp")
        if not isinstance(exp, int | float) or isinstance(exp, bool):
            raise InvalidCredentials(_INVALID, "the 'exp' claim is not a number")
        principal = principal_from_claims(
            claims, tier_claim=self.tier_claim, default_tier=self.default_tier
        )
        return principal, float(exp) + self.leeway
