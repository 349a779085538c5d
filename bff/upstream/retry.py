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
from collections import deque
from time import monotonic
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

    Counted in ten buckets of ``window / 10`` seconds (a sliding window). Counting a call is an
    increment and a clock read; the buckets move only when one is over.
    """

    __slots__ = (
        "_current_requests",
        "_current_retries",
        "_older_requests",
        "_older_retries",
        "_past_requests",
        "_past_retries",
        "_rotate_at",
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
        self._reset()
        self._rotate_at = monotonic() + self._width
        self.refused = 0

    def _reset(self) -> None:
        past = self._BUCKETS - 1
        self._past_requests: deque[int] = deque([0] * past)
        self._past_retries: deque[int] = deque([0] * past)
        self._older_requests = self._older_retries = 0  # sums of the past buckets
        self._current_requests = self._current_retries = 0

    def _rotate(self, now: float) -> None:
        steps = int((now - self._rotate_at) / self._width) + 1
        if steps >= self._BUCKETS:
            self._reset()
        else:
            for _ in range(steps):
                self._older_requests += self._current_requests - self._past_requests.popleft()
                self._older_retries += self._current_retries - self._past_retries.popleft()
                self._past_requests.append(self._current_requests)
                self._past_retries.append(self._current_retries)
                self._current_requests = self._current_retries = 0
        self._rotate_at += steps * self._width

    def deposit(self) -> None:
        """Count one call (its first try)."""
        now = monotonic()
        if now >= self._rotate_at:
            self._rotate(now)
        self._current_requests += 1

    def try_withdraw(self) -> bool:
        """Take one retry from the budget; ``False`` (and nothing taken) when it is spent."""
        now = monotonic()
        if now >= self._rotate_at:
            self._rotate(now)
        requests = self._older_requests + self._current_requests
        retries = self._older_retries + self._current_retries
        if retries + 1 > self.min_retries + self.ratio * requests:
            self.refused += 1
            return False
        self._current_retries += 1
        return True

    def describe(self) -> dict[str, object]:
        """Recent counts, for the admin API and metrics."""
        now = monotonic()
        if now >= self._rotate_at:
            self._rotate(now)
        requests = self._older_requests + self._current_requests
        retries = self._older_retries + self._current_retries
        return {
            "ratio": self.ratio,
            "min_retries": self.min_retries,
            "window": self.window,
            "recent_requests": requests,
            "recent_retries": retries,
            "available": max(0, int(self.min_retries + self.ratio * requests - retries)),
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
