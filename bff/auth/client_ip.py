"""Who is at the other end: the client address a request is attributed to.

:func:`peer_ip` is the socket peer. A deployment behind proxies swaps in a resolver that believes
``X-Forwarded-For`` from trusted proxies only (the rate-limit layer provides one); whatever
resolver is used is passed to :class:`~bff.auth.layer.AuthenticationLayer`.
"""

from __future__ import annotations

from collections.abc import Callable

from bff.asgi import Scope

__all__ = ["ClientIpResolver", "peer_ip"]

ClientIpResolver = Callable[[Scope], "str | None"]
"""``resolver(scope) -> address or None``."""


def peer_ip(scope: Scope) -> str | None:
    """The address of the socket peer, or None when the server does not say."""
    client = scope.get("client")
    return client[0] if client else None
