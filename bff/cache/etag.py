"""Entity tags and ``If-None-Match`` (RFC 9110 section 8.8.3 and 13.1.2).

Tags the gateway makes are weak (``W/"..."``): one tag per response body whatever its content
coding, which is what weak comparison, the comparison ``If-None-Match`` uses, is for.
A malformed ``If-None-Match`` is a 400, not silently a miss: a client sending junk learns so.
"""

from __future__ import annotations

import hashlib
import re
from typing import Literal

from bff.errors import BadRequest

__all__ = ["ANY", "make_etag", "none_match", "parse_if_none_match"]

ANY: Literal["*"] = "*"
MAX_HEADER_BYTES = 8192
MAX_TAGS = 64

# entity-tag = [ "W/" ] DQUOTE *etagc DQUOTE; etagc = %x21 / %x23-7E / obs-text
_TAG = re.compile(rb'\s*(W/)?("[\x21\x23-\x7e\x80-\xff]*")\s*')


def make_etag(body: bytes) -> str:
    """A weak tag for ``body``: ``W/"<32 hex digits>"``."""
    return f'W/"{hashlib.blake2b(body, digest_size=16).hexdigest()}"'


def parse_if_none_match(value: bytes) -> list[str] | Literal["*"]:
    """The opaque tags (quotes included, ``W/`` dropped) of an ``If-None-Match`` value, or
    :data:`ANY`; raises :class:`BadRequest` for anything else."""
    if len(value) > MAX_HEADER_BYTES:
        raise BadRequest("the If-None-Match header is too long")
    if value.strip() == b"*":
        return ANY
    tags: list[str] = []
    for item in value.split(b","):
        if not item.strip():
            continue  # empty list elements are allowed
        match = _TAG.fullmatch(item)
        if match is None:
            raise BadRequest('If-None-Match must be "*" or a list of entity tags ("...")')
        tags.append(match.group(2).decode("latin-1"))
        if len(tags) > MAX_TAGS:
            raise BadRequest(f"If-None-Match lists more than {MAX_TAGS} entity tags")
    if not tags:
        raise BadRequest('If-None-Match must be "*" or a list of entity tags ("...")')
    return tags


def none_match(condition: list[str] | Literal["*"], etag: str) -> bool:
    """True when ``condition`` (parsed ``If-None-Match``) matches ``etag``, weakly: the
    answer is then 304 Not Modified."""
    if condition == ANY:
        return True
    opaque = etag[2:] if etag.startswith("W/") else etag
    return opaque in condition
