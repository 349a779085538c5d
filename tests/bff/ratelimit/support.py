"""Gateways with rate limits of their own, and clients from chosen addresses."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any

import httpx
import jwt

from bff.gateway import Gateway, build_gateway
from tests.conftest import SampleServices
from tests.support.gateway import demo_config

DEMO_SECRET = demo_config({}).auth.jwt.secret or ""
ADMIN = {"authorization": "Bearer demo-admin-token"}
QUOTA_HEADERS = ("limit", "remaining", "reset")


def token(sub: str = "1", tier: str | None = "free", scope: str = "orders:read") -> str:
    """A demo JWT for user ``sub`` with ``tier`` (None: no tier claim)."""
    now = int(time.time())
    claims: dict[str, Any] = {"sub": sub, "scope": scope, "iat": now, "exp": now + 600}
    if tier is not None:
        claims["tier"] = tier
    return jwt.encode(claims, DEMO_SECRET, algorithm="HS256")


def bearer(sub: str = "1", tier: str | None = "free") -> dict[str, str]:
    return {"authorization": "Bearer " + token(sub, tier)}


def quota(response: httpx.Response) -> tuple[int, int, int] | None:
    """``(limit, remaining, reset)`` from ``RateLimit-*``, checked equal to ``X-RateLimit-*``."""
    values = [response.headers.get(f"ratelimit-{h}") for h in QUOTA_HEADERS]
    legacy = [response.headers.get(f"x-ratelimit-{h}") for h in QUOTA_HEADERS]
    assert values == legacy, (values, legacy)
    if values[0] is None:
        return None
    limit, remaining, reset = (int(v or 0) for v in values)
    return limit, remaining, reset


class Limited:
    """A started gateway and clients for it from any address."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self._clients: list[httpx.AsyncClient] = []

    def client(self, peer: str = "192.0.2.1") -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=self.gateway, client=(peer, 40000))
        c = httpx.AsyncClient(transport=transport, base_url="http://gateway")
        self._clients.append(c)
        return c

    async def aclose(self) -> None:
        for c in self._clients:
            await c.aclose()


@contextlib.asynccontextmanager
async def limited_gateway(
    services: SampleServices, overrides: Mapping[str, Any]
) -> AsyncIterator[Limited]:
    """The demo gateway with ``overrides`` (rate limits, mostly), started."""
    gw = build_gateway(demo_config(services.env, overrides))
    await gw.startup()
    limited = Limited(gw)
    try:
        yield limited
    finally:
        await limited.aclose()
        await gw.shutdown()


@contextlib.contextmanager
def upstream_requests(services: SampleServices) -> Iterator[dict[str, int]]:
    """Counts the sample services' requests inside the block (the dict is filled on exit)."""
    services.reset()
    counts: dict[str, int] = {}
    yield counts
    counts.update(services.requests())
