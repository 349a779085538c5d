"""CBOR (RFC 8949) for devices: GraphQL requests and responses in a compact binary form.

Only the JSON subset of CBOR is accepted in a request: maps with text keys, arrays, text, finite
numbers, booleans and null. Tags (dates, bignums, regular expressions, shared references that
could build a cycle ...), byte strings and ``undefined`` are refused, as are trailing bytes and
nesting deeper than :data:`MAX_DEPTH`: any of these is a 400, and what reaches the executor is
exactly what the same request in JSON would have produced.
"""

from __future__ import annotations

import io
import math
from typing import Any

import cbor2

from bff.errors import BadRequest

__all__ = ["CBOR", "MAX_DEPTH", "decode_request", "encode"]

CBOR = "application/cbor"
MAX_DEPTH = 64

_INVALID = "the request body is not valid CBOR"


def _refuse_tag(*_: Any) -> Any:
    raise cbor2.CBORDecodeError("CBOR tags are not accepted")


# Every tag cbor2 decodes by itself (RFC 8949 section 3.4 and the IANA registry's common ones);
# any other tag reaches the tag hook, which refuses it too.
_SEMANTIC_TAGS: tuple[int, ...] = (0, 1, 2, 3, 4, 5, 21, 22, 23, 24, 25, 28, 29, 30, 32, 33, 34)
_SEMANTIC_TAGS += (35, 36, 37, 38, 100, 256, 258, 260, 261, 262, 263, 270, 1004, 55799)
_NO_TAGS = dict.fromkeys(_SEMANTIC_TAGS, _refuse_tag)


def decode_request(body: bytes) -> Any:
    """The value of a CBOR request body (raises :class:`BadRequest` as the docstring says)."""
    stream = io.BytesIO(body)
    decoder = cbor2.CBORDecoder(
        stream,
        tag_hook=_refuse_tag,
        semantic_decoders=_NO_TAGS,
        max_depth=MAX_DEPTH,
        strict_hashable_types=True,
    )
    try:
        value = decoder.decode()
    except (cbor2.CBORError, ValueError, TypeError, OverflowError, MemoryError, RecursionError):
        raise BadRequest(_INVALID) from None
    if stream.tell() != len(body):
        raise BadRequest(f"{_INVALID}: trailing bytes after the first item")
    _check(value, 0)
    return value


def _check(value: Any, depth: int) -> None:
    kind = type(value)
    if kind is str or kind is bool or value is None or kind is int:
        return
    if kind is float:
        if not math.isfinite(value):
            raise BadRequest(f"{_INVALID}: numbers must be finite")
        return
    if depth >= MAX_DEPTH:
        raise BadRequest(f"{_INVALID}: nested too deeply")
    if kind is list:
        for item in value:
            _check(item, depth + 1)
        return
    if kind is dict:
        for key, item in value.items():
            if type(key) is not str:
                raise BadRequest(f"{_INVALID}: map keys must be text strings")
            _check(item, depth + 1)
        return
    raise BadRequest(f"{_INVALID}: only the JSON subset of CBOR is accepted")


def encode(value: Any) -> bytes:
    """``value`` (a GraphQL response: JSON-shaped) as CBOR."""
    return cbor2.dumps(value)
