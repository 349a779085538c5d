"""Retries: what is retried, where to, how long apart, and the budget that bounds them."""

from __future__ import annotations

import random
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from bff.config import RetryConfig
from bff.errors import UpstreamError, UpstreamTimeout
from bff.upstream import RetryBudget, Upstream, UpstreamCall, deadline
from bff.upstream.retry import RetryStage
from tests.support.passthrough import gateway_config, running_gateway
from tests.support.servers import ThreadedServer, free_port

Servers = dict[str, ThreadedServer]


def upstream(urls: list[str], **retries: Any) -> Upstream:
    policy = RetryConfig(**{"attempts": 2, "backoff": 0.0, "budget_min_retries": 1000, **retries})
    return Upstream("svc", [(u, 1) for u in urls], retries=policy, read_timeout=5)


async def test_idempotent_calls_are_retried_on_502_503_504(fault: Servers) -> None:
    app = fault["a"].app
    up = upstream([fault["a"].url])
    try:
        for method in ("GET", "HEAD", "OPTIONS", "PUT", "DELETE"):
            app.reset()
            app.fail_next(2, 503)
            response = await up.request(method, "/echo/x")
            assert response.status_code == 200, method
            assert app.count() == 3  # attempts: 2 = up to 3 tries
        app.reset()
        app.fail_next(5, 504)
        assert (await up.request("GET", "/echo/x")).status_code == 504  # the last answer stands
        assert app.count() == 3
        app.reset()
        app.fail_next(1, 500)  # not a retryable status
        assert (await up.request("GET", "/echo/x")).status_code == 500
        assert app.count() == 1
    finally:
        await up.aclose()


async def test_post_is_never_retried(fault: Servers) -> None:
    app = fault["a"].app
    up = upstream([fault["a"].url])
    try:
        app.fail_next(1, 503)
        assert (await up.request("POST", "/echo/x", content=b"{}")).status_code == 503
        assert app.count() == 1
        down = upstream([f"http://127.0.0.1:{free_port()}", fault["a"].url])
        try:
            call = UpstreamCall("POST", "/echo/x", content=b"{}")
            with pytest.raises(UpstreamError):  # even a refused connection: POST is not retried
                await down.send(call)
            assert call.retries == 0
        finally:
            await down.aclose()
    finally:
        await up.aclose()


async def test_a_streamed_body_is_not_retried_once_it_started(fault: Servers) -> None:
    app = fault["a"].app
    up = upstream([fault["a"].url])
    try:
        app.fail_next(1, 503)
        call = UpstreamCall("PUT", "/echo/x")

        async def body() -> AsyncIterator[bytes]:
            call.body_sent = True
            yield b"x" * 1000

        call.content = body()
        response = await up.send(call)
        assert response.status_code == 503 and app.count() == 1
    finally:
        await up.aclose()


async def test_connect_errors_go_to_the_next_healthy_target(fault: Servers) -> None:
    up = upstream([f"http://127.0.0.1:{free_port()}", fault["a"].url])
    try:
        for _ in range(4):
            call = UpstreamCall("GET", "/echo/x")
            response = await up.send(call)
            assert response.status_code == 200
            assert call.target is not None and call.target.base == fault["a"].url
    finally:
        await up.aclose()


async def test_timeouts_are_retried_on_another_target(fault: Servers) -> None:
    fault["a"].app.latency_ms = 2000
    up = Upstream(
        "svc",
        [(fault["a"].url, 1), (fault["b"].url, 1)],
        retries=RetryConfig(attempts=1, backoff=0),
        read_timeout=0.2,
    )
    try:
        started = time.monotonic()
        served = {(await up.request("GET", "/echo/x")).headers["x-served-by"] for _ in range(4)}
        assert served == {"b"}
        assert time.monotonic() - started < 2.0  # at most two short timeouts were waited for
    finally:
        await up.aclose()


async def test_retries_stay_within_the_request_budget(fault: Servers) -> None:
    fault["a"].app.latency_ms = 150
    fault["a"].app.fail_next(100, 503)
    up = upstream([fault["a"].url], attempts=10, backoff=0.05, max_backoff=0.05)
    try:
        started = time.monotonic()
        with deadline(0.5):
            try:
                status = (await up.request("GET", "/echo/x")).status_code
            except UpstreamTimeout:  # the last try got only what was left, and ran out
                status = 504
        elapsed = time.monotonic() - started
        assert status in (503, 504)
        assert elapsed < 0.9
        assert 2 <= fault["a"].app.count() <= 4
        with deadline(0.3), pytest.raises(UpstreamTimeout):  # a try cut short by the budget
            fault["a"].app.latency_ms = 1000
            await up.request("GET", "/echo/x")
    finally:
        await up.aclose()


