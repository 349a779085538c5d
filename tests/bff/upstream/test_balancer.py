"""Balancing strategies over an upstream's targets (unit level, then against real servers)."""

from __future__ import annotations

import time
from collections import Counter

import pytest

from bff.upstream import Target, Upstream, make_balancer
from tests.support.servers import ThreadedServer


def targets(*weights: int) -> list[Target]:
    return [Target(f"http://10.0.0.{i}:80", w) for i, w in enumerate(weights, start=1)]


def names(picks: list[Target | None]) -> list[str]:
    return [t.base[-4:-3] if t else "-" for t in picks]


def test_round_robin_takes_turns_and_skips_the_drained() -> None:
    ts = targets(1, 1, 0, 1)
    rr = make_balancer("round_robin", ts)
    assert names([rr.pick(None, None) for _ in range(6)]) == ["1", "2", "4", "1", "2", "4"]


def test_unavailable_targets_are_skipped() -> None:
    ts = targets(1, 1, 1)
    rr = make_balancer("round_robin", ts)
    ts[1].healthy = False
    ts[2].ejected_until = time.monotonic() + 60
    assert {rr.pick(None, None) for _ in range(5)} == {ts[0]}
    ts[0].healthy = False
    assert rr.pick(None, None) is None
    ts[2].ejected_until = time.monotonic() - 1  # ejection over
    assert rr.pick(None, None) is ts[2]
    assert ts[2].ejected_until == 0.0


@pytest.mark.parametrize("kind", ["round_robin", "least_requests", "ip_hash", "weighted"])
def test_a_retry_avoids_the_target_that_failed(kind: str) -> None:
    ts = targets(1, 1, 1)
    balancer = make_balancer(kind, ts)
    for _ in range(20):
        first = balancer.pick("192.0.2.1", None)
        assert first is not None
        assert balancer.pick("192.0.2.1", first) is not first
    # ... unless it is the only one left.
    ts[1].healthy = ts[2].healthy = False
    assert balancer.pick("192.0.2.1", ts[0]) is ts[0]


def test_least_requests_prefers_the_idlest() -> None:
    ts = targets(1, 1, 1)
    lr = make_balancer("least_requests", ts)
    ts[0].active, ts[1].active, ts[2].active = 5, 1, 3
    assert {lr.pick(None, None) for _ in range(6)} == {ts[1]}
    ts[1].active = 5
    assert {lr.pick(None, None) for _ in range(6)} == {ts[2]}


def test_ip_hash_is_sticky_and_spreads() -> None:
    ts = targets(1, 1, 1, 1)
    ih = make_balancer("ip_hash", ts)
    ips = [f"198.51.100.{i}" for i in range(200)]
    first = {ip: ih.pick(ip, None) for ip in ips}
    assert all(ih.pick(ip, None) is first[ip] for ip in ips)  # sticky
    spread = Counter(first.values())
    assert len(spread) == 4 and min(spread.values()) > 20
    # A target going down moves only its own clients.
    down = ts[0]
    down.healthy = False
    moved = [ip for ip in ips if ih.pick(ip, None) is not first[ip]]
    assert moved and all(first[ip] is down for ip in moved)
    # Without a client address (GraphQL resolvers): in turn.
    down.healthy = True
    assert len({ih.pick(None, None) for _ in range(4)}) == 4


def test_weighted_follows_weights_exactly_and_interleaves() -> None:
    ts = targets(5, 1, 1, 0)
    w = make_balancer("weighted", ts)
    picks = [w.pick(None, None) for _ in range(700)]
    assert Counter(names(picks)) == {"1": 500, "2": 100, "3": 100}
    # Smooth: the heavy target never runs more than its weight's worth in a row.
    run = longest = 0
    for p in picks:
        run = run + 1 if p is ts[0] else 0
        longest = max(longest, run)
    assert longest <= 5


def test_unknown_strategy() -> None:
    with pytest.raises(ValueError, match="unknown balance"):
        make_balancer("random", targets(1))


async def test_round_robin_over_real_targets(fault_servers: dict[str, ThreadedServer]) -> None:
    a, b = fault_servers["a"], fault_servers["b"]
    for kind in ("round_robin", "least_requests", "weighted"):
        up = Upstream("two", [(a.url, 1), (b.url, 1)], balance=kind)
        try:
            served = [
                (await up.request("GET", "/echo/x")).headers["x-served-by"] for _ in range(10)
            ]
        finally:
            await up.aclose()
        assert Counter(served) == {"a": 5, "b": 5}, kind
        assert all(t.active == 0 for t in up.targets)


async def test_least_requests_counts_streams_until_closed(
    fault_servers: dict[str, ThreadedServer],
) -> None:
    from bff.upstream import UpstreamCall

    a, b = fault_servers["a"], fault_servers["b"]
    up = Upstream("two", [(a.url, 1), (b.url, 1)], balance="least_requests")
    try:
        async with up.stream(UpstreamCall("GET", "/bytes", query=b"n=10")) as first:
            busy = first.headers["x-served-by"]
            assert sum(t.active for t in up.targets) == 1
            for _ in range(3):  # while the stream is open, everything goes to the other one
                response = await up.request("GET", "/echo/x")
                assert response.headers["x-served-by"] != busy
        assert sum(t.active for t in up.targets) == 0
    finally:
        await up.aclose()
