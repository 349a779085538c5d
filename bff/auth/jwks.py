"""Signing keys from a JWKS URL: fetched with httpx, cached, refreshed with restraint.

- Keys are fetched at start-up and kept for ``ttl`` seconds; after that the next lookup refreshes
  them in the background while the current keys keep serving.
- A token whose ``kid`` is unknown triggers one refresh, at most once per ``min_refresh_interval``
  seconds, so a flood of made-up kids cannot hammer the identity provider.
- A failed fetch (IdP down, junk answer) keeps the keys already known: the gateway stays usable
  while the IdP is briefly away. Until a first fetch succeeds, retries back off from 1 s up to
  ``min_refresh_interval``.
- Only public signature keys are kept: RSA (2048 bits or more), EC P-256/384/521 and Ed25519/448.
  Symmetric (``oct``) keys and anything holding private material are ignored, so a JWKS can never
  turn an HS token into a valid one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
import orjson
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

from bff.auth.errors import InvalidCredentials

__all__ = ["JWKSClient", "JWKSKey", "key_fits_algorithm", "parse_jwks"]

log = logging.getLogger("bff.auth.jwks")

_CURVES = {"ES256": "secp256r1", "ES384": "secp384r1", "ES512": "secp521r1"}
_MAX_JWKS_BYTES = 512 * 1024


@dataclass(frozen=True, slots=True)
class JWKSKey:
    """One usable public key of the set."""

    kid: str | None
    key: Any
    alg: str | None


def key_fits_algorithm(key: Any, alg: str) -> bool:
    """True when ``key`` is of the family ``alg`` needs (an RSA key never verifies ES256, ...)."""
    if alg.startswith(("RS", "PS")):
        return isinstance(key, rsa.RSAPublicKey)
    if alg in _CURVES:
        return isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == _CURVES[alg]
    if alg == "EdDSA":
        return isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey)
    return False


def parse_jwks(body: bytes) -> list[JWKSKey]:
    """The usable keys of a JWKS document; ``ValueError`` when it is not a JWKS at all."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise ValueError("the JWKS answer is not JSON") from None
    if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
        raise ValueError("the JWKS answer has no 'keys' list")
    keys: list[JWKSKey] = []
    for entry in data["keys"]:
        if not isinstance(entry, dict):
            continue
        kid = entry.get("kid")
        if kid is not None and not isinstance(kid, str):
            continue
        if entry.get("kty") not in ("RSA", "EC", "OKP") or "d" in entry:
            continue  # symmetric or private material: never a verification key here
        if entry.get("use", "sig") != "sig":
            continue
        alg = entry.get("alg")
        if alg is not None and not isinstance(alg, str):
            continue
        try:
            key = jwt.PyJWK(entry).key
        except Exception:
            log.warning("JWKS key %r is unusable; skipped", kid)
            continue
        if isinstance(key, rsa.RSAPublicKey) and key.key_size < 2048:
            log.warning("JWKS key %r is an RSA key under 2048 bits; skipped", kid)
            continue
        keys.append(JWKSKey(kid, key, alg))
    return keys


class JWKSClient:
    """The keys of one JWKS URL. Call :meth:`start` at start-up and :meth:`aclose` at shutdown."""

    def __init__(
        self,
        url: str,
        *,
        ttl: float = 300.0,
        min_refresh_interval: float = 30.0,
        timeout: float = 2.0,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self.ttl = ttl
        self.min_refresh_interval = min_refresh_interval
        self._clock = clock
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout, connect=min(timeout, 1.0)),
            transport=transport,
            follow_redirects=False,
            headers={"accept": "application/json"},
        )
        self._by_kid: dict[str, JWKSKey] = {}
        self._keys: list[JWKSKey] = []
        self._fetched_at: float | None = None
        self._last_attempt: float | None = None
        self._failures = 0
        self._refreshing: asyncio.Task[None] | None = None
        self.fetches = 0

    @property
    def keys(self) -> list[JWKSKey]:
        return list(self._keys)

    async def start(self) -> None:
        """Fetch the keys once; a failure is logged (tokens fail until a later fetch works)."""
        await self.refresh()

    async def aclose(self) -> None:
        task, self._refreshing = self._refreshing, None
        if task is not None and not task.done():
            task.cancel()
        await self._client.aclose()

    def _refresh_allowed(self, now: float) -> bool:
        if self._last_attempt is None:
            return True
        wait = self.min_refresh_interval
        if self._fetched_at is None and self._failures:
            # No key was ever fetched: retry sooner than the interval, backing off 1, 2, 4 s...
            wait = min(wait, float(2 ** min(self._failures - 1, 10)))
        return now - self._last_attempt >= wait

    async def refresh(self) -> None:
        """Fetch the keys now (one fetch at a time; concurrent callers share it)."""
        task = self._refreshing
        if task is None or task.done():
            task = self._refreshing = asyncio.ensure_future(self._fetch())
        await asyncio.shield(task)

    async def _fetch(self) -> None:
        self._last_attempt = self._clock()
        self.fetches += 1
        try:
            body = await self._download()
            keys = parse_jwks(body)
        except (httpx.HTTPError, ValueError) as exc:
            self._failures += 1
            log.warning(
                "JWKS fetch from %s failed (%s); keeping %d known key(s)",
                self.url,
                exc if isinstance(exc, ValueError) else type(exc).__name__,
                len(self._keys),
            )
            return
        self._failures = 0
        self._keys = keys
        self._by_kid = {k.kid: k for k in keys if k.kid is not None}
        self._fetched_at = self._clock()

    async def _download(self) -> bytes:
        async with self._client.stream("GET", self.url) as response:
            if response.status_code != 200:
                raise ValueError(f"the JWKS URL answered {response.status_code}")
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > _MAX_JWKS_BYTES:
                    raise ValueError("the JWKS answer is too large")
                chunks.append(chunk)
        return b"".join(chunks)

    def _find(self, kid: str | None, alg: str) -> Any | None:
        if kid is not None:
            entry = self._by_kid.get(kid)
            candidates = [entry] if entry is not None else []
        else:
            candidates = list(self._keys)
        fitting = [k for k in candidates if key_fits_algorithm(k.key, alg) and k.alg in (None, alg)]
        if kid is None and len(fitting) != 1:
            return None  # without a kid, only an unambiguous key set will do
        return fitting[0].key if fitting else None

    async def key_for(self, kid: str | None, alg: str) -> Any:
        """The public key to verify a token signed with ``alg`` by key ``kid``.

        Raises :class:`InvalidCredentials` when no fitting key is known, even after the one
        refresh allowed per interval.
        """
        now = self._clock()
        if (
            self._fetched_at is not None
            and now - self._fetched_at > self.ttl
            and (self._refreshing is None or self._refreshing.done())
            and self._refresh_allowed(now)
        ):
            # Stale: refresh in the background; the keys we have keep serving meanwhile.
            self._refreshing = asyncio.ensure_future(self._fetch())
        key = self._find(kid, alg)
        if key is not None:
            return key
        if self._refreshing is not None and not self._refreshing.done():
            await asyncio.shield(self._refreshing)
        elif self._refresh_allowed(now):
            await self.refresh()
        key = self._find(kid, alg)
        if key is None:
            raise InvalidCredentials("invalid bearer token", f"no signing key for kid {kid!r}")
        return key
