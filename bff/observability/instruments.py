"""Hot-path stand-ins for prometheus_client children: count now, publish when scraped.

A prometheus_client increment takes a lock (a file write in multi-process mode) and a histogram
observation walks its buckets in Python: about 0.5 and 1 µs, several times per request. These
stand-ins add to plain integers instead (tens of nanoseconds; the event loop is the only
writer) and :meth:`flush` hands what accumulated to the real child. ``Metrics.sample()`` flushes
every stand-in before each exposition, so a scrape sees exact values; in multi-process mode each
worker also flushes every few seconds, so the merged files lag by at most that.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from typing import Any

__all__ = ["DeferredCounter", "DeferredHistogram"]


class DeferredCounter:
    """``inc()`` like a counter child; :meth:`flush` publishes to ``child``."""

    __slots__ = ("_child", "_published", "value")

    def __init__(self, child: Any) -> None:
        self._child = child
        self._published = 0
        #: Everything counted so far, published or not.
        self.value = 0

    def inc(self, amount: int = 1) -> None:
        self.value += amount

    def flush(self) -> None:
        value = self.value
        if value != self._published:
            self._child.inc(value - self._published)
            self._published = value


class DeferredHistogram:
    """``observe()`` like a histogram child with upper bounds ``bounds`` (``+Inf`` implied);
    :meth:`flush` publishes to ``child``, a prometheus_client ``Histogram`` child with the
    same buckets (through its per-bucket values: there is no public bulk API)."""

    __slots__ = ("_bounds", "_child", "_counts", "_published", "_published_sum", "_sum")

    def __init__(self, child: Any, bounds: Sequence[float]) -> None:
        self._child = child
        self._bounds = tuple(bounds)
        if len(child._buckets) != len(self._bounds) + 1:
            raise ValueError("the child's buckets differ from bounds")
        self._counts = [0] * (len(self._bounds) + 1)
        self._published = [0] * len(self._counts)
        self._sum = 0.0
        self._published_sum = 0.0

    def observe(self, value: float) -> None:
        # bisect_left: the first bound >= value, as Prometheus's "le" asks.
        self._counts[bisect_left(self._bounds, value)] += 1
        self._sum += value

    @property
    def count(self) -> int:
        """Observations so far, published or not."""
        return sum(self._counts)

    def flush(self) -> None:
        counts, published = self._counts, self._published
        if counts == published:
            return
        buckets = self._child._buckets
        for i, n in enumerate(counts):
            if n != published[i]:
                buckets[i].inc(n - published[i])
                published[i] = n
        total = self._sum
        self._child._sum.inc(total - self._published_sum)
        self._published_sum = total
