"""Counters in this process's memory: right for one process, and the fallback when Redis is not.

A bounded :class:`cachetools.TLRUCache`: each counter expires once its state equals absence (a
full bucket, two windows without requests), and at most ``max_keys`` counters are kept, least
recently used out first, so a flood of distinct client addresses holds memory flat. (Evicting an
active counter forgets its history: that caller starts over with a full quota. Heavy callers are
recently used, so the flood's one-off addresses go first.)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from cachetools import TLRUCache

from bff.ratelimit.algorithms import Algorithm, sliding_window, token_bucket, ttl_ms
from bff.ratelimit.decision import Decision, Tightest
from bff.ratelimit.store import Batch

__all__ = ["MemoryStore"]


class _Counter:
    __slots__ = ("expires", "fields")

    def __init__(self) -> None:
        self.fields: dict[str, float] = {}
        self.expires = 0.0


def _expiry(key: str, counter: _Counter, now: float) -> float:
    return counter.expires


class MemoryStore:
    """Rate-limit counters in a bounded in-process cache (see the module docstring).

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
        self._step = token_bucket if algorithm == "token_bucket" else sliding_window
        self._bucket = algorithm == "token_bucket"
        self._counters: TLRUCache[str, _Counter] = TLRUCache(
            maxsize=max_keys, ttu=_expiry, timer=clock
        )

    def __len__(self) -> int:
        """Counters held (expired ones dropped first)."""
        self._counters.expire()
        return len(self._counters)

    async def decide(self, batches: Sequence[Batch], cost: int, *, charge: bool = True) -> Decision:
        return self.decide_now(batches, cost, charge=charge)

    def decide_now(self, batches: Sequence[Batch], cost: int, *, charge: bool = True) -> Decision:
        """:meth:`decide` without a coroutine (it never waits)."""
        now = self._clock()
        step = self._step
        bucket = self._bucket
        algorithm = self.algorithm
        counters = self._counters
        tightest = Tightest()
        pending: list[tuple[str, _Counter | None, list[tuple[str, float]], int]] = []
        for keys, counter_set in batches:
            for key, windows in zip(keys, counter_set.counters, strict=True):
                counter = counters.get(key)
                fields = counter.fields if counter is not None else {}
                writes: list[tuple[str, float]] = []
                ttl = 0
                for w in windows:
                    allowed, remaining, reset_ms, retry_ms, out = step(
                        fields, w.field, now, w.span, w.limit, w.capacity, cost
                    )
                    tightest.add(
                        allowed, w.capacity if bucket else w.limit, remaining, reset_ms, retry_ms
                    )
                    if out is not None:
                        writes.extend(out)
                        t = ttl_ms(algorithm, now, w.span, out)
                        if t > ttl:
                            ttl = t
                pending.append((key, counter, writes, ttl))
        decision = tightest.decision()
        if charge and (decision.allowed or cost <= 0):
            for key, counter, writes, ttl in pending:
                if not writes:
                    continue
                if counter is None:
                    counter = _Counter()
                counter.fields.update(writes)
                expires = now + ttl / 1000
                if expires > counter.expires:
                    # Re-inserting is what moves the expiry; doubling the life makes a steady
                    # caller re-insert rarely rather than on every request.
                    counter.expires = now + 2 * ttl / 1000
                    counters[key] = counter
        return decision

    async def aclose(self) -> None:
        self._counters.clear()
