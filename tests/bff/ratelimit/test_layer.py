"""Rate limits at the edge of a real gateway: plans, routes, apps, headers, refusals."""

from __future__ import annotations

import gc
from typing import Any

import pytest

from bff.ratelimit import Meter
from tests.bff.ratelimit.support import (
    ADMIN,
    bearer,
    limited_gateway,
    quota,
    upstream_requests,
)
from tests.conftest import SampleServices
from tests.support.gateway import gql
from tests.support.servers import ThreadedServer, free_port

PLANS: dict[str, Any] = {
    "anonymous": {"per_minute": 3},
    "free": {"per_minute": 5, "per_hour": None},
    "pro": {"per_minute": 10, "per_hour": None},
}
Q = "{ user(id: 1) { name } }"


def limits(**extra: Any) -> dict[str, Any]:
    return {"rate_limits": {"plans": PLANS, **extra}}


# -- REST -----------------------------------------------------------------------------------------


async def test_rest_answers_carry_the_quota_and_refusals_are_429(
    services: SampleServices,
) -> None:
    async with limited_gateway(services, limits()) as gw:
        client = gw.client()
        seen = []
        for _ in range(3):
            r = await client.get("/api/users/1")
            assert r.status_code == 200, r.text
            seen.append(quota(r))
        # 3 a minute: a token every 20 s; reset is when the bucket is full again.
        assert seen == [(3, 2, 20), (3, 1, 40), (3, 0, 60)]
        with upstream_requests(services) as calls:
            r = await client.get("/api/users/1", headers={"x-request-id": "req-429"})
        assert calls["users"] == 0  # refused before the proxy
        assert r.status_code == 429
        assert r.headers["retry-after"] == "20"
        assert quota(r) == (3, 0, 60)
        assert r.headers["content-type"] == "application/json"
        assert r.json() == {
            "error": {
                "code": "RATE_LIMITED",
                "message": "rate limit exceeded; retry in 20 s",
                "request_id": "req-429",
            }
        }
        # Paths without a route count too (a scan is not free); health and admin never do.
        other = gw.client("192.0.2.2")
        assert (await other.get("/nowhere")).status_code == 404
        for path, headers in [("/healthz", {}), ("/readyz", {}), ("/admin/services", ADMIN)]:
            for _ in range(5):
                r = await client.get(path, headers=headers)
                assert r.status_code == 200 and quota(r) is None


async def test_anonymous_callers_are_keyed_by_address(services: SampleServices) -> None:
    async with limited_gateway(services, limits()) as gw:
        a, b = gw.client("198.51.100.1"), gw.client("198.51.100.2")
        for _ in range(3):
            assert (await a.get("/api/users/1")).status_code == 200
        assert (await a.get("/api/users/1")).status_code == 429
        assert (await b.get("/api/users/1")).status_code == 200
        # One IPv6 host holds a whole /64: it is one caller.
        c, d = gw.client("2001:db8:1:2::1"), gw.client("2001:db8:1:2::ffff")
        for _ in range(3):
            assert (await c.get("/api/users/1")).status_code == 200
        assert (await d.get("/api/users/1")).status_code == 429


async def test_behind_trusted_proxies_the_forwarded_client_is_the_key(
    services: SampleServices,
) -> None:
    async with limited_gateway(services, limits(trusted_proxies=["10.0.0.0/8"])) as gw:
        balancer = gw.client("10.0.0.2")
        one = {"x-forwarded-for": "6.6.6.6, 198.51.100.1"}
        for _ in range(3):
            assert (await balancer.get("/api/users/1", headers=one)).status_code == 200
        assert (await balancer.get("/api/users/1", headers=one)).status_code == 429
        two = {"x-forwarded-for": "198.51.100.2"}
        assert (await balancer.get("/api/users/1", headers=two)).status_code == 200
        # An untrusted peer's header is ignored: forging addresses gets it nothing.
        direct = gw.client("203.0.113.9")
        statuses = [
            (
                await direct.get("/api/users/1", headers={"x-forwarded-for": f"1.1.1.{i}"})
            ).status_code
            for i in range(4)
        ]
        assert statuses == [200, 200, 200, 429]


