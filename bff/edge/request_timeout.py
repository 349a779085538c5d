"""``X-Request-Timeout``: a caller may shorten its request's budget, never lengthen it.

The layer opens a :func:`~bff.upstream.deadline.deadline` of the seconds asked for around the rest
of the request; the budget a GraphQL app or a passthrough route then opens nests inside it, and
nesting only ever keeps the earlier end. A value that is not a positive number of seconds is
refused with 400.
"""

from __future__ import annotations

from bff.asgi import ASGIApp, Receive, Scope, Send, send_response
from bff.edge.request_id import REQUEST_ID_KEY
from bff.error_mapping import rest_error
from bff.errors import BadRequest
from bff.upstream.deadline import deadline, parse_request_timeout

__all__ = ["REQUEST_TIMEOUT_HEADER", "RequestTimeoutLayer"]

REQUEST_TIMEOUT_HEADER = b"x-request-timeout"


class RequestTimeoutLayer:
    """Applies the caller's ``X-Request-Timeout`` (seconds) to the request's budget."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            for name, value in scope["headers"]:
                if name == REQUEST_TIMEOUT_HEADER:
                    try:
                        seconds = parse_request_timeout(value)
                    except BadRequest as exc:
                        status, headers, body = rest_error(exc, scope.get(REQUEST_ID_KEY))
                        await send_response(send, status, body, headers)
                        return
                    with deadline(seconds):
                        await self.app(scope, receive, send)
                    return
        await self.app(scope, receive, send)
