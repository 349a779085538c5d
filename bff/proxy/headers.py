"""Header hygiene both ways, and per-route header transforms.

Towards the upstream: hop-by-hop headers (``Connection`` and the headers it names,
``Keep-Alive``, ``TE``, ``Trailer``, ``Transfer-Encoding``, ``Upgrade``, ``Proxy-Authenticate``,
``Proxy-Authorization``, ``Proxy-Connection``) and ``Expect`` are dropped; ``Host`` becomes the
upstream's; ``X-Forwarded-For`` gets the peer's address appended; ``X-Forwarded-Proto``,
``X-Forwarded-Host`` and ``X-Request-ID`` are set by the gateway (the caller's are replaced).
A CR, LF or NUL in any header value refuses the request. Towards the client: hop-by-hop headers,
``Server`` and ``X-Powered-By`` are dropped, and ``Date`` (the gateway's server sends its own).
Headers are raw ASGI ``(bytes, bytes)`` pairs with lower-case names throughout; nothing is
decoded.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING

from bff.errors import BadRequest

if TYPE_CHECKING:
    from bff.config import HeaderTransformConfig

__all__ = [
    "HOP_BY_HOP",
    "ForwardedHeaders",
    "HeaderTransform",
    "forward_request_headers",
    "forward_response_headers",
]

RawHeaders = list[tuple[bytes, bytes]]

_CR_LF_NUL = re.compile(rb"[\r\n\x00]")

HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"proxy-authenticate",
        b"proxy-authorization",
    }
)
# Request headers the gateway sets itself, or never forwards.
_REQUEST_DROP = HOP_BY_HOP | {
    b"host",
    b"expect",
    b"x-forwarded-for",
    b"x-forwarded-proto",
    b"x-forwarded-host",
    b"x-request-id",
}
# ``Date`` too: the gateway's server sets its own (two would be invalid), as nginx does.
_RESPONSE_DROP = HOP_BY_HOP | {b"server", b"x-powered-by", b"date"}


class ForwardedHeaders:
    """The result of :func:`forward_request_headers`."""

    __slots__ = ("chunked", "content_length", "headers")

    def __init__(self, headers: RawHeaders, content_length: int | None, chunked: bool) -> None:
        self.headers = headers
        #: The declared body size, if any.
        self.content_length = content_length
        #: The caller sent a chunked body (no declared size).
        self.chunked = chunked


def forward_request_headers(
    headers: Iterable[tuple[bytes, bytes]],
    *,
    peer: bytes | None,
    scheme: bytes,
    request_id: bytes | None,
) -> ForwardedHeaders:
    """The headers to send upstream for a request's ``headers`` (one pass).

    Raises :class:`BadRequest` when a value holds CR, LF or NUL, or the body length is
    malformed. (Credentials are withheld before this, by the route's guard.)
    """
    bad_char = _CR_LF_NUL.search
    out: RawHeaders = []
    forwarded_for: bytes | None = None
    host: bytes | None = None
    connection: bytes | None = None
    length: int | None = None
    chunked = False
    for name, value in headers:
        if bad_char(value) is not None:
            raise BadRequest("a header value contains CR, LF or NUL")
        if name in _REQUEST_DROP:
            if name == b"x-forwarded-for":
                forwarded_for = value if forwarded_for is None else forwarded_for + b", " + value
            elif name == b"host":
                host = value
            elif name == b"connection":
                connection = value if connection is None else connection + b"," + value
            elif name == b"transfer-encoding":
                chunked = True
            continue
        if name == b"content-length":
            length = _content_length(value, length)
        out.append((name, value))
    if connection is not None:
        named = {t.strip().lower() for t in connection.split(b",")}
        out = [h for h in out if h[0] not in named]
    if chunked and length is not None:
        # Transfer-Encoding wins over Content-Length (RFC 9112 6.3): the length is not to be
        # trusted, and the upstream gets the body chunked.
        out = [h for h in out if h[0] != b"content-length"]
        length = None
    if peer is not None:
        forwarded_for = peer if forwarded_for is None else forwarded_for + b", " + peer
    if forwarded_for is not None:
        out.append((b"x-forwarded-for", forwarded_for))
    out.append((b"x-forwarded-proto", scheme))
    if host is not None:
        out.append((b"x-forwarded-host", host))
    if request_id is not None:
        out.append((b"x-request-id", request_id))
    return ForwardedHeaders(out, length, chunked)


def _content_length(value: bytes, previous: int | None) -> int:
    if not value.isdigit():
        raise BadRequest("invalid Content-Length")
    length = int(value)
    if previous is not None and previous != length:
        raise BadRequest("conflicting Content-Length headers")
    return length


def forward_response_headers(
    headers: Iterable[tuple[bytes, bytes]], transform: HeaderTransform | None = None
) -> RawHeaders:
    """The upstream response's headers as the client gets them."""
    out: RawHeaders = []
    connection: bytes | None = None
    for name, value in headers:
        name = name.lower()
        if name in _RESPONSE_DROP:
            if name == b"connection":
                connection = value if connection is None else connection + b"," + value
            continue
        out.append((name, value))
    if connection is not None:
        named = {t.strip().lower() for t in connection.split(b",")}
        out = [h for h in out if h[0] not in named]
    if transform is not None:
        out = transform.apply(out)
    return out


class HeaderTransform:
    """A route's header edits, applied in order: remove, rename, add (replacing)."""

    __slots__ = ("add", "add_names", "remove", "rename")

    def __init__(
        self,
        *,
        add: dict[str, str] | None = None,
        remove: Iterable[str] = (),
        rename: dict[str, str] | None = None,
    ) -> None:
        self.remove = frozenset(n.lower().encode("latin-1") for n in remove)
        self.rename = {
            k.lower().encode("latin-1"): v.lower().encode("latin-1")
            for k, v in (rename or {}).items()
        }
        self.add = [
            (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (add or {}).items()
        ]
        self.add_names = frozenset(k for k, _ in self.add)

    @classmethod
    def from_config(cls, config: HeaderTransformConfig) -> HeaderTransform | None:
        """The compiled transform, or ``None`` when it does nothing."""
        if not (config.add or config.remove or config.rename):
            return None
        return cls(add=config.add, remove=config.remove, rename=config.rename)

    def apply(self, headers: RawHeaders) -> RawHeaders:
        """``headers`` edited (a new list)."""
        remove, rename, replaced = self.remove, self.rename, self.add_names
        out: RawHeaders = []
        for name, value in headers:
            if name in remove:
                continue
            name = rename.get(name, name)
            if name not in replaced:
                out.append((name, value))
        out.extend(self.add)
        return out
