"""``/admin/metrics/...``: a route's figures after known traffic, in one process and summed over
processes through Redis."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from bff.gateway import Gateway, build_gateway
from bff.runtime.stats_exchange import StatsExchange
from tests.conftest import SampleServices
from tests.support.gateway import demo_config

ADMIN = {"authorization": "Bearer demo-admin-token"}


@pytest.fixture
async def gateway(services: SampleServices) -> AsyncIterator[Gateway]:
    gw = build_gateway(demo_config(services.env, {"rate_limits": {"plans": None}}))
    await gw.startup()
    yield gw
    await gw.shutdown()


def client_of(gateway: Gateway) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=gateway), base_url="http://gw")


async def traffic(c: httpx.AsyncClient, ok: int = 5, missing: int = 2) -> None:
    for _ in range(ok):
        assert (await c.get("/api/users/1")).status_code == 200
    for _ in range(missing):
        assert (await c.get("/api/users/999999")).status_code == 404


async def test_route_figures_after_known_traffic(gateway: Gateway) -> None:
    async with client_of(gateway) as c:
        await traffic(c)
        r = await c.post(
            "/admin/routes",
            json={
                "id": "limited",
                "path": "/api/limited",
                "upstream": "products",
                "strip_prefix": "/api/limited",
                "rate_limit": {"per_minute": 1},
            },
            headers=ADMIN,
        )
        assert r.status_code == 201, r.text
        codes = [(await c.get("/api/limited/products/1")).status_code for _ in range(3)]
        assert codes == [200, 429, 429]

        r = await c.get("/admin/metrics/routes/users", params={"period": "5m"}, headers=ADMIN)
        assert r.status_code == 200, r.text
        m = r.json()
        assert (m["kind"], m["id"], m["period"], m["period_seconds"]) == (
            "route",
            "users",
            "5m",
            300,
        )
        assert m["processes"] == 1
        assert (m["requests"], m["successful"], m["client_errors"], m["failed"]) == (7, 5, 2, 0)
        assert m["requests_per_second"] == round(7 / 300, 3)
        assert 0 < m["avg_ms"] < 5000 and m["avg_ms"] <= m["p99_ms"]
        assert 0 < m["p95_ms"] <= m["p99_ms"]
        assert m["rate_limited"] == 0
        assert m["cache_hit_rate"] is None or 0 <= m["cache_hit_rate"] <= 1

        limited = (await c.get("/admin/metrics/routes/limited", headers=ADMIN)).json()
        assert (limited["period"], limited["requests"], limited["rate_limited"]) == ("5m", 3, 2)
        assert limited["client_errors"] == 2

        listed = (await c.get("/admin/metrics/routes?period=1h", headers=ADMIN)).json()["items"]
        by_id = {x["id"]: x for x in listed}
        assert set(by_id) == {"users", "products", "orders", "users-canary", "limited"}
        assert by_id["users"]["requests"] == 7 and by_id["orders"]["requests"] == 0
        assert by_id["orders"]["avg_ms"] is None and by_id["orders"]["cache_hit_rate"] is None


async def test_app_figures(gateway: Gateway) -> None:
    async with client_of(gateway) as c:
        for _ in range(3):
            r = await c.post("/graphql/web", json={"query": "{ user(id: 1) { id } }"})
            assert r.status_code == 200
        m = (await c.get("/admin/metrics/apps/web?period=1m", headers=ADMIN)).json()
        assert (m["kind"], m["id"], m["requests"], m["successful"]) == ("app", "web", 3, 3)
        apps = (await c.get("/admin/metrics/apps", headers=ADMIN)).json()["items"]
        assert sorted(a["id"] for a in apps) == ["iot", "mobile", "web"]


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("/admin/metrics/routes/nope", 404, "NOT_FOUND"),
        ("/admin/metrics/apps/nope", 404, "NOT_FOUND"),
        ("/admin/metrics/routes/users?period=2d", 422, "BAD_USER_INPUT"),
        ("/admin/metrics/routes/bad%20id", 422, "BAD_USER_INPUT"),
    ],
)
async def test_bad_requests(gateway: Gateway, path: str, status: int, code: str) -> None:
    async with client_of(gateway) as c:
        r = await c.get(path, headers=ADMIN)
        assert r.status_code == status, r.text
        assert r.json()["error"]["code"] == code
        assert (await c.get(path)).status_code == 401


async def test_figures_are_summed_over_processes_through_redis(
    services: SampleServices, redis_url: str
) -> None:
    prefix = f"t-{uuid.uuid4().hex}:"
    overrides: dict[str, Any] = {
        "rate_limits": {"plans": None},
        "state": {"backend": "redis", "redis_url": redis_url, "key_prefix": prefix},
    }
    a = build_gateway(demo_config(services.env, overrides))
    b = build_gateway(demo_config(services.env, overrides))
    await a.startup()
    await b.startup()
    try:
        assert isinstance(a.stats, StatsExchange) and isinstance(b.stats, StatsExchange)
        async with client_of(a) as ca, client_of(b) as cb:
            await traffic(ca, ok=3, missing=0)
            await traffic(cb, ok=4, missing=1)
            await b.stats.publish()  # what it does every few seconds
            for c in (ca,):
                m = (await c.get("/admin/metrics/routes/users", headers=ADMIN)).json()
                assert m["processes"] == 2
                assert (m["requests"], m["successful"], m["client_errors"]) == (8, 7, 1)
            await a.stats.publish()
            m = (await cb.get("/admin/metrics/routes/users", headers=ADMIN)).json()
            assert (m["processes"], m["requests"]) == (2, 8)
    finally:
        await b.shutdown()
        await a.shutdown()
    # A stopped process withdraws its figures at once.
    c = build_gateway(demo_config(services.env, overrides))
    await c.startup()
    try:
        async with client_of(c) as cc:
            m = (await cc.get("/admin/metrics/routes/users", headers=ADMIN)).json()
            assert (m["processes"], m["requests"]) == (1, 0)
    finally:
        await c.shutdown()
