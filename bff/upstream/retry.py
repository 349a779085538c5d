"""Retries of idempotent calls, with exponential backoff, full jitter and a retry budget.

A call is retried when it is idempotent (GET, HEAD, OPTIONS, PUT, DELETE), its body has not
started to stream (``UpstreamCall.body_sent``; a body given as bytes can be sent again), and the
try failed with a connect error, reset or timeout, or answered 502, 503 or 504. ``attempts``
counts retries after the first try. Before retry ``n`` (from 0) the stage sleeps a random time in
``[0, min(max_backoff, backoff * 2**n)]`` ("full jitter"), and only if the request's remaining
budget outlasts that sleep. Each retry must also be allowed by the upstream's
:class:`RetryBudget`, so that when an upstream fails for everyone retries add a bounded share of
traffic instead of multiplying it. When retries run out, the last outcome stands: the error is
raised, or the last 5xx response returned as it is.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from typing import TYPE_CHECKING

import httpx

from bff.errors import UpstreamError, UpstreamTimeout
from bff.upstream.call import IDEMPOTENT_METHODS as _IDEMPOTENT
from bff.upstream.call import Handler, UpstreamCall
from bff.upstream.deadline import DeadlineExceeded, remaining_budget

if TYPE_CHECKING:
    from bff.upstream.upstream import Upstream

__all__ = ["RETRY_STATUSES", "RetryBudget", "RetryStage"]

log = logging.getLogger("bff.upstream")

RETRY_STATUSES = frozenset({502, 503, 504})
_RETRYABLE = (UpstreamError, UpstreamTimeout)


class RetryBudget:
    """Retries may add at most ``ratio`` of the calls of the last ``window`` seconds, plus
    ``min_retries`` per window so that an upstream with little traffic can still retry.

    Counted in ten buckets of ``window / 10`` seconds (a sliding window, cheap to update).
    """

    __slots__ = (
        "_requests",
        "_retries",
        "_slot",
        "_total_requests",
        "_total_retries",
        "_width",
        "min_retries",
        "ratio",
        "refused",
        "window",
    )

    _BUCKETS = 10

    def __init__(self, ratio: float, *, min_retries: int = 10, window: float = 10.0) -> None:
        self.ratio = ratio
        self.min_retries = min_retries
        self.window = window
        self._width = window / self._BUCKETS
        self._requests = [0] * self._BUCKETS
        self._retries = [0] * self._BUCKETS
        self._total_requests = 0
        self._total_retries = 0
        self._slot = int(time.monotonic() / self._width)
        self.refused = 0

    def _advance(self) -> int:
        slot = int(time.monotonic() / self._width)
        last = self._slot
        if slot != last:
            n = self._BUCKETS
            if slot - last >= n:
                self._requests = [0] * n
                self._retries = [0] * n
                self._total_requests = self._total_retries = 0
            else:
                for s in range(last + 1, slot + 1):
                    i = s % n
                    self._total_requests -= self._requests[i]
                    self._total_retries -= self._retries[i]
                    self._requests[i] = self._retries[i] = 0
            self._slot = slot
        return slot % self._BUCKETS

    def deposit(self) -> None:
        """Count one call (its first try)."""
        i = self._advance()
        self._requests[i] += 1
        self._total_requests += 1

    def try_withdraw(self) -> bool:
        """Take one retry from the budget; ``False`` (and nothing taken) when it is spent."""
        i = self._advance()
        if self._total_retries + 1 > self.min_retries + self.ratio * self._total_requests:
            self.refused += 1
            return False
        self._retries[i] += 1
        self._total_retries += 1
        return True

    def describe(self) -> dict[str, object]:
        """Recent counts, for the admin API and metrics."""
        self._advance()
        allowed = self.min_retries + self.ratio * self._total_requests
        return {
            "ratio": self.ratio,
            "min_retries": self.min_retries,
            "window": self.window,
            "recent_requests": self._total_requests,
            "recent_retries": self._total_retries,
            "available": max(0, int(allowed - self._total_retries)),
            "refused": self.refused,
        }


class RetryStage:
    """Chain stage: retry what is safe to retry, within the budget and the deadline."""

    __slots__ = ("_attempts", "_backoff", "_budget", "_max_backoff", "_name", "_next", "rng")

    def __init__(self, upstream: Upstream, next_handler: Handler) -> None:
        assert upstream.retry_budget is not None
        self._name = upstream.name
        self._attempts = upstream.retry_attempts
        self._backoff = upstream.retry_backoff
        self._max_backoff = upstream.retry_max_backoff
        self._budget = upstream.retry_budget
        self._next = next_handler
        #: The jitter source (replaceable in tests).
        self.rng = random.Random()

    async def __call__(self, call: UpstreamCall) -> httpx.Response:
        self._budget.deposit()
        try:
            response = await self._next(call)
        except DeadlineExceeded:
            raise
        except _RETRYABLE as exc:
            if call.method not in _IDEMPOTENT or call.body_sent:
                raise
            return await self._retry(call, exc)
        if (
            response.status_code in RETRY_STATUSES
            and call.method in _IDEMPOTENT
            and not call.body_sent
        ):
            return await self._retry(call, response)
        return response

    def delay(self, retry: int) -> float:
        """The sleep before retry number ``retry`` (0 for the first): full jitter."""
        return self.rng.uniform(0.0, min(self._max_backoff, self._backoff * (2**retry)))

    async def _retry(
        self, call: UpstreamCall, outcome: httpx.Response | UpstreamError | UpstreamTimeout
    ) -> httpx.Response:
        for n in range(self._attempts):
            pause = self.delay(n)
            left = remaining_budget()
            if left is not None and left <= pause:
                break
            if not self._budget.try_withdraw():
                log.info("upstream %s: retry budget spent, not retrying", self._name)
                break
            if isinstance(outcome, httpx.Response):
                await outcome.aclose()
            if pause > 0:
                await asyncio.sleep(pause)
            call.retries = n + 1
            try:
                response = await self._next(call)
            except DeadlineExceeded:
                raise
            except _RETRYABLE as exc:
                if call.body_sent:
                    raise
                outcome = exc
                continue
            if response.status_code not in RETRY_STATUSES or call.body_sent:
                return response
            outcome = response
        if isinstance(outcome, httpx.Response):
            return outcome
        raise outcome