# -- plans by tier ----------------------------------------------------------------------------


async def test_tier_plans_from_jwt_claims(services: SampleServices) -> None:
    async with limited_gateway(services, limits()) as gw:
        client = gw.client()
        r = await client.get("/api/users/1", headers=bearer("7", "pro"))
        assert quota(r) == (10, 9, 6)
        r = await client.get("/api/users/1", headers=bearer("8", "free"))
        assert quota(r) == (5, 4, 12)
        # A tier without a plan gets the anonymous plan, but stays keyed by its subject.
        for sub in ("9", "10"):
            r = await client.get("/api/users/1", headers=bearer(sub, "platinum"))
            assert quota(r) == (3, 2, 20)
        # Users are keyed by subject, not address: one user from two addresses is one caller.
        far = gw.client("198.51.100.77")
        assert quota(await far.get("/api/users/1", headers=bearer("7", "pro"))) == (10, 8, 12)


async def test_tier_plans_from_api_keys(services: SampleServices) -> None:
    iot_open = {"graphql": {"apps": {"iot": {"persisted_queries": "off"}}}}  # any query on iot
    async with limited_gateway(services, {**limits(), **iot_open}) as gw:
        client = gw.client()
        created = await client.post(
            "/admin/keys", json={"name": "device", "tier": "pro"}, headers=ADMIN
        )
        assert created.status_code == 201, created.text
        key = {"x-api-key": created.json()["key"]}
        r = await client.get("/api/users/1", headers=key)
        assert quota(r) == (10, 9, 6)
        r = await gql(client, "iot", "{ product(id: 1) { id } }", headers=key)
        assert r.status_code == 200 and quota(r) == (10, 8, 12)


# -- route and app limits ------------------------------------------------------------------


def _routes(**users: Any) -> list[dict[str, Any]]:
    base = {"methods": ["GET"], "strip_prefix": "/api"}
    return [
        {"id": "users", "path": "/api/users", "upstream": "users", **base, **users},
        {
            "id": "products",
            "path": "/api/products",
            "upstream": "products",
            "global_limit": {"per_minute": 4},
            **base,
        },
    ]


async def test_a_route_limit_adds_to_the_plan(services: SampleServices) -> None:
    overrides = {**limits(), "routes": _routes(rate_limit={"per_minute": 2})}
    overrides["rate_limits"]["plans"] = {**PLANS, "anonymous": {"per_minute": 4}}
    async with limited_gateway(services, overrides) as gw:
        client = gw.client()
        r = await client.get("/api/users/1")
        assert quota(r) == (2, 1, 30)  # the route's window is the tighter one
        assert (await client.get("/api/users/2")).status_code == 200
        r = await client.get("/api/users/3")
        assert r.status_code == 429 and quota(r) == (2, 0, 60)
        # The refused request cost the plan nothing: two plan requests are left elsewhere.
        assert quota(await client.get("/api/products")) == (4, 1, 45)
        assert (await client.get("/api/products")).status_code == 200
        assert (await client.get("/api/products")).status_code == 429  # now the plan refuses


async def test_a_route_global_limit_is_shared_by_every_caller(services: SampleServices) -> None:
    overrides = {**limits(), "routes": _routes()}
    async with limited_gateway(services, overrides) as gw:
        callers = [gw.client(f"198.51.100.{i}") for i in range(5)]
        statuses = [(await c.get("/api/products")).status_code for c in callers]
        assert statuses == [200, 200, 200, 200, 429]
        assert (await callers[4].get("/api/users/1")).status_code == 200  # other routes: fine


async def test_the_gateways_global_limit(services: SampleServices) -> None:
    async with limited_gateway(services, limits(global_limit={"per_minute": 2})) as gw:
        a, b = gw.client("198.51.100.1"), gw.client("198.51.100.2")
        assert (await a.get("/api/users/1")).status_code == 200
        assert (await b.get("/api/users/1")).status_code == 200
        r = await a.get("/api/users/1")
        assert r.status_code == 429 and quota(r) == (2, 0, 60)


