"""Gateways with passthrough routes for tests: small configs, in-process clients, raw requests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

import httpx

from bff.asgi import ASGIApp
from bff.config import GatewayConfig, validate_config
from bff.gateway import Gateway, build_gateway

__all__ = ["RawResponse", "asgi_request", "gateway_config", "running_gateway"]


def gateway_config(
    upstreams: Mapping[str, Any], routes: Sequence[Mapping[str, Any]], **extra: Any
) -> GatewayConfig:
    """A gateway with only ``upstreams`` and ``routes`` (no GraphQL, no admin, in-memory store)."""
    data: dict[str, Any] = {
        "store": {"url": "sqlite:///:memory:"},
        "admin": {"enabled": False},
        "upstreams": dict(upstreams),
        "routes": list(routes),
    }
    data.update(extra)
    return validate_config(data)


@asynccontextmanager
async def running_gateway(
    config: GatewayConfig,
) -> AsyncIterator[tuple[Gateway, httpx.AsyncClient]]:
    """A started gateway and an in-process client to it; shut down afterwards."""
    gateway = build_gateway(config)
    await gateway.startup()
    try:
        transport = httpx.ASGITransport(app=gateway, client=("203.0.113.7", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            yield gateway, client
    finally:
        await gateway.shutdown()


class RawResponse:
    """What an ASGI app sent back for :func:`asgi_request`."""

    def __init__(self) -> None:
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.body = b""
        self.complete = False

    def header(self, name: str) -> str | None:
        key = name.lower().encode()
        for k, v in self.headers:
            if k == key:
                return v.decode("latin-1")
        return None

    def json(self) -> Any:
        import orjson

        return orjson.loads(self.body)


async def asgi_request(
    app: ASGIApp,
    method: str,
    raw_path: bytes,
    *,
    query: bytes = b"",
    headers: Sequence[tuple[bytes, bytes]] = (),
    body: bytes = b"",
    client: tuple[str, int] = ("203.0.113.7", 50000),
) -> RawResponse:
    """Call ``app`` with a hand-made scope: raw paths and header bytes no HTTP client sends."""
    from urllib.parse import unquote_to_bytes

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": unquote_to_bytes(raw_path).decode("latin-1"),
        "raw_path": raw_path,
        "query_string": query,
        "root_path": "",
        "headers": [(b"host", b"gateway"), *headers],
        "client": client,
        "server": ("127.0.0.1", 8080),
    }
    sent_body = False
    response = RawResponse()
    done = asyncio.Event()

    async def receive() -> dict[str, Any]:
        nonlocal sent_body
        if not sent_body:
            sent_body = True
            return {"type": "http.request", "body": body, "more_body": False}
        await done.wait()  # as a server does: a disconnect only once the exchange is over
        return {"type": "http.disconnect"}

    async def send(message: Mapping[str, Any]) -> None:
        if message["type"] == "http.response.start":
            response.status = message["status"]
            response.headers = list(message.get("headers", []))
        elif message["type"] == "http.response.body":
            response.body += message.get("body", b"")
            if not message.get("more_body", False):
                response.complete = True
                done.set()

    try:
        await app(scope, receive, send)
    finally:
        done.set()
    return response
