"""Per-request time budgets.

A request entering the gateway gets a deadline (its app's or route's ``timeout``, shortened by an
``X-Request-Timeout`` header); every upstream call made on its behalf gets the remaining budget,
capped by the upstream's own read timeout. Once the budget is spent, further calls fail at once
with :class:`~bff.errors.UpstreamTimeout` instead of queueing work nobody will wait for.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from bff.errors import BadRequest, UpstreamTimeout

__all__ = ["DeadlineExceeded", "deadline", "parse_request_timeout", "remaining_budget"]


class DeadlineExceeded(UpstreamTimeout):
    """The request's budget ran out: before a try, or during one it cut short.

    Answered like any upstream timeout (504, UPSTREAM_TIMEOUT), but not held against the
    upstream: neither its breaker nor its targets' health count it, so a caller asking for a
    tiny budget (``X-Request-Timeout: 0.001``) cannot open a breaker for everyone.
    """


_deadline: ContextVar[float | None] = ContextVar("bff_deadline", default=None)


@contextmanager
def deadline(seconds: float | None) -> Iterator[None]:
    """Run the block with a budget of ``seconds`` (never extending an enclosing budget)."""
    if seconds is None:
        yield
        return
    new = time.monotonic() + seconds
    current = _deadline.get()
    token = _deadline.set(new if current is None else min(new, current))
    try:
        yield
    finally:
        _deadline.reset(token)


def remaining_budget() -> float | None:
    """Seconds left in the current request's budget, or ``None`` when it has none."""
    end = _deadline.get()
    if end is None:
        return None
    return end - time.monotonic()


def parse_request_timeout(value: bytes) -> float:
    """The seconds an ``X-Request-Timeout`` header asks for (a positive, finite number).

    Raises :class:`~bff.errors.BadRequest` for anything else. The caller applies it with
    :func:`deadline`, which can only shorten the request's budget.
    """
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not (seconds > 0 and math.isfinite(seconds)):
        raise BadRequest("X-Request-Timeout must be a positive number of seconds")
    return seconds
