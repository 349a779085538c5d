"""Rolling windows per route: counts, percentiles, expiry, merging."""

from __future__ import annotations

import pytest

from bff.observability.rolling import LATENCY_BOUNDS, MAX_PERIOD, RollingStats, WindowSummary


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_counts_and_latency_of_one_period() -> None:
    clock = Clock()
    stats = RollingStats(clock=clock)
    for i in range(100):
        stats.record("route:users", (i + 1) / 1000, 200)  # 1..100 ms
    stats.record("route:users", 0.5, 503)
    stats.record("route:users", 0.001, 429, rate_limited=True)
    stats.record("route:users", 0.001, 200, cache="hit")
    stats.record("route:users", 0.001, 200, cache="miss")
    s = stats.summary("route:users", 300)
    assert (s.requests, s.successes, s.client_errors, s.failures) == (104, 102, 1, 1)
    assert s.rate_limited == 1
    assert s.cache_hit_rate == 0.5
    assert s.avg_ms == pytest.approx((sum(range(1, 101)) + 500 + 3) / 104, rel=1e-6)
    # Buckets are 20% wide: percentiles land within 10% of the exact value.
    assert s.p95_ms == pytest.approx(95, rel=0.1)
    assert s.p99_ms == pytest.approx(99, rel=0.1)
    assert stats.summary("route:other", 300).requests == 0
    assert stats.summary("route:other", 300).p99_ms is None


def test_old_slots_leave_the_window_and_fold_into_minutes() -> None:
    clock = Clock()
    stats = RollingStats(clock=clock)
    stats.record("app:web", 0.01, 200)
    clock.now += 400  # beyond 5 minutes, within the hour
    stats.record("app:web", 0.02, 500)
    assert stats.summary("app:web", 300).requests == 1
    hour = stats.summary("app:web", 3600)
    assert (hour.requests, hour.failures) == (2, 1)
    clock.now += MAX_PERIOD + 60  # old slots are minute slots: whole minutes leave
    stats.record("app:web", 0.03, 200)
    assert stats.summary("app:web", 3600).requests == 1


def test_memory_per_key_is_bounded() -> None:
    clock = Clock()
    stats = RollingStats(clock=clock)
    for _ in range(2000):  # 2000 slots' worth of traffic, more than the hour holds
        stats.record("route:busy", 0.001, 200)
        clock.now += 10
    series = stats._series["route:busy"]
    assert len(series.fine) <= 31
    assert len(series.coarse) <= 61


def test_summaries_merge_and_travel_as_json() -> None:
    a, b = RollingStats(clock=Clock()), RollingStats(clock=Clock())
    for _ in range(10):
        a.record("route:x", 0.010, 200)
        b.record("route:x", 0.100, 502)
    merged = WindowSummary.merge(
        [WindowSummary.from_dict(a.summary("route:x").to_dict()), b.summary("route:x")]
    )
    assert (merged.requests, merged.failures) == (20, 10)
    assert merged.avg_ms == pytest.approx(55)
    assert merged.p99_ms == pytest.approx(100, rel=0.1)
    assert len(merged.to_dict()["buckets"]) == len(LATENCY_BOUNDS) + 1


def test_bad_periods_and_key_limits() -> None:
    stats = RollingStats(clock=Clock(), max_keys=2)
    with pytest.raises(ValueError):
        stats.summary("route:x", 0)
    with pytest.raises(ValueError):
        stats.summary("route:x", MAX_PERIOD + 1)
    for key in ("route:a", "route:b", "route:c"):
        stats.record(key, 0.001, 200)
    assert len(stats.tracked()) == 2
    stats.forget("route:c")
    assert "route:c" not in stats.tracked()