async def test_an_app_limit_adds_to_the_plan(services: SampleServices) -> None:
    overrides = {**limits(), "graphql": {"apps": {"web": {"rate_limit": {"per_minute": 2}}}}}
    async with limited_gateway(services, overrides) as gw:
        client = gw.client()
        headers = bearer("5", "pro")
        assert [(await gql(client, "web", Q, headers=headers)).status_code for _ in range(3)] == [
            200,
            200,
            429,
        ]
        r = await gql(client, "mobile", Q, headers=headers)
        assert r.status_code == 200 and quota(r) == (10, 7, 18)


# -- GraphQL ----------------------------------------------------------------------------------


async def test_graphql_operations_are_charged_their_cost(services: SampleServices) -> None:
    overrides = {
        **limits(),
        "graphql": {"cost_per_request": 10},
    }
    overrides["rate_limits"]["plans"] = {**PLANS, "anonymous": {"per_minute": 10}}
    query = "{ users(limit: 20) { items { id } } }"  # 1 + 20 x 1 = 21: three requests
    async with limited_gateway(services, overrides) as gw:
        client = gw.client()
        for remaining in (7, 4, 1):
            r = await gql(client, "web", query)
            assert r.status_code == 200, r.text
            assert r.json()["extensions"]["cost"] == {"requested": 21, "remaining": remaining}
            assert quota(r) == (10, remaining, (10 - remaining) * 6)
        with upstream_requests(services) as calls:
            r = await gql(client, "web", query)
        assert sum(calls.values()) == 0
        assert r.status_code == 429
        assert r.headers["retry-after"] == "12"  # two more tokens, one every 6 s
        assert r.json() == {
            "errors": [
                {
                    "message": "rate limit exceeded; retry in 12 s",
                    "extensions": {"code": "RATE_LIMITED"},
                }
            ]
        }
        # A cheap operation still fits.
        r = await gql(client, "web", Q)
        assert r.status_code == 200 and r.json()["extensions"]["cost"]["remaining"] == 0


async def test_a_users_new_tier_applies_to_graphql_at_once(services: SampleServices) -> None:
    """The layer keeps each caller's counters per app: by caller and plan, not caller alone."""
    async with limited_gateway(services, limits()) as gw:
        client = gw.client()
        r = await gql(client, "web", Q, headers=bearer("7", "free"))
        assert quota(r) == (5, 4, 12)
        r = await gql(client, "web", Q, headers=bearer("7", "pro"))
        assert quota(r) == (10, 9, 6)
        r = await gql(client, "web", Q, headers=bearer("7", "free"))
        assert quota(r) == (5, 3, 24)


async def test_a_charged_graphql_request_leaves_no_reference_cycle(
    services: SampleServices,
) -> None:
    """The meter (in the scope) holds the next layer's send, which holds the scope: the layer
    takes the meter back, or every request would wait for the garbage collector."""
    async with limited_gateway(services, limits()) as gw:
        client = gw.client()
        assert (await gql(client, "web", Q)).status_code == 200  # warm: caches, connections
        gc.collect()
        gc.disable()
        try:
            r = await gql(client, "web", Q)
            assert r.status_code == 200 and quota(r) == (3, 1, 40)
            meters = [o for o in gc.get_objects() if isinstance(o, Meter)]
        finally:
            gc.enable()
        assert meters == []


async def test_an_operation_bigger_than_the_quota_says_so(services: SampleServices) -> None:
    async with limited_gateway(services, limits()) as gw:
        r = await gql(gw.client(), "web", "{ users(limit: 100) { items { id } } }")  # 101: 3 reqs
        assert r.status_code == 200
        r = await gql(
            gw.client("192.0.2.9"), "web", "{ users(limit: 100) { items { orders { id } } } }"
        )
        assert r.status_code == 429
        assert "counts as 13 requests" in r.json()["errors"][0]["message"]


