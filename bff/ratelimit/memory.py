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

from bff.ratelimit.algorithms import Algorithm, sliding_window, token_bucket
from bff.ratelimit.decision import Decision
from bff.ratelimit.store import Batch

__all__ = ["MemoryStore"]


class _Counter:
    __slots__ = ("expires", "fields")

    def __init__(self) -> None:
        self.fields: dict[str, float] = {}
        self.expires = 0.0


def _expiry(key: str, counter: _Counter, now: float) -> float:
    return counter.expires


_NOTHING: dict[str, float] = {}  # the fields of a counter not seen yet (never written to)


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
        counters = self._counters
        # The tightest window, folded as decision.Tightest does (inlined: this is per request).
        allowed, limit, remaining, reset_ms, retry_ms = True, 0, -1, 0, 0
        pending: list[tuple[str, _Counter | None, float, list[tuple[str, float]]]] = []
        for keys, counter_set in batches:
            for key, windows in zip(keys, counter_set.counters, strict=True):
                try:
                    counter: _Counter | None = counters[key]
                except KeyError:
                    counter = None
                fields = counter.fields if counter is not None else _NOTHING
                writes: list[tuple[str, float]] = []
                expires = 0.0
                for w in windows:
                    ok, rem, reset, retry, out = step(
                        fields, w.field, now, w.span, w.limit, w.capacity, cost
                    )
                    if not ok:
                        allowed = False
                        if retry > retry_ms:
                            retry_ms = retry
                    if remaining < 0 or rem < remaining or (rem == remaining and reset > reset_ms):
                        limit, remaining, reset_ms = (w.capacity if bucket else w.limit), rem, reset
                    if out is not None:
                        writes.extend(out)
                        # When this window's state equals absence again: a full bucket (the
                        # new TAT), or two windows after the current one began.
                        until = out[0][1] + 1.0 if bucket else (out[0][1] + 2) * w.span
                        if until > expires:
                            expires = until
                pending.append((key, counter, expires, writes))
        if charge and (allowed or cost <= 0):
            for key, counter, expires, writes in pending:
                if not writes:
                    continue
                if counter is None:
                    counter = _Counter()
                counter.fields.update(writes)
                if expires > counter.expires:
                    # Re-inserting is what moves the expiry; doubling the life makes a steady
                    # caller re-insert rarely rather than on every request.
                    counter.expires = expires + (expires - now)
                    counters[key] = counter
        return Decision(allowed, limit, remaining, reset_ms, retry_ms)

    async def aclose(self) -> None:
        self._counters.clear()
