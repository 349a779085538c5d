"""The unit of work that flows down an upstream chain."""

from __future__ import annotations

from collections.abc import AsyncIterable, Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import httpx

if TYPE_CHECKING:
    from bff.upstream.target import Target

__all__ = ["IDEMPOTENT_METHODS", "Handler", "UpstreamCall"]

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})


@dataclass(slots=True)
class UpstreamCall:
    """One request to an upstream service, before a target is chosen.

    ``path`` is the path below the target's base URL (percent-encoded; sent as it is when it
    needs no quoting) and ``query`` the raw query string (bytes forwarded verbatim, never
    re-encoded). ``headers`` are ``(name, value)`` pairs, all ``str`` or all ``bytes``.
    ``template`` names the endpoint for metrics and the N+1 guard (``/users/{id}``); it defaults
    to the path. With ``stream`` the response body is left
    unread for the caller to iterate and close; otherwise it is read before the chain returns, so
    failures while reading count against the upstream like any other. ``timeout`` and
    ``connect_timeout`` replace the upstream's per-try read and connect timeouts (a route's
    override); the request's remaining budget caps them either way.
    """

    method: str
    path: str
    query: bytes = b""
    headers: list[tuple[str, str]] | list[tuple[bytes, bytes]] = field(default_factory=list)
    content: bytes | AsyncIterable[bytes] | None = None
    timeout: float | None = None
    connect_timeout: float | None = None
    stream: bool = False
    template: str = ""
    client_ip: str | None = None
    #: Set once a request body has started to flow; a call past that point is never retried.
    body_sent: bool = False
    #: Set by a streamed body that failed on the client's side (too large, client gone): the
    #: chain raises it instead of blaming the upstream.
    body_error: Exception | None = None
    #: The target of the latest try (a retry avoids it when another target is available).
    target: Target | None = None
    #: Retries made so far.
    retries: int = 0

    @property
    def idempotent(self) -> bool:
        return self.method in IDEMPOTENT_METHODS

    @property
    def endpoint(self) -> str:
        return self.template or self.path


Handler = Callable[[UpstreamCall], Awaitable[httpx.Response]]
