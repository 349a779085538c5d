"""Checking a presented API key against its (cached) record.

An unknown prefix and a known prefix with the wrong secret take the same steps: the presented
key is hashed and compared, in constant time, with the record's hash or with a dummy one, and
both fail with the same message. Whether a key is revoked, expired or used from outside its
allowlist is only looked at after the secret matched, so nothing is learned without the key.
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Callable

from bff.auth.api_keys import hash_api_key, key_prefix
from bff.auth.errors import InvalidCredentials
from bff.auth.key_cache import ApiKeyCache
from bff.auth.last_used import LastUsedRecorder
from bff.auth.principal import Principal
from bff.errors import ServiceUnavailable
from bff.store import StoreError

__all__ = ["ApiKeyVerifier"]

log = logging.getLogger("bff.auth.keys")

_INVALID = "invalid API key"
_DUMMY_HASH = hash_api_key(b"bff_" + b"0" * 43)


class ApiKeyVerifier:
    """Turns a presented key into an ``api_key`` :class:`Principal`."""

    def __init__(
        self,
        cache: ApiKeyCache,
        last_used: LastUsedRecorder | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.cache = cache
        self.last_used = last_used
        self._clock = clock

    async def verify(
        self,
        presented: bytes,
        client_ip: str | None,
        *,
        check_ip: bool = True,
        record_use: bool = True,
    ) -> Principal:
        """The key's principal (with ``client_ip``); :class:`InvalidCredentials` otherwise.

        :class:`ServiceUnavailable` when the key's record must be read and the store is down.
        ``check_ip=False`` skips the allowlist and ``record_use=False`` leaves ``last_used``
        alone (for the admin API's checks, which are not uses of the key).
        """
        prefix = key_prefix(presented)
        if prefix is None:
            raise InvalidCredentials(_INVALID, "not shaped like a bff API key", scheme="ApiKey")
        try:
            cached = await self.cache.get(prefix)
        except StoreError as exc:
            log.warning("API key lookup failed: %s", exc)
            raise ServiceUnavailable(
                "API keys cannot be checked right now", retry_after=2
            ) from None
        matches = hmac.compare_digest(
            hash_api_key(presented), cached.record.key_hash if cached else _DUMMY_HASH
        )
        if cached is None or not matches:
            reason = "unknown key prefix" if cached is None else "wrong secret"
            raise InvalidCredentials(_INVALID, reason, scheme="ApiKey")
        record = cached.record
        if not record.active:
            raise InvalidCredentials(_INVALID, "key revoked", scheme="ApiKey")
        if record.is_expired(self._clock()):
            raise InvalidCredentials(_INVALID, "key expired", scheme="ApiKey")
        if cached.problem is not None:
            raise InvalidCredentials(_INVALID, cached.problem, scheme="ApiKey")
        if check_ip and not cached.allows_ip(client_ip):
            raise InvalidCredentials(
                _INVALID,
                f"client address {client_ip} is not in the key's allowlist",
                scheme="ApiKey",
            )
        if record_use and self.last_used is not None:
            self.last_used.touch(record.id)
        return cached.principal.with_client_ip(client_ip)
