"""Request header limits: a header block over ``limits.max_header_bytes`` is refused with 431.

Bodies are limited where they are read (the GraphQL apps and the proxy, per route), because only
there is it known whether a body is buffered or streamed.
"""

from __future__ import annotations

from bff.asgi import ASGIApp, Receive, Scope, Send, send_response
from bff.edge.request_id import REQUEST_ID_KEY

__all__ = ["HeaderLimitLayer"]


class HeaderLimitLayer:
    """Answers 431 (JSON error body) when the request's headers exceed ``max_bytes``.

    Each header counts as ``len(name) + len(value) + 4`` (``": "`` and CRLF), as on the wire.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            total = 0
            for name, value in scope["headers"]:
                total += len(name) + len(value) + 4
            if total > self.max_bytes:
                body = (
                    b'{"error":{"code":"REQUEST_HEADERS_TOO_LARGE","message":"request headers '
                    b"over "
                    + str(self.max_bytes).encode()
                    + b' bytes","request_id":"'
                    + scope.get(REQUEST_ID_KEY, "").encode()
                    + b'"}}'
                )
                await send_response(
                    send, 431, body, [("content-type", "application/json"), ("connection", "close")]
                )
                return
        await self.app(scope, receive, send)
