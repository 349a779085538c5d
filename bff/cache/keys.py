"""Cache keys: built from untrusted parts, never from them verbatim.

A key made by concatenating request data can be steered: a path holding the separator, a
header value with a line break, two different requests that join into the same text. So
:func:`cache_key` refuses parts holding control characters (a 400 for the client), and hashes the
length-prefixed parts: the key has a fixed size and two different part lists never meet.
"""

from __future__ import annotations

import hashlib
import re

from bff.errors import BadRequest

__all__ = ["InvalidCacheKey", "cache_key", "check_key"]

MAX_KEY_LENGTH = 512

_NAMESPACE = re.compile(r"[A-Za-z0-9_.:-]{1,128}")
_KEY = re.compile(r"[!-~]{1,512}")  # printable ASCII, no space: MAX_KEY_LENGTH
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_CONTROL_BYTES = re.compile(rb"[\x00-\x1f\x7f]")


class InvalidCacheKey(BadRequest):
    """A part of a cache key holds control characters (answered 400)."""


def cache_key(namespace: str, *parts: str | bytes) -> str:
    """``namespace:<sha256 of parts>``; raises :class:`InvalidCacheKey` when a part holds a
    control character. ``namespace`` is the caller's (``gql:web``), never request data."""
    if not _NAMESPACE.fullmatch(namespace):
        raise ValueError(f"invalid cache namespace {namespace!r}")
    digest = hashlib.sha256()
    for part in parts:
        raw = part.encode("utf-8", "surrogatepass") if isinstance(part, str) else part
        if _CONTROL_BYTES.search(raw):
            raise InvalidCacheKey("the request holds control characters where none are allowed")
        digest.update(b"%d:" % len(raw))
        digest.update(raw)
    return f"{namespace}:{digest.hexdigest()}"


def check_key(key: str) -> str:
    """``key`` if it is 1-512 printable ASCII characters without spaces, else ValueError
    (stores call this: a bad key is a bug of the caller, not bad input)."""
    if not _KEY.fullmatch(key):
        shown = _CONTROL.sub("?", key[:60])
        raise ValueError(f"invalid cache key {shown!r}: use cache_key() to build keys")
    return key
