"""The unit of work that flows down an upstream chain."""

from __future__ import annotations

from collections.abc import AsyncIterable, Awaitable, Callable
from dataclasses import dataclass, field

import httpx

__all__ = ["IDEMPOTENT_METHODS", "Handler", "UpstreamCall"]

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})


@dataclass(slots=True)
class UpstreamCall:
    """One request to an upstream service, before a target is chosen.

    ``path`` is the path below the target's base URL and ``query`` the raw query string (bytes
    forwarded verbatim, never re-encoded). ``template`` names the endpoint for metrics and the N+1
    guard (``/users/{id}``); it defaults to the path. With ``stream`` the response body is left
    unread for the caller to iterate and close; otherwise it is read before the chain returns, so
    failures while reading count against the upstream like any other.
    """

    method: str
    path: str
    query: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    content: bytes | AsyncIterable[bytes] | None = None
    timeout: float | None = None
    stream: bool = False
    template: str = ""
    client_ip: str | None = None
    #: Set once a request body has started to flow; a call past that point is never retried.
    body_sent: bool = False

    @property
    def idempotent(self) -> bool:
        return self.method in IDEMPOTENT_METHODS

    @property
    def endpoint(self) -> str:
        return self.template or self.path


Handler = Callable[[UpstreamCall], Awaitable[httpx.Response]]
