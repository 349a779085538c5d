"""The API-key format: ``bff_`` + 43 URL-safe characters (32 random bytes).

The first 8 random characters, with ``bff_``, are the key's public *prefix*: stored in clear to
find the key's record and shown in listings so people can tell keys apart. The store keeps only
the SHA-256 of the whole key; a presented key is checked by hashing it and comparing digests in
constant time. The 32 random bytes make brute force hopeless, so a fast hash is the right one.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass

__all__ = [
    "KEY_PREFIX",
    "NewApiKey",
    "generate_api_key",
    "hash_api_key",
    "key_prefix",
    "looks_like_api_key",
]

KEY_PREFIX = "bff_"
_RANDOM_BYTES = 32
_PREFIX_CHARS = 8
_FORMAT = re.compile(rb"bff_[A-Za-z0-9_-]{43,128}")


@dataclass(frozen=True, slots=True)
class NewApiKey:
    """A freshly generated key: ``plaintext`` is shown once and never stored."""

    plaintext: str
    prefix: str
    key_hash: str


def hash_api_key(key: bytes | str) -> str:
    """Hex SHA-256 of a key."""
    if isinstance(key, str):
        key = key.encode("ascii")
    return hashlib.sha256(key).hexdigest()


def generate_api_key() -> NewApiKey:
    """A new random key with its prefix and hash."""
    plaintext = KEY_PREFIX + secrets.token_urlsafe(_RANDOM_BYTES)
    return NewApiKey(
        plaintext, plaintext[: len(KEY_PREFIX) + _PREFIX_CHARS], hash_api_key(plaintext)
    )


def looks_like_api_key(value: bytes) -> bool:
    """True when ``value`` has the shape of a key (cheap; says nothing of its validity)."""
    return _FORMAT.fullmatch(value) is not None


def key_prefix(value: bytes) -> str | None:
    """The public prefix of a well-formed key, or None when ``value`` is not shaped like one."""
    if not looks_like_api_key(value):
        return None
    return value[: len(KEY_PREFIX) + _PREFIX_CHARS].decode("ascii")
