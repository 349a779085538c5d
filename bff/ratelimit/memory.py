"""Counters in this process's memory: right for one process, and the fallback when Redis is not.

Bounded: each counter expires once its state equals absence (a full bucket, two windows without
requests), and at most ``max_keys`` counters are kept, least recently used out first, so a flood
of distinct client addresses holds memory flat. (Evicting an active counter forgets its history:
that caller starts over with a full quota. Heavy callers are recently used, so the flood's
one-off addresses go first.)

A decision is on every limited request's path, so the store is built for it: the counters are an
``OrderedDict`` in least-recently-used order (a lookup is a few C calls, where cachetools'
``TLRUCache`` makes three Python calls), expiries are kept in a heap only touched when a
counter's life is extended, and the token bucket's arithmetic is inlined in the loop over the
windows (:meth:`MemoryStore.decide_now`; the sliding window calls
:func:`~bff.ratelimit.algorithms.sliding_window`).
"""

from __future__ import annotations

import heapq
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from math import ceil, floor

from bff.ratelimit.algorithms import EPSILON, Algorithm, sliding_window
from bff.ratelimit.decision import Decision
from bff.ratelimit.store import Batch

__all__ = ["MemoryStore"]


class _Counter:
    __slots__ = ("expires", "fields")

    def __init__(self) -> None:
        self.fields: dict[str, float] = {}
        self.expires = 0.0  # the clock's time at which the state equals absence


_NOTHING: dict[str, float] = {}  # the fields of a counter not seen yet (never written to)

# A counter's pending writes: its key, the counter (None: not held yet), the fields to store,
# and when the new state equals absence.
_Pending = tuple[str, "_Counter | None", dict[str, float], float]