DEEP = (
    "{ order(id: 1) { user { orders { user { orders { user { orders { user { orders "
    "{ user { name } } } } } } } } } } }"
)  # depth 11; web allows 10
# Cost 12,601 (1 + 100 x (1 + 5 x (1 + 3 x (1 + 1 + 3 x 2)))); web allows 10,000.
COSTLY = (
    "{ users(limit: 100) { items { orders { lines { product { reviews { author { name } } } } } "
    "} } }"
)


async def test_graphql_refusals_before_execution_are_free(services: SampleServices) -> None:
    async with limited_gateway(services, limits()) as gw:
        client = gw.client()
        for bad, code in [
            ("{ user(id: 1) { name ", "GRAPHQL_PARSE_FAILED"),
            ("{ nope }", "GRAPHQL_VALIDATION_FAILED"),
            (DEEP, "DEPTH_LIMIT_EXCEEDED"),
            (COSTLY, "COST_LIMIT_EXCEEDED"),
        ]:
            r = await gql(client, "web", bad)
            assert r.status_code == 400
            assert r.json()["errors"][0]["extensions"]["code"] == code
            assert quota(r) == (3, 3, 0)  # described, not charged
        assert quota(await gql(client, "web", Q)) == (3, 2, 20)


async def test_a_caller_with_nothing_left_gets_429_for_anything(services: SampleServices) -> None:
    async with limited_gateway(services, limits()) as gw:
        client = gw.client()
        for _ in range(3):
            assert (await gql(client, "web", Q)).status_code == 200
        r = await gql(client, "web", "{ not valid")
        assert r.status_code == 429
        assert r.json()["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
        assert quota(r) == (3, 0, 60)


async def test_graphql_paths_answer_graphql_shaped_503_when_redis_is_down_and_closed(
    services: SampleServices,
) -> None:
    overrides = {
        **limits(fail_open=False),
        "state": {"backend": "redis", "redis_url": f"redis://127.0.0.1:{free_port()}/0"},
    }
    async with limited_gateway(services, overrides) as gw:
        client = gw.client()
        r = await gql(client, "web", Q)
        assert r.status_code == 503 and r.headers["retry-after"] == "1"
        assert r.json()["errors"][0]["extensions"]["code"] == "SERVICE_UNAVAILABLE"
        r = await client.get("/api/users/1")
        assert r.status_code == 503
        assert r.json()["error"]["code"] == "SERVICE_UNAVAILABLE"
        assert (await client.get("/healthz")).status_code == 200


@pytest.mark.parametrize("algorithm", ["token_bucket", "sliding_window"])
async def test_both_algorithms_at_the_edge(services: SampleServices, algorithm: str) -> None:
    async with limited_gateway(services, limits(algorithm=algorithm)) as gw:
        client = gw.client()
        statuses = [(await client.get("/api/users/1")).status_code for _ in range(4)]
        assert statuses == [200, 200, 200, 429]


async def test_no_limits_means_no_layer(services: SampleServices) -> None:
    overrides: dict[str, Any] = {
        "rate_limits": {"plans": None},
        "routes": _routes(global_limit=None),
    }
    overrides["routes"][1].pop("global_limit")
    async with limited_gateway(services, overrides) as gw:
        assert gw.gateway.rate_limiter is None
        r = await gw.client().get("/api/users/1")
        assert r.status_code == 200 and quota(r) is None


async def test_an_upstreams_own_quota_headers_give_way(services: SampleServices) -> None:
    async def upstream(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        headers = [(b"RateLimit-Remaining", b"999"), (b"x-ratelimit-limit", b"1000")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"ok"})

    with ThreadedServer(upstream, lifespan="off") as server:
        overrides = {
            **limits(),
            "upstreams": {"own": {"targets": [server.url]}},
            "routes": [{"id": "own", "path": "/own", "upstream": "own"}],
        }
        async with limited_gateway(services, overrides) as gw:
            r = await gw.client().get("/own")
            assert r.status_code == 200 and r.text == "ok"
            assert r.headers.get_list("ratelimit-remaining") == ["2"]
            assert quota(r) == (3, 2, 20)
