"""Rolling windows of request statistics per route and app, kept in process.

The admin API's ``GET /admin/metrics/routes/{id}?period=5m|1h`` reads these: totals, successes,
failures, average/p95/p99 latency, rate-limit refusals and cache hit rate over the last
``period`` seconds (at most one hour). Prometheus answers the same questions over any range;
this exists so the gateway can answer them itself, without a Prometheus.

How it is kept:

- time is cut into :data:`SLOT_SECONDS`-second slots; a slot holds counters and a latency
  histogram of fixed, geometric buckets (each bound 20% above the last, so percentiles are
  within about 10%);
- slots of the last :data:`FINE_SECONDS` stay as they are; older ones are folded into one slot
  per minute, and anything older than :data:`MAX_PERIOD` is dropped, so a key costs at most
  90 slots however busy it is;
- :meth:`RollingStats.record` is the per-request call (a few attribute increments); reading
  (:meth:`RollingStats.summary`) merges the slots the period covers.

Summaries are plain data that merge (:meth:`WindowSummary.merge`) and travel as JSON
(:meth:`WindowSummary.to_dict` / :meth:`WindowSummary.from_dict`), so the windows of several
processes can be combined, for example through Redis.

Keys are ``"route:<id>"`` and ``"app:<name>"`` (see :func:`target_key`).
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "FINE_SECONDS",
    "LATENCY_BOUNDS",
    "MAX_PERIOD",
    "SLOT_SECONDS",
    "RollingStats",
    "WindowSummary",
    "target_key",
]

SLOT_SECONDS = 10.0
"""Width of the finest slot (seconds): a period is rounded to whole slots."""
FINE_SECONDS = 300.0
"""Slots younger than this keep their 10-second resolution."""
_COARSE_SECONDS = 60.0
MAX_PERIOD = 3600.0
"""The longest period a summary covers (seconds)."""


def _bounds() -> tuple[float, ...]:
    bounds = []
    bound = 0.0001  # 0.1 ms
    while bound < 120.0:
        bounds.append(round(bound, 7))
        bound *= 1.2
    return tuple(bounds)


LATENCY_BOUNDS: tuple[float, ...] = _bounds()
"""Upper bounds (seconds) of the latency buckets; a last bucket holds anything slower."""
_NBUCKETS = len(LATENCY_BOUNDS) + 1


def target_key(kind: str, name: str) -> str:
    """The key of a route (``kind="route"``) or GraphQL app (``kind="app"``)."""
    return f"{kind}:{name}"


class _Slot:
    __slots__ = (
        "buckets",
        "cache_hits",
        "cache_lookups",
        "client_errors",
        "count",
        "end",
        "failures",
        "latency_sum",
        "rate_limited",
        "start",
    )

    def __init__(self, start: float, width: float) -> None:
        self.start = start
        self.end = start + width
        self.count = 0
        self.client_errors = 0
        self.failures = 0
        self.rate_limited = 0
        self.cache_hits = 0
        self.cache_lookups = 0
        self.latency_sum = 0.0
        self.buckets = [0] * _NBUCKETS

    def absorb(self, other: _Slot) -> None:
        self.count += other.count
        self.client_errors += other.client_errors
        self.failures += other.failures
        self.rate_limited += other.rate_limited
        self.cache_hits += other.cache_hits
        self.cache_lookups += other.cache_lookups
        self.latency_sum += other.latency_sum
        self.buckets = [a + b for a, b in zip(self.buckets, other.buckets, strict=True)]


class _Series:
    """The slots of one key: ``current``, then the fine ones, then minute ones (newest first
    at the right of each deque)."""

    __slots__ = ("coarse", "current", "fine")

    def __init__(self, now: float) -> None:
        self.current = _Slot(now - now % SLOT_SECONDS, SLOT_SECONDS)
        self.fine: deque[_Slot] = deque()
        self.coarse: deque[_Slot] = deque()

    def rotate(self, now: float) -> _Slot:
        if self.current.count:
            self.fine.append(self.current)
        self.current = _Slot(now - now % SLOT_SECONDS, SLOT_SECONDS)
        self.expire(now)
        return self.current

    def expire(self, now: float) -> None:
        fine, coarse = self.fine, self.coarse
        while fine and fine[0].end <= now - FINE_SECONDS:
            old = fine.popleft()
            start = old.start - old.start % _COARSE_SECONDS
            if not coarse or coarse[-1].start != start:
                coarse.append(_Slot(start, _COARSE_SECONDS))
            coarse[-1].absorb(old)
        while coarse and coarse[0].end <= now - MAX_PERIOD:
            coarse.popleft()

    def slots(self) -> Iterable[_Slot]:
        yield from self.coarse
        yield from self.fine
        yield self.current


@dataclass
class WindowSummary:
    """What happened to one key over a period.

    ``successes`` are answers below 400, ``client_errors`` 4xx answers (rate-limit refusals
    included, also counted in ``rate_limited``) and ``failures`` 5xx answers. Latencies are in
    milliseconds (None without requests); ``cache_hit_rate`` is hits over cache lookups (None
    without lookups). ``buckets`` (counts per :data:`LATENCY_BOUNDS` bucket) is what merging
    needs; :meth:`to_dict` includes it.
    """

    period: float
    requests: int = 0
    successes: int = 0
    client_errors: int = 0
    failures: int = 0
    rate_limited: int = 0
    cache_hits: int = 0
    cache_lookups: int = 0
    latency_sum: float = 0.0
    buckets: list[int] = field(default_factory=lambda: [0] * _NBUCKETS)

    @property
    def avg_ms(self) -> float | None:
        return self.latency_sum / self.requests * 1000 if self.requests else None

    @property
    def p95_ms(self) -> float | None:
        return self.percentile_ms(0.95)

    @property
    def p99_ms(self) -> float | None:
        return self.percentile_ms(0.99)

    @property
    def cache_hit_rate(self) -> float | None:
        return self.cache_hits / self.cache_lookups if self.cache_lookups else None

    def percentile_ms(self, q: float) -> float | None:
        """The latency below which a share ``q`` of requests finished (interpolated within
        its bucket), in milliseconds."""
        total = sum(self.buckets)
        if not total:
            return None
        rank = q * total
        seen = 0
        for index, count in enumerate(self.buckets):
            if count and seen + count >= rank:
                low = LATENCY_BOUNDS[index - 1] if index else 0.0
                high = LATENCY_BOUNDS[index] if index < len(LATENCY_BOUNDS) else low * 1.2
                return (low + (high - low) * (rank - seen) / count) * 1000
            seen += count
        return LATENCY_BOUNDS[-1] * 1000  # pragma: no cover - rank never exceeds total

    @classmethod
    def merge(cls, summaries: Iterable[WindowSummary]) -> WindowSummary:
        """One summary of several (processes' summaries of the same key and period)."""
        items = list(summaries)
        out = cls(period=max((s.period for s in items), default=0.0))
        for s in items:
            out.requests += s.requests
            out.successes += s.successes
            out.client_errors += s.client_errors
            out.failures += s.failures
            out.rate_limited += s.rate_limited
            out.cache_hits += s.cache_hits
            out.cache_lookups += s.cache_lookups
            out.latency_sum += s.latency_sum
            out.buckets = [a + b for a, b in zip(out.buckets, s.buckets, strict=True)]
        return out

    def to_dict(self, *, with_buckets: bool = True) -> dict[str, Any]:
        """JSON-ready: the counts, the derived figures and (for merging) the buckets."""
        out: dict[str, Any] = {
            "period": self.period,
            "requests": self.requests,
            "successes": self.successes,
            "client_errors": self.client_errors,
            "failures": self.failures,
            "rate_limited": self.rate_limited,
            "avg_ms": _round(self.avg_ms),
            "p95_ms": _round(self.p95_ms),
            "p99_ms": _round(self.p99_ms),
            "cache_hits": self.cache_hits,
            "cache_lookups": self.cache_lookups,
            "cache_hit_rate": _round(self.cache_hit_rate, 4),
            "latency_sum": self.latency_sum,
        }
        if with_buckets:
            out["buckets"] = list(self.buckets)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WindowSummary:
        """The inverse of :meth:`to_dict` (``with_buckets=True``)."""
        buckets = [int(b) for b in data.get("buckets", ())]
        if len(buckets) != _NBUCKETS:
            raise ValueError(f"expected {_NBUCKETS} latency buckets, got {len(buckets)}")
        return cls(
            period=float(data["period"]),
            requests=int(data["requests"]),
            successes=int(data["successes"]),
            client_errors=int(data["client_errors"]),
            failures=int(data["failures"]),
            rate_limited=int(data["rate_limited"]),
            cache_hits=int(data["cache_hits"]),
            cache_lookups=int(data["cache_lookups"]),
            latency_sum=float(data["latency_sum"]),
            buckets=buckets,
        )


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


class RollingStats:
    """Rolling windows per key (see the module docstring). One per process; single-threaded
    (the event loop), so it takes no lock.

    ``max_keys`` bounds memory when routes come and go (admin-managed routes): past it, the
    key idle the longest is forgotten.
    """

    def __init__(
        self, *, clock: Callable[[], float] = time.monotonic, max_keys: int = 10_000
    ) -> None:
        self._clock = clock
        self.max_keys = max_keys
        self._series: dict[str, _Series] = {}

    def record(
        self,
        key: str,
        seconds: float,
        status: int,
        *,
        rate_limited: bool = False,
        cache: str | None = None,
    ) -> None:
        """Count one finished request of ``key``: its duration, HTTP status, whether rate
        limits refused it and its cache outcome (``hit``, ``stale``, ``miss``, ...; None: the
        cache was not consulted; ``hit`` and ``stale`` count as hits)."""
        now = self._clock()
        series = self._series.get(key)
        if series is None:
            series = self._add(key, now)
        slot = series.current
        if now >= slot.end:
            slot = series.rotate(now)
        slot.count += 1
        if status >= 500:
            slot.failures += 1
        elif status >= 400:
            slot.client_errors += 1
        if rate_limited:
            slot.rate_limited += 1
        if cache is not None:
            slot.cache_lookups += 1
            if cache == "hit" or cache == "stale":
                slot.cache_hits += 1
        slot.latency_sum += seconds
        slot.buckets[bisect_left(LATENCY_BOUNDS, seconds)] += 1

    def _add(self, key: str, now: float) -> _Series:
        if len(self._series) >= self.max_keys:
            idle = min(self._series, key=lambda k: self._series[k].current.start)
            del self._series[idle]
        series = self._series[key] = _Series(now)
        return series

    def summary(self, key: str, period: float = FINE_SECONDS) -> WindowSummary:
        """The last ``period`` seconds of ``key`` (0 < period <= :data:`MAX_PERIOD`), in
        whole slots: the current slot counts, however young."""
        if not 0 < period <= MAX_PERIOD:
            raise ValueError(f"period must be within (0, {MAX_PERIOD:g}] seconds")
        out = WindowSummary(period=period)
        series = self._series.get(key)
        if series is None:
            return out
        now = self._clock()
        series.expire(now)
        since = now - period
        buckets = out.buckets
        for slot in series.slots():
            if slot.end <= since or not slot.count:
                continue
            out.requests += slot.count
            out.client_errors += slot.client_errors
            out.failures += slot.failures
            out.rate_limited += slot.rate_limited
            out.cache_hits += slot.cache_hits
            out.cache_lookups += slot.cache_lookups
            out.latency_sum += slot.latency_sum
            for i, n in enumerate(slot.buckets):
                if n:
                    buckets[i] += n
        out.successes = out.requests - out.client_errors - out.failures
        return out

    def tracked(self) -> list[str]:
        """Every key with recorded requests (in the last hour or so)."""
        return list(self._series)

    def forget(self, key: str) -> None:
        """Drop ``key``'s windows (a deleted route)."""
        self._series.pop(key, None)
