"""The circuit breaker of one upstream, and the chain stage that consults it.

- **closed**: calls pass; ``failure_threshold`` consecutive failures open it.
- **open**: calls fail at once with :class:`~bff.errors.UpstreamUnavailable` (``retry_after`` =
  the time left until ``recovery_timeout``), without touching the upstream.
- **half-open** (the first call after ``recovery_timeout``): at most ``half_open_probes`` calls
  at a time go through; ``success_threshold`` successes close it, one failure opens it again.

A failure is a connect error, reset or timeout (:class:`UpstreamError` / :class:`UpstreamTimeout`)
or a 5xx answer; 4xx answers are successes. Calls refused by the client side (a body too large,
a vanished client), cut short by the request's own budget
(:class:`~bff.upstream.deadline.DeadlineExceeded`) or for want of a healthy target are neither.
The breaker sits outside the retry stage: one call, retries included, is one outcome.

State changes are logged and reported to ``listeners`` (metrics, the admin API).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import httpx

from bff.errors import UpstreamError, UpstreamTimeout, UpstreamUnavailable
from bff.upstream.call import Handler, UpstreamCall
from bff.upstream.deadline import DeadlineExceeded

if TYPE_CHECKING:
    from bff.upstream.upstream import Upstream

__all__ = ["CLOSED", "HALF_OPEN", "OPEN", "BreakerStage", "CircuitBreaker"]

log = logging.getLogger("bff.upstream")

CLOSED = "closed"
OPEN = "open"
HALF_OPEN = "half_open"

_FAILURES = (UpstreamError, UpstreamTimeout)

StateListener = Callable[[str, str, str], Any]
"""Called as ``listener(upstream, old_state, new_state)``."""


class CircuitBreaker:
    """The state machine. Single-threaded (one event loop), so it needs no lock."""

    __slots__ = (
        "failure_threshold",
        "failures",
        "generation",
        "half_open_probes",
        "listeners",
        "name",
        "opened_at",
        "opens",
        "probes_in_flight",
        "recovery_timeout",
        "state",
        "success_threshold",
        "successes",
    )

    def __init__(
        self,
        name: str,
        *,
        failure_threshold: int = 5,
        recovery_timeout: float = 10.0,
        success_threshold: int = 2,
        half_open_probes: int = 1,
    ) -> None:
        self.name = name
        self.failure_threshold = failure_threshold
        self.recovery_timeout = recovery_timeout
        self.success_threshold = success_threshold
        self.half_open_probes = half_open_probes
        self.state = CLOSED
        self.failures = 0
        self.successes = 0
        self.probes_in_flight = 0
        self.opened_at = 0.0
        self.opens = 0
        self.generation = 0
        self.listeners: list[StateListener] = []

    # -- closed ---------------------------------------------------------------------------

    def record_failure(self) -> None:
        """A call made while closed failed."""
        if self.state is CLOSED:
            self.failures += 1
            if self.failures >= self.failure_threshold:
                self._open()

    # -- open and half-open ---------------------------------------------------------------

    def acquire_probe(self) -> int:
        """Let a call through while not closed, or raise :class:`UpstreamUnavailable`.

        Returns the half-open period the probe belongs to, for :meth:`release_probe`.
        """
        if self.state is OPEN:
            waited = time.monotonic() - self.opened_at
            if waited < self.recovery_timeout:
                raise UpstreamUnavailable(
                    upstream=self.name, retry_after=self.recovery_timeout - waited
                )
            self.generation += 1
            self.successes = 0
            self.probes_in_flight = 0
            self._set(HALF_OPEN)
        if self.probes_in_flight >= self.half_open_probes:
            raise UpstreamUnavailable(upstream=self.name, retry_after=1.0)
        self.probes_in_flight += 1
        return self.generation

    def release_probe(self, generation: int, ok: bool | None) -> None:
        """A probe finished: ``True`` success, ``False`` failure, ``None`` no verdict."""
        if self.state is not HALF_OPEN or generation != self.generation:
            return  # its half-open period is over: another probe already decided
        self.probes_in_flight -= 1
        if ok is None:
            return
        if not ok:
            self._open()
            return
        self.successes += 1
        if self.successes >= self.success_threshold:
            self.failures = 0
            self._set(CLOSED)

    def reset(self) -> None:
        """Close the breaker now (an operator's call, from the admin API); counts start over
        and probes still in flight no longer decide anything."""
        self.failures = 0
        self.successes = 0
        self.probes_in_flight = 0
        self.generation += 1
        self._set(CLOSED)

    # -- reading --------------------------------------------------------------------------

    @property
    def retry_after(self) -> float:
        """Seconds until an open breaker lets a probe through (0 when not open)."""
        if self.state is not OPEN:
            return 0.0
        return max(0.0, self.recovery_timeout - (time.monotonic() - self.opened_at))

    def describe(self) -> dict[str, object]:
        """The breaker's state, for the admin API and metrics."""
        return {
            "state": self.state,
            "consecutive_failures": self.failures,
            "half_open_successes": self.successes if self.state is HALF_OPEN else 0,
            "retry_after": round(self.retry_after, 3),
            "opens": self.opens,
            "failure_threshold": self.failure_threshold,
            "recovery_timeout": self.recovery_timeout,
            "success_threshold": self.success_threshold,
            "half_open_probes": self.half_open_probes,
        }

    # -- transitions ----------------------------------------------------------------------

    def _open(self) -> None:
        self.opened_at = time.monotonic()
        self.opens += 1
        self.failures = 0
        self.probes_in_flight = 0
        self._set(OPEN)

    def _set(self, new: str) -> None:
        old, self.state = self.state, new
        if old == new:
            return
        if new is OPEN:
            log.warning(
                "upstream %s: circuit breaker %s -> %s (calls refused for %.3gs)",
                self.name,
                old,
                new,
                self.recovery_timeout,
            )
        else:
            log.info("upstream %s: circuit breaker %s -> %s", self.name, old, new)
        for listener in self.listeners:
            try:
                listener(self.name, old, new)
            except Exception:
                log.exception("circuit breaker listener failed")


class BreakerStage:
    """Chain stage: refuse calls while the breaker is open; report every call's outcome."""

    __slots__ = ("_breaker", "_next")

    def __init__(self, upstream: Upstream, next_handler: Handler) -> None:
        assert upstream.breaker is not None
        self._breaker = upstream.breaker
        self._next = next_handler

    async def __call__(self, call: UpstreamCall) -> httpx.Response:
        breaker = self._breaker
        if breaker.state is CLOSED:
            try:
                response = await self._next(call)
            except DeadlineExceeded:
                raise
            except _FAILURES:
                breaker.record_failure()
                raise
            if response.status_code >= 500:
                breaker.record_failure()
            elif breaker.failures:
                breaker.failures = 0
            return response
        generation = breaker.acquire_probe()
        try:
            response = await self._next(call)
        except DeadlineExceeded:
            breaker.release_probe(generation, None)
            raise
        except _FAILURES:
            breaker.release_probe(generation, False)
            raise
        except BaseException:
            breaker.release_probe(generation, None)
            raise
        breaker.release_probe(generation, response.status_code < 500)
        return response