class MemoryStore:
    """Rate-limit counters in a bounded in-process map (see the module docstring).

    ``clock`` (seconds, monotonic by default) is the time both the algorithms and the expiry
    use; tests pass a fake one.
    """

    def __init__(
        self,
        algorithm: Algorithm = "token_bucket",
        *,
        max_keys: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.algorithm: Algorithm = algorithm
        self.max_keys = max_keys
        self._clock = clock
        self._bucket = algorithm == "token_bucket"
        self._counters: OrderedDict[str, _Counter] = OrderedDict()  # least recently used first
        # (expiry, key) per extension of a counter's life, soonest first. An entry whose counter
        # has since lived longer (or was evicted) is stale: popped and ignored.
        self._expiries: list[tuple[float, str]] = []

    def __len__(self) -> int:
        """Counters held (expired ones dropped first)."""
        self._expire(self._clock())
        return len(self._counters)

    async def decide(self, batches: Sequence[Batch], cost: int, *, charge: bool = True) -> Decision:
        return self.decide_now(batches, cost, charge=charge)

    def decide_now(self, batches: Sequence[Batch], cost: int, *, charge: bool = True) -> Decision:
        """:meth:`decide` without a coroutine (it never waits)."""
        now = self._clock()
        if not self._bucket:
            return self._decide_windows(batches, cost, charge, now)
        counters = self._counters
        # The tightest window, folded as decision.Tightest does (inlined: this is per request).
        allowed, limit, remaining, reset_ms, retry_ms = True, 0, -1, 0, 0
        pending: list[_Pending] = []
        for keys, counter_set in batches:
            # A batch's keys and counters come in pairs (RateLimiter.batches builds them).
            # (Not zip(..., strict=True): in 3.11 the zip object and the keyword's parsing cost
            # some 3,000 instructions per call, a sixth of the whole decision.)
            for i, specs in enumerate(counter_set.specs):
                key = keys[i]
                counter = counters.get(key)
                fields = _NOTHING
                if counter is not None:
                    if now < counter.expires:
                        counters.move_to_end(key)
                        fields = counter.fields
                    else:  # its state equals absence: as good as gone
                        del counters[key]
                        counter = None
                writes: dict[str, float] = {}
                latest = 0.0
                for field, interval, tolerance, cap in specs:
                    # algorithms.token_bucket, inlined: the same operations on the same
                    # doubles (interval and tolerance are computed as it computes them).
                    tat = fields.get(field, now)
                    if tat < now:
                        tat = now
                    new_tat = tat + cost * interval
                    free = (now - (new_tat - tolerance)) / interval
                    if free >= -EPSILON or cost <= 0:
                        rem = floor(free + EPSILON)
                        until = new_tat
                        writes[field] = new_tat
                        if new_tat > latest:
                            latest = new_tat
                    else:
                        allowed = False
                        rem = floor((now - (tat - tolerance)) / interval + EPSILON)
                        until = tat
                        retry = ceil(-free * interval * 1000.0)
                        if retry > retry_ms:
                            retry_ms = retry
                    if rem < 0:
                        rem = 0
                    elif rem > cap:
                        rem = cap
                    if remaining < 0 or rem <= remaining:  # (the reset only when it may count)
                        reset = ceil((until - now) * 1000.0)  # (a float: no int conversion)
                        if remaining < 0 or rem < remaining or reset > reset_ms:
                            limit, remaining, reset_ms = cap, rem, reset
                # The bucket is full again (its state equals absence) at the latest new TAT.
                pending.append((key, counter, writes, latest + 1.0))
        if charge and (allowed or cost <= 0):
            for key, counter, writes, expires in pending:
                if counter is not None and expires <= counter.expires:
                    counter.fields.update(writes)  # the common case: a caller seen recently
                elif writes:
                    self._keep(key, counter, writes, expires, now)
        return Decision(allowed, limit, remaining, reset_ms, retry_ms)

    def _decide_windows(
        self, batches: Sequence[Batch], cost: int, charge: bool, now: float
    ) -> Decision:
        """:meth:`decide_now` for the sliding window (one function call per window)."""
        counters = self._counters
        allowed, limit, remaining, reset_ms, retry_ms = True, 0, -1, 0, 0
        pending: list[_Pending] = []
        for keys, counter_set in batches:
            for key, windows in zip(keys, counter_set.counters, strict=True):
                counter = counters.get(key)
                fields = _NOTHING
                if counter is not None:
                    if now < counter.expires:
                        counters.move_to_end(key)
                        fields = counter.fields
                    else:
                        del counters[key]
                        counter = None
                writes: dict[str, float] = {}
                expires = 0.0
                for w in windows:
                    ok, rem, reset, retry, out = sliding_window(
                        fields, w.field, now, w.span, w.limit, w.capacity, cost
                    )
                    if not ok:
                        allowed = False
                        if retry > retry_ms:
                            retry_ms = retry
                    if remaining < 0 or rem < remaining or (rem == remaining and reset > reset_ms):
                        limit, remaining, reset_ms = w.limit, rem, reset
                    if out is not None:
                        writes.update(out)
                        # Two windows after the current one began, the state equals absence.
                        until = (out[0][1] + 2) * w.span
                        if until > expires:
                            expires = until
                pending.append((key, counter, writes, expires))
        if charge and (allowed or cost <= 0):
            for key, counter, writes, expires in pending:
                if counter is not None and expires <= counter.expires:
                    counter.fields.update(writes)
                elif writes:
                    self._keep(key, counter, writes, expires, now)
        return Decision(allowed, limit, remaining, reset_ms, retry_ms)

    def _keep(
        self,
        key: str,
        counter: _Counter | None,
        writes: dict[str, float],
        expires: float,
        now: float,
    ) -> None:
        """Store ``writes`` in a new counter, or in one whose life they extend to ``expires``."""
        if counter is None:
            counter = _Counter()
        counter.fields.update(writes)
        # Doubling the life makes a steady caller extend it (and touch the heap) rarely rather
        # than on every request.
        counter.expires = expires + (expires - now)
        self._expire(now)  # before inserting: nothing expired stays, nothing new goes
        heapq.heappush(self._expiries, (counter.expires, key))
        counters = self._counters
        if key not in counters:
            counters[key] = counter
            while len(counters) > self.max_keys:
                counters.popitem(last=False)  # the least recently used

    def _expire(self, now: float) -> None:
        """Drop the counters whose state equals absence; keep the heap of expiries small."""
        heap = self._expiries
        counters = self._counters
        while heap and heap[0][0] <= now:
            _, key = heapq.heappop(heap)
            counter = counters.get(key)
            if counter is not None and counter.expires <= now:
                del counters[key]
        if len(heap) > 2 * len(counters) + 64:  # mostly stale entries: rebuild (amortized)
            self._expiries = heap = [(c.expires, k) for k, c in counters.items()]
            heapq.heapify(heap)

    async def aclose(self) -> None:
        self._counters.clear()
        self._expiries.clear()
