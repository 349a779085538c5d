"""Small pure-ASGI helpers shared by the gateway's apps and layers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any

from bff.errors import BadRequest, PayloadTooLarge

__all__ = [
    "ASGIApp",
    "Receive",
    "Scope",
    "Send",
    "header",
    "read_body",
    "send_response",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def header(scope: Scope, name: bytes) -> bytes | None:
    """The first value of header ``name`` (lower-case bytes), or ``None``."""
    for key, value in scope["headers"]:
        if key == name:
            return value
    return None


async def read_body(receive: Receive, scope: Scope, limit: int) -> bytes:
    """The whole request body; :class:`PayloadTooLarge` as soon as it passes ``limit`` bytes."""
    declared = header(scope, b"content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise BadRequest("invalid Content-Length") from None
        if size > limit:
            raise PayloadTooLarge(f"request body over {limit} bytes")
    chunks: list[bytes] = []
    total = 0
    more = True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise BadRequest("client disconnected")
        chunk = message.get("body", b"")
        if chunk:
            total += len(chunk)
            if total > limit:
                raise PayloadTooLarge(f"request body over {limit} bytes")
            chunks.append(chunk)
        more = message.get("more_body", False)
    return b"".join(chunks) if len(chunks) != 1 else chunks[0]


async def send_response(
    send: Send,
    status: int,
    body: bytes,
    headers: Sequence[tuple[str, str]],
) -> None:
    """Send a complete response (Content-Length added)."""
    raw = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers]
    raw.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})
