"""Request paths, normalized before matching so that no request escapes its route's prefix.

The proxy matches and forwards the *normalized* path (RFC 3986 section 6 normalization, made
strict):

- percent-encoded unreserved characters are decoded (``%7e`` -> ``~``, ``%2e`` -> ``.``), other
  escapes are kept, with upper-case hex; a malformed escape (``%zz``) is refused;
- empty segments (``//``) and ``.`` segments are dropped; ``..`` removes the segment before it
  (never going above ``/``), whether it was written ``..`` or ``%2e%2e``;
- an encoded NUL (``%00``) is always refused, as are raw control, space and non-ASCII bytes;
- an encoded slash or backslash (``%2F``, ``%5C``, or a raw ``\\``) is reported, and the route
  decides: refused with 400 unless it sets ``allow_encoded_slashes``, in which case it is
  forwarded still encoded; even then, a segment that decodes to a ``..`` part is refused.

So ``/api/users/../../admin`` is matched as ``/admin`` and ``/api/users/%2e%2e/x`` as
``/api/x``: whatever route serves the result, the path sent upstream lies inside that route's
prefix.
"""

from __future__ import annotations

import re
from urllib.parse import quote, unquote

from bff.asgi import Scope
from bff.errors import BadRequest

__all__ = ["normalize_path", "raw_path"]

_BAD_RAW = re.compile(rb"[\x00-\x20\x7f-\xff]")
# Anything that may need work: a bad byte, an escape, a backslash, a dot segment, a "//".
_NOT_PLAIN = re.compile(rb"[\x00-\x20\x7f-\xff%\\]|/\.|//")
_ESCAPE = re.compile(r"%(?:([0-9A-Fa-f]{2})|(.{0,2}))", re.DOTALL)
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_SLASHES = ("2F", "5C")


def raw_path(scope: Scope) -> bytes:
    """The request path as it came on the wire (without the query string)."""
    raw = scope.get("raw_path")
    if raw:
        q = raw.find(b"?")  # some servers (and httpx's ASGI transport) include the query
        return raw if q < 0 else raw[:q]
    return quote(scope.get("path") or "/", safe="/:@!$&'()*+,;=~").encode("ascii")


def normalize_path(raw: bytes) -> tuple[str, bool]:
    """``(normalized path, has an encoded slash or backslash)`` for a raw request path.

    Raises :class:`BadRequest` for a path that cannot be made safe.
    """
    if raw[:1] == b"/" and _NOT_PLAIN.search(raw) is None:
        return raw.decode("ascii"), False  # already normal: the common case, one scan
    if not raw.startswith(b"/"):
        raise BadRequest("the request path must start with '/'")
    if _BAD_RAW.search(raw) is not None:
        raise BadRequest("the request path contains a character that must be percent-encoded")
    return _normalize(raw.decode("ascii"))


def _normalize(path: str) -> tuple[str, bool]:
    any_slash = False
    out: list[str] = []
    segments = path.split("/")[1:]
    last = len(segments) - 1
    trailing = False
    for i, segment in enumerate(segments):
        slash = False
        if "%" in segment:
            segment, slash = _decode(segment)
        if "\\" in segment:
            segment = segment.replace("\\", "%5C")
            slash = True
        if segment in ("", ".", ".."):
            if segment == ".." and out:
                out.pop()
            trailing = i == last
            continue
        if slash:
            any_slash = True
            parts = re.split(r"[/\\]", unquote(segment))
            if ".." in parts:
                raise BadRequest("the request path contains an encoded dot-dot segment")
        out.append(segment)
    result = "/" + "/".join(out)
    if trailing and out:
        result += "/"
    return result, any_slash


def _decode(segment: str) -> tuple[str, bool]:
    slash = False

    def one(match: re.Match[str]) -> str:
        nonlocal slash
        hexa = match.group(1)
        if hexa is None:
            raise BadRequest("the request path contains a malformed percent-escape")
        hexa = hexa.upper()
        if hexa == "00":
            raise BadRequest("the request path contains an encoded NUL")
        char = chr(int(hexa, 16))
        if char in _UNRESERVED:
            return char
        if hexa in _SLASHES:
            slash = True
        return "%" + hexa

    return _ESCAPE.sub(one, segment), slash
