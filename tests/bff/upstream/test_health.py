"""Target health: passive outlier ejection and active health checks, against real servers."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

import pytest

from bff.config import HealthCheckConfig, PassiveHealthConfig
from bff.errors import UpstreamUnavailable
from bff.upstream import HealthChecker, Target, Upstream
from tests.support.passthrough import gateway_config, running_gateway
from tests.support.servers import ThreadedServer

Servers = dict[str, ThreadedServer]


async def wait_for(condition: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


async def test_a_failing_target_is_ejected_for_a_while(fault: Servers) -> None:
    a, b = fault["a"].app, fault["b"].app
    up = Upstream(
        "svc",
        [(fault["a"].url, 1), (fault["b"].url, 1)],
        passive_health=PassiveHealthConfig(consecutive_failures=3, ejection_time=0.4),
    )
    try:
        a.fail_next(1000, 502)
        served = Counter(
            [(await up.request("GET", "/echo/x")).headers["x-served-by"] for _ in range(20)]
        )
        assert served == {"a": 3, "b": 17}  # a's 3rd failure in a row ejected it
        assert up.targets[0].ejections == 1 and up.targets[0].ejected_until > 0
        assert up.describe()["targets"][0]["ejected_for"] > 0
        await asyncio.sleep(0.45)
        a.reset()  # healthy again: back in rotation after the ejection time
        served = Counter(
            [(await up.request("GET", "/echo/x")).headers["x-served-by"] for _ in range(10)]
        )
        assert served == {"a": 5, "b": 5}
        assert b.count() == 22
    finally:
        await up.aclose()


async def test_a_success_resets_the_count(fault: Servers) -> None:
    up = Upstream(
        "svc",
        [(fault["a"].url, 1)],
        passive_health=PassiveHealthConfig(consecutive_failures=3, ejection_time=10),
    )
    try:
        for _ in range(5):
            fault["a"].app.fail_next(2, 503)
            for _ in range(3):
                await up.request("GET", "/echo/x")
        assert up.targets[0].ejections == 0
    finally:
        await up.aclose()


async def test_none_healthy_is_503_with_retry_after(fault: Servers) -> None:
    ups: dict[str, Any] = {
        "svc": {
            "targets": [fault["a"].url],
            "retries": {"attempts": 0},
            "breaker": {"enabled": False},
            "passive_health": {"consecutive_failures": 2, "ejection_time": 7},
        }
    }
    rts = [{"id": "svc", "path": "/svc", "upstream": "svc", "strip_prefix": "/svc"}]
    async with running_gateway(gateway_config(ups, rts)) as (_, client):
        fault["a"].app.fail_next(2, 503)
        assert [(await client.get("/svc/echo/x")).status_code for _ in range(2)] == [503, 503]
        response = await client.get("/svc/echo/x")
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "UPSTREAM_UNAVAILABLE"
        assert "target" in response.json()["error"]["message"]
        assert 6 <= int(response.headers["retry-after"]) <= 7
        assert fault["a"].app.count() == 2


def test_thresholds_keep_a_flapping_target_from_flapping_the_verdict() -> None:
    target = Target("http://10.0.0.1")
    checker = HealthChecker("svc", [target], transport=None, unhealthy_threshold=2)  # type: ignore[arg-type]
    for ok in [False, True] * 5:  # alternating results never reach 2 in a row
        checker.record(target, ok)
        assert target.healthy
    checker.record(target, False)
    checker.record(target, False)
    assert not target.healthy
    checker.record(target, True)
    assert not target.healthy  # healthy_threshold: 2
    checker.record(target, True)
    assert target.healthy


async def test_active_checks_mark_targets_down_and_up(fault: Servers) -> None:
    a, b = fault["a"].app, fault["b"].app
    up = Upstream(
        "svc",
        [(fault["a"].url, 1), (fault["b"].url, 1)],
        health_check=HealthCheckConfig(
            path="/health", interval=0.05, unhealthy_threshold=2, healthy_threshold=2
        ),
    )
    try:
        up.start()
        assert up.health_checker is not None and up.health_checker.running
        await wait_for(lambda: a.health_checks >= 2 and b.health_checks >= 2)
        a.healthy = False
        await wait_for(lambda: not up.targets[0].healthy)
        served = {(await up.request("GET", "/echo/x")).headers["x-served-by"] for _ in range(6)}
        assert served == {"b"}
        b.healthy = False
        await wait_for(lambda: not up.targets[1].healthy)
        with pytest.raises(UpstreamUnavailable):
            await up.request("GET", "/echo/x")
        a.healthy = b.healthy = True
        await wait_for(lambda: up.targets[0].healthy and up.targets[1].healthy)
        served = {(await up.request("GET", "/echo/x")).headers["x-served-by"] for _ in range(6)}
        assert served == {"a", "b"}
    finally:
        await up.aclose()
    assert not up.health_checker.running


async def test_an_unreachable_target_fails_its_checks() -> None:
    from tests.support.servers import free_port

    target = Target(f"http://127.0.0.1:{free_port()}")
    up = Upstream("svc", [(target.base, 1)])
    checker = HealthChecker("svc", [target], up._transport, timeout=0.5)
    try:
        assert await checker.check(target) is False
    finally:
        await up.aclose()


async def test_the_gateway_starts_and_stops_health_checks(fault: Servers) -> None:
    app = fault["a"].app
    ups = {"svc": {"targets": [fault["a"].url], "health_check": {"interval": 0.05}}}
    rts = [{"id": "svc", "path": "/svc", "upstream": "svc"}]
    async with running_gateway(gateway_config(ups, rts)) as (gateway, _):
        checker = gateway.upstreams["svc"].health_checker
        assert checker is not None and checker.running
        await wait_for(lambda: app.health_checks >= 3)
    assert not checker.running
    stopped_at = app.health_checks
    await asyncio.sleep(0.2)
    assert app.health_checks == stopped_at
