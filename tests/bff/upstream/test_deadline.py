"""Per-request budgets: each try gets what is left, a spent budget fails fast."""

from __future__ import annotations

import asyncio
import time

import pytest

from bff.config import BreakerConfig, PassiveHealthConfig, RetryConfig
from bff.errors import BadRequest, UpstreamTimeout
from bff.upstream import (
    DeadlineExceeded,
    Upstream,
    deadline,
    parse_request_timeout,
    remaining_budget,
)
from tests.support.servers import ThreadedServer

Servers = dict[str, ThreadedServer]


def test_nested_deadlines_only_shorten() -> None:
    assert remaining_budget() is None
    with deadline(10):
        outer = remaining_budget()
        assert outer is not None and 9.9 < outer <= 10
        with deadline(60):
            inner = remaining_budget()
            assert inner is not None and inner <= 10
        with deadline(0.5):
            inner = remaining_budget()
            assert inner is not None and inner <= 0.5
        with deadline(None):
            assert remaining_budget() is not None
    assert remaining_budget() is None


@pytest.mark.parametrize(("value", "seconds"), [(b"1", 1.0), (b"0.25", 0.25), (b" 3 ", 3.0)])
def test_parse_request_timeout(value: bytes, seconds: float) -> None:
    assert parse_request_timeout(value) == seconds


@pytest.mark.parametrize("value", [b"", b"0", b"-1", b"soon", b"inf", b"nan", b"1e999", b"\xff"])
def test_parse_request_timeout_refuses(value: bytes) -> None:
    with pytest.raises(BadRequest, match="X-Request-Timeout"):
        parse_request_timeout(value)


async def test_a_try_gets_the_remaining_budget(fault: Servers) -> None:
    fault["a"].app.latency_ms = 2000
    up = Upstream("svc", [(fault["a"].url, 1)], read_timeout=10)
    try:
        started = time.monotonic()
        with deadline(0.3), pytest.raises(UpstreamTimeout):
            await up.request("GET", "/echo/x")
        assert time.monotonic() - started < 1.5
    finally:
        await up.aclose()


async def test_the_upstream_read_timeout_caps_a_long_budget(fault: Servers) -> None:
    fault["a"].app.latency_ms = 2000
    up = Upstream("svc", [(fault["a"].url, 1)], read_timeout=0.2)
    try:
        started = time.monotonic()
        with deadline(30), pytest.raises(UpstreamTimeout):
            await up.request("GET", "/echo/x")
        assert time.monotonic() - started < 1.5
    finally:
        await up.aclose()


async def test_a_spent_budget_fails_fast_without_calling(fault: Servers) -> None:
    up = Upstream("svc", [(fault["a"].url, 1)])
    try:
        with deadline(0.05):
            await asyncio.sleep(0.06)
            started = time.monotonic()
            for _ in range(20):
                with pytest.raises(UpstreamTimeout):
                    await up.request("GET", "/echo/x")
            assert time.monotonic() - started < 0.1
        assert fault["a"].app.count() == 0
    finally:
        await up.aclose()


async def test_a_callers_tiny_budget_is_not_held_against_the_upstream(fault: Servers) -> None:
    """Timeouts caused by the request's own budget count for neither breaker nor health, so
    ``X-Request-Timeout: 0.001`` cannot open a breaker for every other caller."""
    fault["a"].app.latency_ms = 300
    up = Upstream(
        "svc",
        [(fault["a"].url, 1)],
        read_timeout=5,
        breaker=BreakerConfig(failure_threshold=2),
        passive_health=PassiveHealthConfig(consecutive_failures=2),
        retries=RetryConfig(attempts=2, backoff=0),
    )
    try:
        for budget in (0.05, 0.05, 0.05, 0.0):
            with deadline(budget), pytest.raises(DeadlineExceeded):
                await up.request("GET", "/echo/x")
        assert up.breaker is not None and up.breaker.state == "closed"
        assert up.breaker.failures == 0 and up.targets[0].failures == 0
        assert fault["a"].app.count() == 3  # tried (no retries past the budget), then not at all
        fault["a"].app.latency_ms = 0
        assert (await up.request("GET", "/echo/x")).status_code == 200
    finally:
        await up.aclose()


async def test_the_upstreams_own_timeout_does_count(fault: Servers) -> None:
    fault["a"].app.latency_ms = 1000
    up = Upstream(
        "svc", [(fault["a"].url, 1)], read_timeout=0.1, breaker=BreakerConfig(failure_threshold=2)
    )
    try:
        for _ in range(2):
            with deadline(30), pytest.raises(UpstreamTimeout) as err:
                await up.request("GET", "/echo/x")
            assert not isinstance(err.value, DeadlineExceeded)
        assert up.breaker is not None and up.breaker.state == "open"
    finally:
        await up.aclose()