def test_backoff_is_exponential_with_full_jitter() -> None:
    up = upstream(["http://127.0.0.1:9"], backoff=0.1, max_backoff=0.5)
    stage = up.stage(RetryStage)
    assert stage is not None
    stage.rng = random.Random(7)
    for retry, cap in enumerate([0.1, 0.2, 0.4, 0.5, 0.5]):
        delays = [stage.delay(retry) for _ in range(2000)]
        assert 0 <= min(delays) < cap * 0.05
        assert cap * 0.95 < max(delays) <= cap
        assert abs(sum(delays) / len(delays) - cap / 2) < cap * 0.05  # uniform over [0, cap]


def test_the_budget_allows_a_ratio_of_recent_requests() -> None:
    budget = RetryBudget(0.2, min_retries=3, window=10)
    allowed = 0
    for _ in range(100):
        budget.deposit()
        allowed += budget.try_withdraw()
    assert allowed == 3 + 20
    assert budget.describe()["refused"] == 100 - allowed


def test_the_budget_forgets_old_requests() -> None:
    budget = RetryBudget(1.0, min_retries=0, window=0.2)
    for _ in range(5):
        budget.deposit()
    time.sleep(0.25)
    assert not budget.try_withdraw()
    budget.deposit()
    assert budget.try_withdraw()


async def test_retry_budget_exhaustion_bounds_an_outage(fault: Servers) -> None:
    """Every try fails: 3 retries each would make 200 calls cost 800 tries; the budget keeps
    it to 200 + 20% + the floor."""
    app = fault["a"].app
    app.fail_next(10_000, 503)
    up = upstream([fault["a"].url], attempts=3, budget_ratio=0.2, budget_min_retries=5)
    try:
        for _ in range(200):
            assert (await up.request("GET", "/echo/x")).status_code == 503
        assert up.retry_budget is not None
        info = up.retry_budget.describe()
    finally:
        await up.aclose()
    tries = app.count()
    assert 200 + 40 <= tries <= 200 + 5 + 40
    assert info["recent_retries"] == tries - 200 and info["refused"] > 0


async def test_retries_through_the_proxy(fault: Servers) -> None:
    ups: dict[str, Any] = {
        "svc": {
            "targets": [fault["a"].url],
            "retries": {"attempts": 2, "backoff": 0.01},
            "breaker": {"failure_threshold": 100},
        }
    }
    rts = [{"id": "svc", "path": "/svc", "upstream": "svc", "strip_prefix": "/svc"}]
    async with running_gateway(gateway_config(ups, rts)) as (_, client):
        fault["a"].app.fail_next(2, 502)
        assert (await client.get("/svc/echo/x")).status_code == 200
        assert fault["a"].app.count() == 3
        fault["a"].app.reset()
        fault["a"].app.fail_next(1, 503)
        response = await client.post("/svc/echo/x", content=b"payload")
        assert response.status_code == 503 and fault["a"].app.count() == 1
        fault["a"].app.reset()
        fault["a"].app.fail_next(1, 503)
        # Idempotent, retried: a small streamed body is kept, and sent again whole.
        response = await client.put("/svc/echo/x", content=b"p" * 60_000)
        assert response.status_code == 200 and fault["a"].app.count() == 2
        assert response.json()["body_size"] == 60_000

        async def chunked() -> AsyncIterator[bytes]:
            for _ in range(6):
                yield b"c" * 10_000

        fault["a"].app.reset()
        fault["a"].app.fail_next(1, 503)
        response = await client.put("/svc/echo/x", content=chunked())
        assert response.status_code == 200 and response.json()["body_size"] == 60_000
        # Too large to keep: once it has started to flow, it is not retried.
        fault["a"].app.reset()
        fault["a"].app.fail_next(1, 503)
        response = await client.put("/svc/echo/x", content=b"p" * 100_000)
        assert response.status_code == 503 and fault["a"].app.count() == 1
