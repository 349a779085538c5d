"""Request ids: the caller's ``X-Request-ID`` when well-formed, else a new one, echoed back."""

from __future__ import annotations

import os
import re

from bff.asgi import ASGIApp, Message, Receive, Scope, Send

__all__ = ["REQUEST_ID_KEY", "RequestIdLayer", "new_request_id"]

REQUEST_ID_KEY = "bff.request_id"
_VALID = re.compile(rb"[A-Za-z0-9._-]{1,128}")


def new_request_id() -> str:
    """A fresh 128-bit request id (32 hex characters)."""
    return os.urandom(16).hex()


class RequestIdLayer:
    """Puts the request id in ``scope[REQUEST_ID_KEY]`` and the ``X-Request-ID`` response header.

    A caller's id is kept only if it is 1-128 characters of ``A-Za-z0-9._-``, so it can be
    logged and forwarded without escaping.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid: str | None = None
        for key, value in scope["headers"]:
            if key == b"x-request-id":
                if _VALID.fullmatch(value):
                    rid = value.decode("ascii")
                break
        if rid is None:
            rid = new_request_id()
        scope[REQUEST_ID_KEY] = rid
        rid_header = (b"x-request-id", rid.encode("ascii"))

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                # ASGI response header names are lower case; dict() finds one in C.
                if b"x-request-id" in dict(headers):
                    headers = [h for h in headers if h[0] != b"x-request-id"]
                headers.append(rid_header)
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_id)
