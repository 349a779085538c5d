"""The metrics endpoint after known traffic, parsed as Prometheus would."""

from __future__ import annotations

from typing import Any

import pytest

from bff.cli import demo_token
from bff.observability import Metrics, OperationNames, auth_failure_reason
from tests.bff.observability.conftest import value

SECRET = "demo-secret-change-me-before-production"
QUERY = "query UsersAndOrders { users(limit: 2) { items { id orders { id } } } }"
PLANS = {
    "rate_limits": {
        "plans": {"anonymous": {"per_minute": 5}, "pro": {"per_second": 1_000_000}},
    }
}


async def test_counts_after_known_traffic(observed_gateway: Any, services: Any) -> None:
    async with observed_gateway(PLANS) as obs:
        c = obs.client
        user = {"authorization": f"Bearer {demo_token(SECRET)}"}
        for _ in range(3):
            r = await c.post("/graphql/web", json={"query": QUERY}, headers=user)
            assert r.status_code == 200 and "errors" not in r.json(), r.text
        # Distinct products: the route's response cache would answer repeats itself.
        statuses = [(await c.get(f"/api/products/{i}")).status_code for i in range(1, 8)]
        assert statuses == [200] * 5 + [429] * 2
        assert (await c.get("/api/products/1", headers={"authorization": "Bearer x"})).status_code
        assert (await c.get("/nowhere", headers=user)).status_code == 404
        assert (await c.get("/healthz")).status_code == 200
        bad_key = {"x-api-key": "bff_" + "Z" * 43}
        assert (await c.get("/api/products/1", headers=bad_key)).status_code == 401

        m = await obs.scrape()
        m = await obs.scrape()  # scrapes are not traffic

    requests = "bff_requests_total"
    assert value(m, requests, kind="app", name="web", method="POST", status="2xx") == 3
    assert value(m, requests, kind="route", name="products", method="GET", status="2xx") == 5
    # Refused before the proxy ran, still counted against the route they were for.
    assert value(m, requests, kind="route", name="products", method="GET", status="4xx") == 4
    assert value(m, requests, kind="none", name="", method="GET", status="4xx") == 1
    assert value(m, requests, kind="health", name="healthz", method="GET", status="2xx") == 1
    total = sum(v for (name, _), v in m.items() if name == requests)
    assert total == 3 + 7 + 1 + 1 + 1 + 1

    assert value(m, "bff_request_duration_seconds_count", kind="app", name="web") == 3
    assert value(m, "bff_requests_in_flight") == 0

    assert value(m, "bff_ratelimit_refusals_total", plan="anonymous") == 2
    assert value(m, "bff_auth_failures_total", credential="jwt", reason="malformed") == 1
    assert value(m, "bff_auth_failures_total", credential="api_key", reason="unknown_key") == 1

    ops = "bff_graphql_operations_total"
    assert value(m, ops, app="web", operation="UsersAndOrders", type="query") == 3
    per_op = "bff_graphql_upstream_requests"
    assert value(m, per_op + "_count", app="web", operation="UsersAndOrders") == 3
    assert value(m, per_op + "_sum", app="web", operation="UsersAndOrders") == 6  # users, orders
    assert value(m, "bff_graphql_loader_batch_size_count", loader="orders_by_user") == 3
    assert value(m, "bff_graphql_loader_batch_size_sum", loader="orders_by_user") == 6

    up = "bff_upstream_requests_total"
    assert value(m, up, upstream="users", outcome="2xx") == 3
    assert value(m, up, upstream="orders", outcome="2xx") == 3
    assert value(m, up, upstream="products", outcome="2xx") == 5
    assert value(m, "bff_upstream_request_duration_seconds_count", upstream="products") == 5
    assert value(m, "bff_upstream_breaker_state", upstream="users") == 0
    assert value(m, "bff_upstream_healthy_targets", upstream="users") == 1
    target = services["users"].url
    assert value(m, "bff_upstream_target_up", upstream="users", target=target) == 1


async def test_upstream_failures_and_breaker_gauges(observed_gateway: Any) -> None:
    from tests.support.servers import free_port

    dead = f"http://127.0.0.1:{free_port()}"
    overrides = {
        "upstreams": {
            "products": {
                "targets": [dead],
                "breaker": {"failure_threshold": 2, "recovery_timeout": 60},
            }
        },
        "rate_limits": {"plans": None},
    }
    async with observed_gateway(overrides) as obs:
        statuses = [(await obs.client.get("/api/products/1")).status_code for _ in range(4)]
        m = await obs.scrape()
    assert statuses == [502, 502, 503, 503]
    up = "bff_upstream_requests_total"
    assert value(m, up, upstream="products", outcome="error") == 2
    assert value(m, up, upstream="products", outcome="unavailable") == 2
    assert value(m, "bff_upstream_breaker_state", upstream="products") == 2
    assert value(m, "bff_upstream_breaker_transitions_total", upstream="products", state="open")
    route = {"kind": "route", "name": "products", "method": "GET"}
    assert value(m, "bff_requests_total", **route, status="5xx") == 4


async def test_metrics_endpoint_answers_get_only_and_openmetrics(observed_gateway: Any) -> None:
    async with observed_gateway({"rate_limits": {"plans": None}}) as obs:
        r = await obs.client.post("/metrics")
        assert r.status_code == 405 and r.json()["error"]["code"] == "METHOD_NOT_ALLOWED"
        r = await obs.client.get("/metrics", headers={"accept": "application/openmetrics-text"})
        assert r.headers["content-type"].startswith("application/openmetrics-text")
        assert r.text.rstrip().endswith("# EOF")
        assert (await obs.client.head("/metrics")).content == b""


