"""Security headers on every answer, unless the upstream already set them.

``X-Content-Type-Options: nosniff`` (no MIME sniffing of JSON into HTML), ``X-Frame-Options:
DENY`` and ``Referrer-Policy: no-referrer``. GraphiQL and the admin page are full pages served
by the gateway; they need no framing either.
"""

from __future__ import annotations

from bff.asgi import ASGIApp, Message, Receive, Scope, Send

__all__ = ["SecurityHeadersLayer"]

_DEFAULTS = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
)


class SecurityHeadersLayer:
    """Adds the defaults above to every response start that lacks them."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = message.get("headers", ())
                present = dict(headers)  # ASGI response header names are lower case
                missing = [h for h in _DEFAULTS if h[0] not in present]
                if missing:
                    message["headers"] = [*headers, *missing]
            await send(message)

        await self.app(scope, receive, send_with_headers)
