"""The circuit breaker: its full cycle with timings, against real servers, and through REST."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import pytest

from bff.config import BreakerConfig
from bff.errors import UpstreamError, UpstreamUnavailable
from bff.upstream import CLOSED, HALF_OPEN, OPEN, CircuitBreaker, Upstream
from tests.support.passthrough import gateway_config, running_gateway
from tests.support.servers import ThreadedServer, free_port

Servers = dict[str, ThreadedServer]


def test_the_state_machine() -> None:
    changes: list[tuple[str, str, str]] = []
    b = CircuitBreaker(
        "svc", failure_threshold=3, recovery_timeout=0.2, success_threshold=2, half_open_probes=1
    )
    b.listeners.append(lambda *change: changes.append(change))
    b.record_failure()
    b.record_failure()
    assert b.state == CLOSED and b.failures == 2
    b.record_failure()
    assert b.state == OPEN
    with pytest.raises(UpstreamUnavailable) as err:
        b.acquire_probe()
    assert 0.1 < err.value.retry_after <= 0.2 and err.value.upstream == "svc"
    time.sleep(0.21)
    generation = b.acquire_probe()
    assert b.state == HALF_OPEN
    with pytest.raises(UpstreamUnavailable):  # one probe at a time
        b.acquire_probe()
    b.release_probe(generation, True)
    assert b.state == HALF_OPEN  # one success of two
    generation = b.acquire_probe()
    b.release_probe(generation, True)
    assert b.state == CLOSED and b.failures == 0
    assert changes == [
        ("svc", CLOSED, OPEN),
        ("svc", OPEN, HALF_OPEN),
        ("svc", HALF_OPEN, CLOSED),
    ]


def test_a_failed_probe_opens_it_again_and_stale_probes_are_ignored() -> None:
    b = CircuitBreaker("svc", failure_threshold=1, recovery_timeout=0.05, half_open_probes=2)
    b.record_failure()
    time.sleep(0.06)
    first = b.acquire_probe()
    second = b.acquire_probe()
    b.release_probe(first, False)
    assert b.state == OPEN and b.opens == 2
    time.sleep(0.06)
    third = b.acquire_probe()
    b.release_probe(second, True)  # from the previous half-open period: no say
    assert b.state == HALF_OPEN and b.successes == 0 and b.probes_in_flight == 1
    b.release_probe(third, None)  # cancelled: frees its slot, no verdict
    assert b.probes_in_flight == 0 and b.state == HALF_OPEN


def test_describe() -> None:
    b = CircuitBreaker("svc", failure_threshold=1, recovery_timeout=5)
    b.record_failure()
    info = b.describe()
    assert info["state"] == OPEN and 4 < float(info["retry_after"]) <= 5  # type: ignore[arg-type]
    assert info["opens"] == 1


async def test_full_cycle_against_a_real_upstream(
    fault: Servers, caplog: pytest.LogCaptureFixture
) -> None:
    app = fault["a"].app
    up = Upstream(
        "orders",
        [(fault["a"].url, 1)],
        breaker=BreakerConfig(
            failure_threshold=3, recovery_timeout=0.2, success_threshold=2, half_open_probes=1
        ),
    )
    assert up.breaker is not None
    caplog.set_level(logging.INFO, logger="bff.upstream")
    try:
        app.fail_next(3, 500)
        for _ in range(3):  # 5xx answers come back as responses, and count as failures
            assert (await up.request("GET", "/echo/x")).status_code == 500
        assert up.breaker.state == OPEN
        assert app.count() == 3

        started = time.monotonic()
        for _ in range(50):
            with pytest.raises(UpstreamUnavailable) as err:
                await up.request("GET", "/echo/x")
        assert time.monotonic() - started < 0.15  # refused at once...
        assert app.count() == 3  # ... without touching the upstream
        assert 0 < err.value.retry_after <= 0.2

        await asyncio.sleep(0.25)
        slow = asyncio.ensure_future(up.request("GET", "/slow", params={"ms": 150}))
        await asyncio.sleep(0.05)
        assert up.breaker.state == HALF_OPEN
        with pytest.raises(UpstreamUnavailable):  # the single probe is taken
            await up.request("GET", "/echo/x")
        assert (await slow).status_code == 200
        assert up.breaker.state == HALF_OPEN
        assert (await up.request("GET", "/status/404")).status_code == 404  # 4xx: a success
        assert up.breaker.state == CLOSED
        assert app.count() == 5
    finally:
        await up.aclose()
    messages = [r.getMessage() for r in caplog.records if "circuit breaker" in r.getMessage()]
    assert messages == [
        "upstream orders: circuit breaker closed -> open (calls refused for 0.2s)",
        "upstream orders: circuit breaker open -> half_open",
        "upstream orders: circuit breaker half_open -> closed",
    ]


async def test_connect_errors_count_and_4xx_do_not() -> None:
    up = Upstream(
        "down",
        [(f"http://127.0.0.1:{free_port()}", 1)],
        breaker=BreakerConfig(failure_threshold=2, recovery_timeout=10),
    )
    try:
        for _ in range(2):
            with pytest.raises(UpstreamError):
                await up.request("GET", "/x")
        with pytest.raises(UpstreamUnavailable):
            await up.request("GET", "/x")
    finally:
        await up.aclose()


async def test_four_hundreds_never_open_it(fault: Servers) -> None:
    up = Upstream("svc", [(fault["a"].url, 1)], breaker=BreakerConfig(failure_threshold=2))
    try:
        for _ in range(5):
            assert (await up.request("GET", "/status/404")).status_code == 404
        assert up.breaker is not None and up.breaker.state == CLOSED
    finally:
        await up.aclose()


async def test_open_breaker_answers_503_with_retry_after_over_rest(fault: Servers) -> None:
    ups: dict[str, Any] = {
        "svc": {
            "targets": [fault["a"].url],
            "retries": {"attempts": 0},
            "breaker": {"failure_threshold": 2, "recovery_timeout": 30},
        }
    }
    rts = [{"id": "svc", "path": "/svc", "upstream": "svc", "strip_prefix": "/svc"}]
    async with running_gateway(gateway_config(ups, rts)) as (gateway, client):
        fault["a"].app.fail_next(2, 502)
        for _ in range(2):
            response = await client.get("/svc/echo/x")
            assert response.status_code == 502 and response.json() == {
                "error": "scripted",
                "status": 502,
            }  # the upstream's own answer, passed through
        response = await client.get("/svc/echo/x")
        assert response.status_code == 503
        assert 29 <= int(response.headers["retry-after"]) <= 30
        assert response.json()["error"]["code"] == "UPSTREAM_UNAVAILABLE"
        assert fault["a"].app.count() == 2
        state = gateway.upstreams["svc"].describe()["breaker"]
        assert state["state"] == OPEN
