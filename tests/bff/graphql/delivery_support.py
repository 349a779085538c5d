"""Gateways of their own for the delivery tests (persisted queries, cache hints, CBOR, ...)."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import httpx

from bff.gateway import Gateway, build_gateway
from tests.support.gateway import _merge, demo_config

ADMIN = {"authorization": "Bearer demo-admin-token"}
NO_PLANS: dict[str, Any] = {"rate_limits": {"plans": None}}


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def persisted(hash_: str, version: Any = 1) -> dict[str, Any]:
    return {"persistedQuery": {"version": version, "sha256Hash": hash_}}


@asynccontextmanager
async def own_gateway(
    env: Mapping[str, str], overrides: Mapping[str, Any] | None = None
) -> AsyncIterator[Gateway]:
    """A started gateway on the demo config (no rate-limit plans unless ``overrides`` has some),
    with a store of its own."""
    merged: dict[str, Any] = {"rate_limits": {"plans": None}}
    _merge(merged, dict(overrides or {}))
    gw = build_gateway(demo_config(env, merged))
    await gw.startup()
    try:
        yield gw
    finally:
        await gw.shutdown()


def client_for(gw: Gateway, ip: str = "192.0.2.20") -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=gw, client=(ip, 50000))
    return httpx.AsyncClient(transport=transport, base_url="http://gateway")


async def api_key(client: httpx.AsyncClient, name: str = "device") -> dict[str, str]:
    """Headers with a fresh API key (created through the admin API)."""
    r = await client.post("/admin/keys", json={"name": name}, headers=ADMIN)
    assert r.status_code == 201, r.text
    return {"x-api-key": r.json()["key"]}


async def register(gw: Gateway, app: str, document: str, name: str | None = None) -> str:
    """Register ``document`` for ``app`` as ``bff persisted add`` does; returns its hash."""
    assert gw.store is not None and gw.operations is not None
    digest = sha256(document)
    await gw.store.persisted_operations.put(app, digest, document, name)
    await gw.operations.refresh()
    return digest