async def test_metrics_disabled_means_no_endpoint(observed_gateway: Any) -> None:
    overrides = {"observability": {"metrics": {"enabled": False}}, "rate_limits": {"plans": None}}
    async with observed_gateway(overrides) as obs:
        assert obs.gateway.telemetry.metrics is None
        assert (await obs.client.get("/metrics")).status_code == 404


def test_operation_names_are_bounded() -> None:
    names = OperationNames(limit=3)
    names.register("web", ["Persisted"])
    labels = [names.label("web", f"Op{i}") for i in range(5)]
    assert labels == ["Op0", "Op1", "Op2", "other", "other"]
    assert names.label("web", "Persisted") == "Persisted"
    assert names.label("web", None) == "anonymous"
    assert names.label("web", "X" * 100) == "other"
    assert names.label("mobile", "Op4") == "Op4"  # per app


@pytest.mark.parametrize(
    ("reason", "label"),
    [
        ("expired", "expired"),
        ("key revoked", "revoked"),
        ("bad signature", "bad_signature"),
        ("no signing key for kid 'abc'", "unknown_signing_key"),
        ("the 'kid' header is not a string", "malformed"),
        ("unknown key prefix", "unknown_key"),
        ("client address 1.2.3.4 is not in the key's allowlist", "ip_not_allowed"),
        ("a credential header was repeated", "conflicting_credentials"),
        ("SERVICE_UNAVAILABLE", "unavailable"),
        ("something new", "other"),
    ],
)
def test_auth_failure_reasons_are_folded(reason: str, label: str) -> None:
    assert auth_failure_reason(reason) == label


def test_event_counters_cache_children() -> None:
    metrics = Metrics(multiprocess=False)
    for _ in range(3):
        metrics.cache_result("response", "hit")
    metrics.cache_result("response", "stale")
    metrics.rate_limited(None)
    metrics.request_counter("route", "x", "BREW", 200).inc()
    metrics.sample()  # publish what the stand-ins counted
    families = {f.name: f for f in metrics.registry.collect()}
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in families.values()
        for s in f.samples
    }
    assert samples[("bff_cache_requests_total", (("cache", "response"), ("outcome", "hit")))] == 3
    assert samples[("bff_ratelimit_refusals_total", (("plan", "none"),))] == 1
    key = (("kind", "route"), ("method", "OTHER"), ("name", "x"), ("status", "2xx"))
    assert samples[("bff_requests_total", key)] == 1


def test_the_dashboard_only_uses_exposed_metrics() -> None:
    import json
    import re
    from pathlib import Path

    dashboard = json.loads(
        Path(__file__).parents[3].joinpath("deploy/grafana/bff.json").read_text()
    )
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    used = {name for expr in exprs for name in re.findall(r"\bbff_[a-z_]+", expr)}
    metrics = Metrics(multiprocess=False)
    exposed = set()
    for family in metrics.registry.collect():
        suffixes = ("_total",) if family.type == "counter" else ("_bucket", "_sum", "_count", "")
        exposed.update(family.name + s for s in suffixes)
    assert used and used <= exposed, used - exposed


def test_the_redis_fallback_is_sampled() -> None:
    class Limiter:
        available, decisions = True, 0

        def stats(self) -> dict[str, object]:
            return {"redis_available": self.available, "local_decisions": self.decisions}

    metrics = Metrics(multiprocess=False)
    limiter = Limiter()
    metrics.watch_rate_limiter(limiter)
    limiter.available, limiter.decisions = False, 7
    metrics.sample()
    limiter.decisions = 10
    metrics.sample()
    samples = {s.name: s.value for f in metrics.registry.collect() for s in f.samples}
    assert samples["bff_ratelimit_redis_up"] == 0
    assert samples["bff_ratelimit_local_decisions_total"] == 10


def test_upstream_gauges_follow_a_reload() -> None:
    from bff.upstream import CircuitBreaker, Target

    class FakeUpstream:
        def __init__(self, name: str, *urls: str) -> None:
            self.targets = [Target(u) for u in urls]
            self.breaker = CircuitBreaker(name, failure_threshold=1)

    metrics = Metrics(multiprocess=False)
    pool = {
        "a": FakeUpstream("a", "http://a1:1", "http://a2:1"),
        "b": FakeUpstream("b", "http://b:1"),
    }
    metrics.watch_upstreams(pool)
    pool["a"].targets[0].healthy = False
    pool["b"].breaker.record_failure()  # opens it
    metrics.sample()

    def gauges() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for f in metrics.registry.collect()
            for s in f.samples
            if s.name.startswith("bff_upstream")
        }

    g = gauges()
    assert g[("bff_upstream_healthy_targets", (("upstream", "a"),))] == 1
    assert g[("bff_upstream_target_up", (("target", "http://a1:1"), ("upstream", "a")))] == 0
    assert g[("bff_upstream_breaker_state", (("upstream", "b"),))] == 2
    key = (("state", "open"), ("upstream", "b"))
    assert g[("bff_upstream_breaker_transitions_total", key)] == 1

    pool["a"] = FakeUpstream("a", "http://a3:1")  # a reload replaced a, removed b
    del pool["b"]
    metrics.sample()
    g = gauges()
    assert ("bff_upstream_healthy_targets", (("upstream", "b"),)) not in g
    assert ("bff_upstream_target_up", (("target", "http://a1:1"), ("upstream", "a"))) not in g
    assert g[("bff_upstream_target_up", (("target", "http://a3:1"), ("upstream", "a")))] == 1
    pool["a"].breaker.record_failure()  # the new breaker is watched too
    key = (("state", "open"), ("upstream", "a"))
    assert gauges()[("bff_upstream_breaker_transitions_total", key)] == 1
