"""What a route's response cache may store, and for how long (RFC 9111, for a shared cache).

:class:`RouteCachePolicy` is a route's ``cache:`` compiled once with the route;
:meth:`RouteCachePolicy.storable` reads an upstream answer's status and headers: a ``200``
without ``Set-Cookie``, ``Content-Encoding``, ``Vary: *`` or more than :data:`MAX_VARY_HEADERS`
``Vary`` names, whose ``Cache-Control`` has neither ``no-store`` nor ``no-cache`` (nor ``private``
unless the route keys entries by caller). Fresh for ``s-maxage``, else ``max-age``, else the
route's ``ttl``: the upstream knows its data best.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bff.config import RouteCacheConfig

__all__ = ["MAX_VARY_HEADERS", "NOT_KEYED", "RouteCachePolicy"]

MAX_VARY_HEADERS = 16
"""An upstream ``Vary`` naming more headers than this is not stored (a key per combination of
that many values would make a cache of one-offs)."""

NOT_KEYED = frozenset({"accept-encoding", "x-forwarded-host", "x-forwarded-for", "x-request-id"})
"""Request headers the gateway sets or drops for the upstream on a cacheable request: a ``Vary``
naming them changes nothing the upstream saw, so they do not split entries."""


class RouteCachePolicy:
    """A route's ``cache:``, compiled once with the route."""

    __slots__ = ("authorized", "private", "stale_if_error", "ttl", "vary")

    def __init__(self, config: RouteCacheConfig) -> None:
        self.ttl = config.ttl
        self.stale_if_error = config.stale_if_error
        #: The configured ``vary`` request headers (lower case), keyed on every request.
        self.vary = tuple(name.lower().encode("latin-1") for name in config.vary)
        self.private = config.private
        self.authorized = config.authorized

    def storable(
        self, status: int, headers: Sequence[tuple[bytes, bytes]]
    ) -> tuple[float | None, tuple[str, ...]]:
        """``(seconds fresh, or None when the answer must not be stored; the upstream's Vary
        names to key on besides the configured ones)``."""
        if status != 200:
            return None, ()
        directives: dict[str, str] = {}
        vary: list[str] = []
        for name, value in headers:
            name = name.lower()
            if name == b"set-cookie":
                return None, ()
            if name == b"content-encoding" and value.strip().lower() != b"identity":
                return None, ()
            if name == b"cache-control":
                for item in value.decode("latin-1").split(","):
                    key, _, arg = item.partition("=")
                    directives[key.strip().lower()] = arg.strip().strip('"')
            elif name == b"vary":
                text = value.decode("latin-1")
                vary.extend(v.strip().lower() for v in text.split(",") if v.strip())
        if "no-store" in directives or "no-cache" in directives:
            return None, ()
        if "private" in directives and not self.private:
            return None, ()
        names = [v for v in dict.fromkeys(vary) if v.encode("latin-1") not in self.vary]
        if "*" in names or len(names) > MAX_VARY_HEADERS:
            return None, ()
        freshness: float = self.ttl
        for directive in ("s-maxage", "max-age"):
            if directive in directives:
                arg = directives[directive]
                if not arg.isdigit():
                    return None, ()  # a malformed age is stale (RFC 9111 section 4.2.1)
                freshness = float(int(arg))
                break
        if freshness <= 0:
            return None, ()
        return freshness, tuple(n for n in names if n not in NOT_KEYED)
