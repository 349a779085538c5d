"""Cross-origin resource sharing, from the ``cors:`` section of the configuration.

Preflight requests (``OPTIONS`` with ``Origin`` and ``Access-Control-Request-Method``) are
answered here, before authentication and rate limiting: browsers send them without credentials.
Actual requests from an allowed origin get ``Access-Control-Allow-Origin`` (and
``-Credentials``, ``-Expose-Headers``); other origins get nothing, which the browser enforces.
"""

from __future__ import annotations

from bff.asgi import ASGIApp, Message, Receive, Scope, Send, send_response

__all__ = ["CorsLayer", "CorsPolicy"]


class CorsPolicy:
    """The compiled ``cors:`` settings."""

    def __init__(
        self,
        *,
        allow_origins: list[str],
        allow_methods: list[str],
        allow_headers: list[str],
        expose_headers: list[str],
        allow_credentials: bool,
        max_age: int,
    ) -> None:
        self.any_origin = "*" in allow_origins
        self.origins = frozenset(o.encode("latin-1") for o in allow_origins if o != "*")
        self.any_method = "*" in allow_methods
        self.methods = frozenset(m.upper() for m in allow_methods)
        self.any_header = "*" in allow_headers
        self.headers = frozenset(h.lower() for h in allow_headers)
        self.credentials = allow_credentials
        self.allow_methods_value = ", ".join(sorted(self.methods - {"*"})).encode()
        self.expose_value = ", ".join(expose_headers).encode()
        self.max_age_value = str(max_age).encode()

    def allows(self, origin: bytes) -> bool:
        return self.any_origin or origin in self.origins

    def origin_value(self, origin: bytes) -> bytes:
        # With credentials the origin must be echoed; "*" is only for anonymous wildcards.
        if self.any_origin and not self.credentials:
            return b"*"
        return origin


class CorsLayer:
    """Pure-ASGI CORS handling (see the module docstring)."""

    def __init__(self, app: ASGIApp, policy: CorsPolicy) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        origin = request_method = request_headers = None
        for name, value in scope["headers"]:
            if name == b"origin":
                origin = value
            elif name == b"access-control-request-method":
                request_method = value
            elif name == b"access-control-request-headers":
                request_headers = value
        if origin is None:
            await self.app(scope, receive, send)
            return
        policy = self.policy
        if scope["method"] == "OPTIONS" and request_method is not None:
            await self._preflight(send, origin, request_method, request_headers)
            return
        # The gateway owns CORS: upstream Access-Control-* headers never pass, and only an
        # allowed origin gets the gateway's.
        extra: list[tuple[bytes, bytes]] = []
        if policy.allows(origin):
            extra.append((b"access-control-allow-origin", policy.origin_value(origin)))
            if policy.credentials:
                extra.append((b"access-control-allow-credentials", b"true"))
            if policy.expose_value:
                extra.append((b"access-control-expose-headers", policy.expose_value))

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    h
                    for h in message.get("headers", ())
                    if not h[0].lower().startswith(b"access-control-")
                ]
                headers.extend(extra)
                headers.append((b"vary", b"Origin"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_cors)

    async def _preflight(
        self, send: Send, origin: bytes, method: bytes, requested: bytes | None
    ) -> None:
        policy = self.policy
        method_ok = policy.any_method or method.decode("latin-1").upper() in policy.methods
        wanted = [
            h.strip().lower() for h in (requested or b"").decode("latin-1").split(",") if h.strip()
        ]
        headers_ok = policy.any_header or all(h in policy.headers for h in wanted)
        if not (policy.allows(origin) and method_ok and headers_ok):
            await send_response(
                send,
                403,
                b'{"error":{"code":"CORS_FORBIDDEN","message":"cross-origin request not allowed"}}',
                [("content-type", "application/json"), ("vary", "Origin")],
            )
            return
        allow_headers = (
            ", ".join(wanted) if policy.any_header else ", ".join(sorted(policy.headers))
        )
        headers = [
            ("access-control-allow-origin", policy.origin_value(origin).decode("latin-1")),
            (
                "access-control-allow-methods",
                policy.allow_methods_value.decode() or method.decode("latin-1"),
            ),
            ("access-control-allow-headers", allow_headers),
            ("access-control-max-age", policy.max_age_value.decode()),
            ("vary", "Origin, Access-Control-Request-Method, Access-Control-Request-Headers"),
        ]
        if policy.credentials:
            headers.append(("access-control-allow-credentials", "true"))
        await send(
            {
                "type": "http.response.start",
                "status": 204,
                "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers],
            }
        )
        await send({"type": "http.response.body", "body": b""})
